/**
 * POST /v1/publish with an Idempotency-Key, retried with backoff on network errors, timeouts, 429
 * and 5xx (never sooner than the server's Retry-After). The key stays the same across retries, so
 * a retry of a publish that did reach the log (its reply was lost) publishes nothing new and
 * returns the same ids. Each attempt carries the newest token; a 401 is retried with a new one
 * when there is a getToken.
 */
import { Backoff, type BackoffOptions } from './backoff.js';
import { randomId } from './environment.js';
import type { TokenSource } from './token-source.js';
import { authorization, httpError, retryAfterMs } from './transports/transport.js';
import { EdgePushError } from './types.js';

export interface PublishOptions {
  /** Defaults to a random UUID per call. */
  readonly idempotencyKey?: string;
  readonly signal?: AbortSignal;
}

export interface PublishSettings {
  readonly fetch: typeof fetch;
  readonly retries: number;
  readonly backoff: BackoffOptions;
  readonly requestTimeout: number;
  readonly tokens: TokenSource;
}

/** One attempt: the ids, or why to try again (and how long at least to wait first). */
type Attempt = { readonly ids: string[] } | { readonly retry: string; readonly after: number };

export async function publishMessages(
  baseUrl: string,
  messages: readonly { channel: string; data: unknown }[],
  settings: PublishSettings,
  options: PublishOptions = {},
): Promise<string[]> {
  const key = options.idempotencyKey ?? randomId();
  const backoff = new Backoff(settings.backoff);
  const body = JSON.stringify(messages.length === 1 ? messages[0] : { messages });
  for (let attempt = 0; ; attempt++) {
    const result = await publishOnce(baseUrl, body, key, settings, options.signal);
    if ('ids' in result) return result.ids;
    if (attempt >= settings.retries) throw new EdgePushError(`${result.retry} (gave up after ${attempt + 1} attempts)`, 'unavailable');
    await new Promise((resolve) => setTimeout(resolve, Math.max(backoff.next(), result.after)));
  }
}

/** Throws what is not worth retrying: a 4xx (but 429, and 401 with a getToken), an abort. */
async function publishOnce(baseUrl: string, body: string, key: string, settings: PublishSettings, userSignal: AbortSignal | undefined): Promise<Attempt> {
  const { tokens } = settings;
  let token: string | undefined;
  try {
    token = await tokens.token();
  } catch (error) {
    return { retry: error instanceof Error ? error.message : String(error), after: 0 };
  }
  const timeout = AbortSignal.timeout(settings.requestTimeout);
  const signal = userSignal ? anySignal([userSignal, timeout]) : timeout;
  let response: Response;
  try {
    response = await settings.fetch(`${baseUrl}/v1/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': key, ...authorization(token) },
      body,
      signal,
    });
  } catch (error) {
    if (userSignal?.aborted) throw error;
    return { retry: `publish failed: ${String(error)}`, after: 0 };
  }
  if (response.status === 201) {
    if (token !== undefined) tokens.accepted();
    return { ids: ((await response.json()) as { ids: string[] }).ids };
  }
  const error = await httpError(response, 'publish');
  if (response.status === 401 && token !== undefined && tokens.renewable) {
    tokens.refused(token);
    return { retry: error.message, after: 0 };
  }
  if (response.status !== 429 && response.status < 500) throw new EdgePushError(error.message, error.code, response.status);
  return { retry: error.message, after: retryAfterMs(response) ?? 0 };
}

function anySignal(signals: AbortSignal[]): AbortSignal {
  const controller = new AbortController();
  for (const signal of signals) {
    if (signal.aborted) controller.abort(signal.reason);
    else signal.addEventListener('abort', () => controller.abort(signal.reason), { once: true });
  }
  return controller.signal;
}
