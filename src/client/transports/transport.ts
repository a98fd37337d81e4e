/**
 * What a transport is given and what it reports. A transport connects once; when it ends, for
 * whatever reason, it calls `failed` exactly once and the client decides what comes next (another
 * attempt, another transport, or stop). Transports never reconnect on their own.
 */
import type { FailureKind } from '../fallback-policy.js';
import type { ResolvedOptions } from '../options.js';
import type { Subscription } from '../subscription.js';
import type { EdgePushError, ResetNotice, TransportName } from '../types.js';

export type TransportFailure =
  | { readonly kind: FailureKind; readonly reason: string }
  /** Do not retry unchanged: an HTTP 4xx (not 429) or a close code 4500–4999. */
  | { readonly kind: 'terminal'; readonly error: EdgePushError }
  /** A delta base was missing on a transport that can only resubscribe by reconnecting: at once. */
  | { readonly kind: 'resubscribe'; readonly reason: string };

export interface TransportHost {
  readonly baseUrl: string;
  readonly options: ResolvedOptions;
  /** The subscriptions to carry, at the time of asking. */
  subscriptions(): readonly Subscription[];
  /** The transport delivered its first traffic: it works through whatever is in between. */
  proven(): void;
  reset(notice: ResetNotice): void;
  /** The server refused one subscription (a WebSocket `error` op naming its channel). */
  rejected(subscription: Subscription, error: EdgePushError): void;
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

/** Channel parameters shared by the SSE and long-poll URLs. */
export function channelParams(subscriptions: readonly Subscription[], delta: string | undefined): URLSearchParams {
  const params = new URLSearchParams();
  for (const subscription of subscriptions) params.append('channel', subscription.channel);
  if (delta) params.set('delta', delta);
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
    const key = `${subscription.delta ?? ''} ${subscription.cursor}`;
    const group = groups.get(key);
    if (group) group.push(subscription);
    else groups.set(key, [subscription]);
  }
  for (const subscription of withoutCursor) {
    const match = [...groups.values()].find((group) => group[0]?.delta === subscription.delta);
    if (match) match.push(subscription);
    else groups.set(`${subscription.delta ?? ''} `, [subscription]);
  }
  return [...groups.values()];
}

/** The error an HTTP error reply carries (docs/protocol.md "Errors"), or a generic one. */
export async function httpError(response: Response, what: string): Promise<{ code: string; message: string }> {
  try {
    const body = (await response.json()) as { error?: { code?: string; message?: string } };
    return { code: body.error?.code ?? `http_${response.status}`, message: `${what} answered ${response.status}: ${body.error?.message ?? response.statusText}` };
  } catch {
    return { code: `http_${response.status}`, message: `${what} answered ${response.status}` };
  }
}

/** 4xx but 429 are not worth retrying unchanged; 429 and 5xx are. */
export function isTerminalStatus(status: number): boolean {
  return status >= 400 && status < 500 && status !== 429;
}
