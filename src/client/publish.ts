/**
 * POST /v1/publish with an Idempotency-Key, retried with backoff on network errors, timeouts, 429
 * and 5xx. The key stays the same across retries, so a retry of a publish that did reach the log
 * (its reply was lost) publishes nothing new and returns the same ids.
 */
import { Backoff, type BackoffOptions } from './backoff.js';
import { randomId } from './environment.js';
import { httpError } from './transports/transport.js';
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
}

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
    let retryable: string;
    const timeout = AbortSignal.timeout(settings.requestTimeout);
    const signal = options.signal ? anySignal([options.signal, timeout]) : timeout;
    try {
      const response = await settings.fetch(`${baseUrl}/v1/publish`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': key },
        body,
        signal,
      });
      if (response.status === 201) return ((await response.json()) as { ids: string[] }).ids;
      const error = await httpError(response, 'publish');
      if (response.status !== 429 && response.status < 500) throw new EdgePushError(error.message, error.code, response.status);
      retryable = error.message;
    } catch (error) {
      if (error instanceof EdgePushError || options.signal?.aborted) throw error;
      retryable = `publish failed: ${String(error)}`;
    }
    if (attempt >= settings.retries) throw new EdgePushError(`${retryable} (gave up after ${attempt + 1} attempts)`, 'unavailable');
    await new Promise((resolve) => setTimeout(resolve, backoff.next()));
  }
}

function anySignal(signals: AbortSignal[]): AbortSignal {
  const controller = new AbortController();
  for (const signal of signals) {
    if (signal.aborted) controller.abort(signal.reason);
    else signal.addEventListener('abort', () => controller.abort(signal.reason), { once: true });
  }
  return controller.signal;
}
