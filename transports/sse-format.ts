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
 * The HTTP response head of a stream. The body is not chunked: it ends when the connection does
 * (HTTP/1.1 allows this for a response; `connection: close` says so), so each write is the events
 * themselves. `x-accel-buffering: no` asks nginx not to buffer the stream.
 */
export function sseResponseHead(extraHeaders: Record<string, string>): Buffer {
  let head = 'HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\ncache-control: no-store\r\nx-accel-buffering: no\r\nconnection: close\r\n';
  for (const [name, value] of Object.entries(extraHeaders)) head += `${name}: ${value}\r\n`;
  return Buffer.from(`${head}date: ${new Date().toUTCString()}\r\n\r\n`);
}

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
