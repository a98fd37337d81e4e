/**
 * Every error a client can see, in one table: HTTP errors and WebSocket `error` ops share codes,
 * and WebSocket close codes are listed beside them. docs/protocol.md lists each one (a test checks).
 */

export interface ErrorSpec {
  readonly status: number;
  /** True when the same request may succeed later unchanged. */
  readonly retryable: boolean;
  readonly description: string;
}

export const ERROR_CODES = {
  bad_request: { status: 400, retryable: false, description: 'A parameter or body field is missing or malformed.' },
  bad_json: { status: 400, retryable: false, description: 'The body or frame is not valid JSON.' },
  bad_channel: { status: 400, retryable: false, description: 'A channel name breaks the channel name rules.' },
  too_many_channels: { status: 400, retryable: false, description: 'More channels than one subscription or connection may hold.' },
  unknown_op: { status: 400, retryable: false, description: 'A WebSocket frame names an op the server does not know.' },
  not_subscribed: { status: 400, retryable: false, description: 'An unsubscribe names a channel the connection is not subscribed to.' },
  unsupported_frame: { status: 400, retryable: false, description: 'A binary WebSocket frame where only JSON text frames are accepted.' },
  request_timeout: { status: 408, retryable: true, description: 'The request line and headers did not arrive within headerTimeout (or the whole request within 30 s).' },
  headers_too_large: { status: 431, retryable: false, description: 'The request line and headers are over 64 KiB: name fewer channels per request, or send the cursor once.' },
  unsupported_media_type: { status: 415, retryable: false, description: 'A request body that is not application/json.' },
  message_too_large: { status: 413, retryable: false, description: 'A published message, request body or frame is over the size limit.' },
  unauthorized: { status: 401, retryable: false, description: 'No credentials where some are needed, or a token that is not good (bad signature, expired, wrong audience, ...): get a new token.' },
  forbidden: { status: 403, retryable: false, description: 'The token (or anonymous access) does not grant this action on this channel.' },
  idempotency_conflict: { status: 422, retryable: false, description: 'An Idempotency-Key reused with a different request body.' },
  upgrade_required: { status: 426, retryable: false, description: 'GET /v1/ws (or /mqtt) without a WebSocket upgrade.' },
  rate_limited: { status: 429, retryable: true, description: 'Too many requests, ops or publishes per second; wait Retry-After seconds.' },
  too_many_connections: { status: 429, retryable: true, description: 'Too many connections, or new connections per second, from this address; wait Retry-After seconds.' },
  over_capacity: { status: 503, retryable: true, description: 'The server holds as many connections as it is configured for; try again after Retry-After seconds (or another node).' },
  publish_disabled: { status: 403, retryable: false, description: 'This server does not accept publishes from clients (allowPublish is off).' },
  not_found: { status: 404, retryable: false, description: 'No such route.' },
  unavailable: { status: 503, retryable: true, description: 'A dependency is unreachable right now: the log cannot take publishes (Kafka is down), or the keys to check a token (JWKS) cannot be fetched.' },
  internal: { status: 500, retryable: true, description: 'An unexpected server error; the server logged it.' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** An error meant for the client: a code from {@link ERROR_CODES} and a precise message. */
export class PushError extends Error {
  readonly code: ErrorCode;
  /** Seconds to wait before trying again (the Retry-After header), for limits. */
  readonly retryAfter: number | undefined;
  /** The channel refused, when one of several was (a 403 on a multi-channel subscribe). */
  readonly channel: string | undefined;

  constructor(code: ErrorCode, message: string, details: { retryAfter?: number; channel?: string } = {}) {
    super(message);
    this.name = 'PushError';
    this.code = code;
    this.retryAfter = details.retryAfter;
    this.channel = details.channel;
  }

  get status(): number {
    return ERROR_CODES[this.code].status;
  }

  get retryable(): boolean {
    return ERROR_CODES[this.code].retryable;
  }

  toJSON(): { code: ErrorCode; message: string; channel?: string } {
    return this.channel === undefined ? { code: this.code, message: this.message } : { code: this.code, message: this.message, channel: this.channel };
  }
}

/**
 * Why the server ends a connection. WebSocket close codes 4000–4499 mean "reconnect and resume
 * from your cursor"; 4500–4999 mean "do not retry unchanged". SSE streams carry the same code in a
 * final `event: disconnect`.
 */
export interface Disconnect {
  readonly code: number;
  /** At most 123 bytes (the WebSocket close-frame limit). */
  readonly reason: string;
  readonly reconnect: boolean;
}

export const DISCONNECTS = {
  shutdown: { code: 4001, reason: 'server shutting down', reconnect: true },
  slow: { code: 4008, reason: 'slow consumer: outbox over limit, resume from your cursor', reconnect: true },
  noPong: { code: 4009, reason: 'no pong within the heartbeat timeout', reconnect: true },
  tokenExpired: { code: 4003, reason: 'token expired: reconnect with a new token and resume', reconnect: true },
  tryLater: { code: 4013, reason: 'credentials cannot be checked right now: reconnect later and resume', reconnect: true },
  rateLimited: { code: 4029, reason: 'far over the op rate limit: reconnect later and resume', reconnect: true },
  unauthorized: { code: 4501, reason: 'unauthorized: no valid token', reconnect: false },
  byServer: { code: 4503, reason: 'disconnected by the server', reconnect: false },
} as const satisfies Record<string, Disconnect>;
