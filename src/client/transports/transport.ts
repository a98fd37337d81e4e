/**
 * What a transport is given and what it reports. A transport connects once; when it ends, for
 * whatever reason, it calls `failed` exactly once and the client decides what comes next (another
 * attempt, another transport, or stop). Transports never reconnect on their own.
 */
import type { FailureKind } from '../fallback-policy.js';
import type { ResolvedOptions } from '../options.js';
import type { Subscription } from '../subscription.js';
import type { TokenSource } from '../token-source.js';
import { EdgePushError, type ResetNotice, type TransportName, type WireMessage } from '../types.js';

export type TransportFailure =
  /** `retryAfter`: the server's Retry-After (ms), the least time to wait before the next attempt. */
  | { readonly kind: FailureKind; readonly reason: string; readonly retryAfter?: number }
  /** Do not retry unchanged: an HTTP 4xx (not 429) or a close code 4500–4999. */
  | { readonly kind: 'terminal'; readonly error: EdgePushError }
  /**
   * Identity, not the transport: the server refused `refused` (HTTP 401, close 4501) or said it
   * expired (`expired`: close 4003), or getToken() failed (no `refused`). Retried with a new token
   * when there is a getToken, else terminal.
   */
  | { readonly kind: 'auth'; readonly error: EdgePushError; readonly refused?: string | undefined; readonly expired?: boolean }
  /** A delta base was missing on a transport that can only resubscribe by reconnecting: at once. */
  | { readonly kind: 'resubscribe'; readonly reason: string };

export interface TransportHost {
  readonly baseUrl: string;
  readonly options: ResolvedOptions;
  /** Where tokens come from; `token()` before each connection or request. */
  readonly tokens: TokenSource;
  /** The subscriptions to carry, at the time of asking. */
  subscriptions(): readonly Subscription[];
  /** The transport delivered its first traffic: it works through whatever is in between. */
  proven(): void;
  reset(notice: ResetNotice): void;
  /**
   * The server refused one subscription (a WebSocket `error` op naming its channel, an HTTP 403
   * `forbidden`): it ends, and the connection carries the others.
   */
  rejected(subscription: Subscription, error: EdgePushError): void;
  /** The server named this connection (a `hello`). */
  session(id: string): void;
  /** Approximate bytes received (text length), for the application's statistics. */
  received(bytes: number): void;
  /** The server's reconnect delay (SSE `retry:`), in ms. */
  retryHint(ms: number): void;
  failed(failure: TransportFailure): void;
}

export interface Transport {
  readonly name: TransportName;
  /** Subscriptions were added or removed. False: the transport cannot adapt; reconnect it. */
  subscriptionsChanged(): boolean;
  /** Ends the connection without reporting a failure. */
  close(): void;
}

/**
 * Hands a message of an SSE stream or a poll reply to the subscriptions it belongs to: its
 * channel's own and every pattern matching it (the server sends it once). False when one of them
 * lacks a delta base: the caller resubscribes from the cursor before it.
 */
export function deliver(subscriptions: readonly Subscription[], byChannel: ReadonlyMap<string, Subscription>, wire: WireMessage): boolean {
  let ok = true;
  const own = byChannel.get(wire.channel);
  if (own && !own.receive(wire)) ok = false;
  for (const subscription of subscriptions) {
    if (subscription !== own && subscription.covers(wire.channel) && !subscription.receive(wire)) ok = false;
  }
  return ok;
}

/** Channel parameters shared by the SSE and long-poll URLs. */
export function channelParams(subscriptions: readonly Subscription[], delta: string | undefined): URLSearchParams {
  const params = new URLSearchParams();
  for (const subscription of subscriptions) params.append('channel', subscription.channel);
  if (delta) params.set('delta', delta);
  const maxRate = subscriptions[0]?.maxRate ?? 0;
  if (maxRate > 0) params.set('maxRate', String(maxRate));
  if (subscriptions[0]?.onSlow === 'conflate') params.set('onSlow', 'conflate');
  // Grouped apart (groupSubscriptions), so a whole request asks for it or none does.
  if (subscriptions.length > 0 && subscriptions.every((subscription) => subscription.wantsSnapshot)) params.set('snapshot', 'latest');
  return params;
}

/**
 * SSE and long-poll carry one cursor and one delta format per request, so subscriptions are grouped
 * by both: one stream (or poll loop) per group. Usually there is one group; cursors differ only after
 * a WebSocket connection (per-channel cursors) or when the application seeds different ones.
 * A subscription without a cursor joins a group with one (it then starts a little in the past,
 * which loses nothing), so a new subscription does not cost a new connection.
 */
export function groupSubscriptions(subscriptions: readonly Subscription[]): Subscription[][] {
  const groups = new Map<string, Subscription[]>();
  const withoutCursor: Subscription[] = [];
  for (const subscription of subscriptions) {
    if (subscription.cursor === undefined) {
      withoutCursor.push(subscription);
      continue;
    }
    const key = `${shapeOf(subscription)} ${subscription.cursor}`;
    const group = groups.get(key);
    if (group) group.push(subscription);
    else groups.set(key, [subscription]);
  }
  for (const subscription of withoutCursor) {
    // A snapshot is only sent to a request without a cursor: such subscriptions go together.
    if (subscription.wantsSnapshot) {
      const key = `${shapeOf(subscription)} snapshot`;
      const group = groups.get(key);
      if (group) group.push(subscription);
      else groups.set(key, [subscription]);
      continue;
    }
    const match = [...groups.values()].find((group) => group[0] !== undefined && !group[0].wantsSnapshot && shapeOf(group[0]) === shapeOf(subscription));
    if (match) match.push(subscription);
    else groups.set(`${shapeOf(subscription)} `, [subscription]);
  }
  return [...groups.values()];
}

/** What one request carries for all its channels: the delta format, the eliding interval, onSlow. */
function shapeOf(subscription: Subscription): string {
  return `${subscription.delta ?? ''}/${subscription.maxRate}/${subscription.onSlow}`;
}

/** The error an HTTP error reply carries (docs/protocol.md "Errors"), or a generic one. */
export async function httpError(response: Response, what: string): Promise<{ code: string; message: string; channels: string[] }> {
  try {
    const body = (await response.json()) as { error?: { code?: string; message?: string; channel?: unknown; channels?: unknown } };
    const named = [body.error?.channel, ...(Array.isArray(body.error?.channels) ? body.error.channels : [])];
    return {
      code: body.error?.code ?? `http_${response.status}`,
      message: `${what} answered ${response.status}: ${body.error?.message ?? response.statusText}`,
      channels: named.filter((c): c is string => typeof c === 'string'),
    };
  } catch {
    return { code: `http_${response.status}`, message: `${what} answered ${response.status}`, channels: [] };
  }
}

/** The `Authorization` header for a token, if there is one. */
export function authorization(token: string | undefined): Record<string, string> {
  return token === undefined ? {} : { authorization: `Bearer ${token}` };
}

/** A Retry-After header (seconds, or an HTTP date) in ms; undefined when absent or unreadable. */
export function retryAfterMs(response: Response, now = Date.now()): number | undefined {
  const value = response.headers.get('retry-after')?.trim();
  if (!value) return undefined;
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * What a failed subscribe request (an SSE open, a poll) means. 403 `forbidden` is for the caller:
 * it ends the channels it names (or, naming none, every channel of the request), not the client.
 */
export async function requestFailure(
  response: Response,
  what: string,
  token: string | undefined,
): Promise<TransportFailure | { kind: 'forbidden'; error: EdgePushError; channels: string[] }> {
  const error = await httpError(response, what);
  const edgePushError = new EdgePushError(error.message, error.code, response.status);
  if (response.status === 401) return { kind: 'auth', error: edgePushError, refused: token };
  if (response.status === 403 && error.code === 'forbidden') return { kind: 'forbidden', error: edgePushError, channels: error.channels };
  if (isTerminalStatus(response.status)) return { kind: 'terminal', error: edgePushError };
  const retryAfter = retryAfterMs(response);
  return { kind: 'network', reason: error.message, ...(retryAfter !== undefined ? { retryAfter } : {}) };
}

/** Ends the subscriptions a 403 `forbidden` names, or every one of the request if it names none. */
export function rejectForbidden(host: TransportHost, subscriptions: readonly Subscription[], error: EdgePushError, channels: readonly string[]): void {
  const named = subscriptions.filter((s) => channels.includes(s.channel));
  for (const subscription of named.length > 0 ? named : subscriptions) {
    host.rejected(subscription, new EdgePushError(error.message, error.code, error.status, subscription.channel));
  }
}

/** A getToken() failure, as a transport reports it. */
export function tokenFailure(error: unknown): TransportFailure {
  return { kind: 'auth', error: error instanceof EdgePushError ? error : new EdgePushError(String(error), 'token_unavailable') };
}

/** 4xx but 429 are not worth retrying unchanged; 429 and 5xx are. */
export function isTerminalStatus(status: number): boolean {
  return status >= 400 && status < 500 && status !== 429;
}
