/**
 * The client's options and their defaults. Times are milliseconds. The defaults match the server's
 * defaults (docs/config.md): change `heartbeatInterval` here when you change it there.
 */
import type { BackoffOptions } from './backoff.js';
import { globalWebSocket, type StorageLike, type WebSocketConstructor } from './environment.js';
import type { GetToken } from './token-source.js';
import type { TransportName } from './types.js';

export interface EdgePushOptions {
  /** Transports to use, best first; the client falls back along this list. Default ws, sse, poll. */
  readonly transports?: readonly TransportName[];
  /** Seed cursor for every subscription that does not bring its own (resume after a reload). */
  readonly cursor?: string;
  /** A token (JWT) to connect and publish with. With `getToken` too, it is used first. */
  readonly token?: string;
  /**
   * Returns a fresh token, e.g. from your backend. Called before the first connection (unless
   * `token` is given), when the server refuses or expires a token, and before a WebSocket's token
   * expires. One call at a time; after a failure the next waits out a backoff.
   */
  readonly getToken?: GetToken;
  /** The server's heartbeat interval (its `heartbeatInterval` option, in seconds there). Default 15000. */
  readonly heartbeatInterval?: number;
  /** No traffic for this long means the connection is dead. Default 2.5 × heartbeatInterval. */
  readonly heartbeatTimeout?: number;
  /** WebSocket: open and first `subscribed` reply within this long, or fall back. Default 10000. */
  readonly wsOpenTimeout?: number;
  /**
   * SSE: the server writes its first event the moment the stream opens; nothing within this long
   * means a proxy is holding the stream back, so fall back to long-poll. Default 5000.
   */
  readonly sseFirstEventTimeout?: number;
  /**
   * SSE: one network read holding events written this far apart by the server (message times, or
   * two heartbeats) means a proxy batches the stream: fall back to long-poll. Default heartbeatInterval.
   */
  readonly sseBatchWindow?: number;
  /** Long-poll: seconds the server may hold a poll (its `timeout` parameter). Default 25. */
  readonly pollTimeout?: number;
  /** How long an HTTP request (a publish, a poll past its timeout, SSE headers) may take. Default 10000. */
  readonly requestTimeout?: number;
  /** Reconnect delays (full jitter). Default 1000 initial, 30000 max. */
  readonly backoff?: Partial<BackoffOptions>;
  /**
   * Remember which transport worked, to start with it next time: true (default; localStorage in
   * browsers, memory in Node), false, or your own storage.
   */
  readonly rememberTransport?: boolean | StorageLike;
  /** How long a remembered transport is trusted. Default 24 h. */
  readonly rememberFor?: number;
  /** After this many "cannot work here" signals, a transport that worked earlier is left too. Default 3. */
  readonly demoteAfter?: number;
  /** Publish retries on network errors, 429 and 5xx (same Idempotency-Key each time). Default 5. */
  readonly publishRetries?: number;
  /** A WebSocket class; defaults to the global one (browsers, Node 22+). Pass one to use another, e.g. `ws`'s. */
  readonly WebSocket?: WebSocketConstructor;
  /** A fetch implementation; defaults to the global one. */
  readonly fetch?: typeof fetch;
}

export interface ResolvedOptions {
  readonly transports: readonly TransportName[];
  readonly cursor: string | undefined;
  readonly token: string | undefined;
  readonly getToken: GetToken | undefined;
  readonly heartbeatInterval: number;
  readonly heartbeatTimeout: number;
  readonly wsOpenTimeout: number;
  readonly sseFirstEventTimeout: number;
  readonly sseBatchWindow: number;
  readonly pollTimeout: number;
  readonly requestTimeout: number;
  readonly backoff: BackoffOptions;
  readonly rememberTransport: boolean | StorageLike;
  readonly rememberFor: number;
  readonly demoteAfter: number;
  readonly publishRetries: number;
  readonly WebSocket: WebSocketConstructor | undefined;
  readonly fetch: typeof fetch;
}

const ALL_TRANSPORTS: readonly TransportName[] = ['ws', 'sse', 'poll'];

export function resolveOptions(options: EdgePushOptions): ResolvedOptions {
  const WebSocket = options.WebSocket ?? globalWebSocket();
  let transports = (options.transports ?? ALL_TRANSPORTS).filter((t) => ALL_TRANSPORTS.includes(t));
  // No WebSocket here and none injected (an older runtime): skip it rather than fail every first attempt.
  if (!WebSocket) transports = transports.filter((t) => t !== 'ws');
  if (transports.length === 0) throw new TypeError('edgepush: no usable transport ("ws" needs a global WebSocket or the WebSocket option)');
  const heartbeatInterval = options.heartbeatInterval ?? 15_000;
  if (options.token !== undefined && (typeof options.token !== 'string' || options.token === '')) throw new TypeError('edgepush: token must be a non-empty string');
  if (options.getToken !== undefined && typeof options.getToken !== 'function') throw new TypeError('edgepush: getToken must be a function');
  return {
    transports,
    cursor: options.cursor,
    token: options.token,
    getToken: options.getToken,
    heartbeatInterval,
    heartbeatTimeout: options.heartbeatTimeout ?? heartbeatInterval * 2.5,
    wsOpenTimeout: options.wsOpenTimeout ?? 10_000,
    sseFirstEventTimeout: options.sseFirstEventTimeout ?? 5_000,
    sseBatchWindow: options.sseBatchWindow ?? heartbeatInterval,
    pollTimeout: options.pollTimeout ?? 25,
    requestTimeout: options.requestTimeout ?? 10_000,
    backoff: { initialDelay: options.backoff?.initialDelay ?? 1_000, maxDelay: options.backoff?.maxDelay ?? 30_000 },
    rememberTransport: options.rememberTransport ?? true,
    rememberFor: options.rememberFor ?? 24 * 3600_000,
    demoteAfter: options.demoteAfter ?? 3,
    publishRetries: options.publishRetries ?? 5,
    WebSocket,
    fetch: options.fetch ?? ((input, init) => globalThis.fetch(input, init)),
  };
}
