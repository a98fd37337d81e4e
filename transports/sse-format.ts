/**
 * Server-Sent Events framing: pure functions from messages and notices to bytes. Every data line
 * is single-line JSON (payloads are stored as compact JSON), so no event needs line splitting.
 */
import type { ResetNotice } from '../src/engine/engine.js';
import { defineWireFormat } from '../src/engine/prepared-message.js';
import type { Disconnect } from '../src/errors.js';

/** A message as an event of the default type (EventSource.onmessage fires); its id is the cursor. */
export const SSE_MESSAGE = defineWireFormat('sse', (fields, cursor) => Buffer.from(`id: ${cursor}\ndata: {${fields}}\n\n`));

/**
 * Stream preamble: how long the client should wait before reconnecting, and how often heartbeats
 * come (a field EventSource ignores, for clients that watch the stream's health).
 */
export function ssePreamble(retryMs: number, heartbeatMs: number): Buffer {
  return Buffer.from(`retry: ${Math.round(retryMs)}\nheartbeat: ${Math.round(heartbeatMs)}\n\n`);
}

/**
 * An id-only event: the browser updates Last-Event-ID without firing an event, so idle streams
 * keep a fresh cursor, and proxies see traffic.
 */
export function sseCursor(cursor: string): Buffer {
  return Buffer.from(`id: ${cursor}\n\n`);
}

export function sseReset(notice: ResetNotice): Buffer {
  return Buffer.from(`event: reset\ndata: ${JSON.stringify(notice)}\n\n`);
}

export function sseDisconnect(reason: Disconnect): Buffer {
  return Buffer.from(`event: disconnect\ndata: ${JSON.stringify(reason)}\n\n`);
}

/** The stream's first event: its session id (for the server API), and the user when a token named one. */
export function sseHello(session: string, user: string | undefined): Buffer {
  return Buffer.from(`event: hello\ndata: ${JSON.stringify(user === undefined ? { session } : { session, user })}\n\n`);
}

/** A subscription change made by the server (server API) or a failure of one, as the WebSocket's ops. */
export function sseNotice(event: 'subscribed' | 'unsubscribed' | 'error', fields: Record<string, unknown>): Buffer {
  return Buffer.from(`event: ${event}\ndata: ${JSON.stringify(fields)}\n\n`);
}
