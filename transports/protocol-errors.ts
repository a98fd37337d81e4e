/**
 * Errors below the routes: a request Node's HTTP parser refuses (headers over the limit, bytes
 * that are not HTTP, a request that took too long), and a WebSocket frame ws refuses. Both are the
 * client's doing: they get the documented error shape (HTTP) or close code (WebSocket), and are
 * never logged, so a flood of them cannot become a flood of log lines.
 */
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import { ERROR_CODES, PushError, type ErrorCode } from '../src/errors.js';
import type { TransportContext } from './context.js';
import { countRefusal, errorBody } from './http-errors.js';

/** Request line plus headers the server reads (Node's default is 16 KiB). */
export const MAX_HEADER_BYTES = 65_536;

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 408: 'Request Timeout', 431: 'Request Header Fields Too Large' };

/** The server's `clientError` handler: our error body on the raw socket, then the socket is closed. */
export function answerClientError(error: Error & { code?: string; rawPacket?: unknown }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const code: ErrorCode =
    error.code === 'HPE_HEADER_OVERFLOW' ? 'headers_too_large'
    : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'request_timeout'
    : 'bad_request';
  const message =
    code === 'headers_too_large' ? `the request line and headers are over ${MAX_HEADER_BYTES / 1024} KiB`
    : code === 'request_timeout' ? 'the request did not arrive in time'
    : 'the request is not valid HTTP';
  const status = ERROR_CODES[code].status;
  const body = JSON.stringify(errorBody(new PushError(code, message)));
  // A HEAD answer has no body; the parser may have read enough of the request line to tell.
  const head = Buffer.isBuffer(error.rawPacket) && error.rawPacket.subarray(0, 5).toString('latin1') === 'HEAD ';
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\nContent-Type: application/json; charset=utf-8\r\nCache-Control: no-store\r\n` +
        `Content-Length: ${head ? 0 : Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${head ? '' : body}`,
    );
  }
  socket.destroy();
}

/** True for ws's own refusals of a malformed frame (it closes with 1002, 1007 or 1009 by itself). */
export function isFrameError(error: unknown): error is Error {
  const code = error instanceof Error ? (error as { code?: unknown }).code : undefined;
  return typeof code === 'string' && code.startsWith('WS_ERR_');
}

/**
 * An error on an established WebSocket (the WebSocket and MQTT transports). A malformed frame (bad
 * UTF-8, over maxPayload, a protocol error) is the client's: ws closes the socket itself with
 * 1007 / 1009 / 1002, and it is counted, not logged. Anything else is ours: logged, and the
 * socket is cut.
 */
export function onWebSocketError(ctx: TransportContext, error: Error, socket: WebSocket): void {
  if (isFrameError(error)) return countRefusal(ctx.metrics, 'ws', new PushError('bad_request', error.message));
  ctx.logError(error, 'websocket failed');
  socket.terminate();
}
