/** The public types of the edgepush client: what an application sees. */

export type TransportName = 'ws' | 'sse' | 'poll';
export type DeltaFormat = 'json-patch' | 'vcdiff';

/** A message as the application sees it: always full, whatever travelled on the wire. */
export interface Message {
  readonly channel: string;
  /** The message's position in the log; opaque, unique within an epoch. */
  readonly id: string;
  /** Milliseconds since the epoch: when the message entered the log. */
  readonly ts: number;
  readonly data: unknown;
  /** Present only as "base64": `data` is then the base64 of bytes that were not UTF-8. */
  readonly encoding?: 'base64';
  /** Present (true) on the newest-per-channel messages a `snapshot: 'latest'` subscribe starts with. */
  readonly snapshot?: true;
  /** On a subscription with `maxRate`: how many messages of the channel this one replaced. */
  readonly elided?: number;
}

/** The server could not replay everything after a cursor: see docs/protocol.md "Reset notices". */
export interface ResetNotice {
  readonly reason: 'cursor_expired' | 'unknown_epoch' | 'bad_cursor' | (string & {});
  readonly channel: string;
  readonly message: string;
  readonly from?: string;
  readonly to?: string;
}

/**
 * - `connecting`: first attempt (or first on a new transport after a fallback);
 * - `connected`: the transport has delivered its first traffic;
 * - `reconnecting`: lost (or never got) a connection; waiting `delayMs`, then trying again;
 * - `idle`: no subscriptions, so no connection;
 * - `closed`: `close()` was called, or the server said not to retry (`error` says why).
 */
export type ConnectionState = 'connecting' | 'connected' | 'reconnecting' | 'idle' | 'closed';

export interface StateChange {
  readonly state: ConnectionState;
  readonly transport: TransportName | undefined;
  /** Why the state changed (a fallback, a close code, "offline", ...), for logs and demo pages. */
  readonly reason?: string;
  /** With `reconnecting`: how long until the next attempt. */
  readonly delayMs?: number;
  /** With `closed` after a terminal error. */
  readonly error?: Error;
}

/** An error the server answered with (docs/protocol.md "Errors"), or a transport's terminal failure. */
export class EdgePushError extends Error {
  constructor(
    message: string,
    /**
     * The protocol's error code (`bad_channel`, `forbidden`, `unauthorized`, ...), a close code as
     * text, or `token_unavailable` (getToken() failed).
     */
    readonly code: string,
    /** The HTTP status or close code, when there was one. */
    readonly status?: number,
    /** The subscription's channel, when the error ended one subscription (e.g. `forbidden`). */
    readonly channel?: string,
  ) {
    super(message);
    this.name = 'EdgePushError';
  }
}

/** A message as it travels: possibly a delta against the previous message of its channel. */
export interface WireMessage {
  channel: string;
  id: string;
  ts: number;
  data: unknown;
  encoding?: 'base64';
  delta?: { format: string; base: string };
  snapshot?: true;
  elided?: number;
}
