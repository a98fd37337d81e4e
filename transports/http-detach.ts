/**
 * Takes a socket away from Node's HTTP server once its response has become a stream the transport
 * writes itself (SSE), the way Node does for an upgraded connection; and lets an upgraded
 * connection (WebSocket, MQTT) drop the response object made for its upgrade request.
 *
 * Left attached, every SSE stream keeps for its whole life what the HTTP server keeps for a
 * request in progress: the native HTTP parser (about 6 KiB of C++ memory each), the request and
 * response objects, and the server's per-connection state and listeners. Measured on 10,000 idle
 * streams of a bare Node server, that is 13.2 KiB of RSS per connection, against 6.4 KiB once
 * the parser is freed. After the detach the socket carries only the stream: anything the client
 * sends is read and dropped (an EventSource sends nothing), its end closes the socket, and the
 * transport's own 'close' and 'error' listeners do the rest.
 *
 * The parts reached for are the HTTP server's own (the socket's `parser`, `_httpMessage` and the
 * listeners it adds in `connectionListener`), unchanged since Node 12. If any is missing, the
 * socket is left attached: it costs memory, never correctness.
 */
import { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import { MAX_HEADER_BYTES } from './protocol-errors.js';

/**
 * Most a detached socket may have read in all, its request included: a request as large as the
 * server accepts, and 16 KiB after it. An EventSource sends nothing once its request is out; a
 * client that goes on sending is cut rather than read for ever.
 */
const MAX_BYTES_READ = MAX_HEADER_BYTES + 16 * 1024;

/** What Node's HTTP parser binding offers on `socket.parser`, as far as the detach uses it. */
interface HttpParser {
  _consumed?: boolean;
  unconsume(): void;
  remove(): void;
  close(): void;
  incoming: unknown;
  outgoing: unknown;
  socket: unknown;
}

interface HttpServerSocket extends Socket {
  parser?: HttpParser | null;
  _httpMessage?: unknown;
}

/** The listeners Node's HTTP server (and its response) put on a connection's socket. */
const HTTP_SERVER_LISTENERS: Readonly<Record<string, readonly string[]>> = {
  data: ['socketOnData'],
  end: ['socketOnEnd'],
  close: ['socketOnClose', 'onServerResponseClose'],
  drain: ['socketOnDrain'],
  error: ['socketOnError'],
  timeout: ['socketOnTimeout'],
  resume: ['onSocketResume'],
  pause: ['onSocketPause'],
};

const nameOf = (listener: Function): string => listener.name.replace(/^bound /, '');

/**
 * Detaches `socket` from the HTTP server; returns false (and leaves it attached) when it does not
 * look as expected. Call it after the transport has put its own 'close' and 'error' listeners on.
 */
export function detachFromHttpServer(socket: Socket): boolean {
  const raw = socket as HttpServerSocket;
  const parser = raw.parser;
  if (!parser || typeof parser.unconsume !== 'function' || typeof parser.remove !== 'function' || typeof parser.close !== 'function') return false;
  const found: Array<[string, Function]> = [];
  for (const [event, names] of Object.entries(HTTP_SERVER_LISTENERS)) {
    for (const listener of raw.listeners(event) as Function[]) if (names.includes(nameOf(listener))) found.push([event, listener]);
  }
  // Without the server's data listener gone, it would feed a freed parser.
  if (!found.some(([event]) => event === 'data')) return false;
  for (const [event, listener] of found) raw.removeListener(event, listener as (...args: unknown[]) => void);

  if (parser._consumed) {
    // The parser read the socket natively; from here on the socket's own stream does.
    parser.unconsume();
    parser._consumed = false;
  }
  parser.remove();
  parser.incoming = null;
  parser.outgoing = null;
  parser.socket = null;
  raw.parser = null;
  raw._httpMessage = null;
  // Not now: this may still run inside a callback of the parser's own.
  setImmediate(closeParser, parser);

  // Keep reading, so that the client's end is seen; what it sends meanwhile is nobody's (up to
  // MAX_BYTES_READ). These listeners are module functions, not closures here: a closure would
  // share this call's scope and keep the parser alive through it.
  raw.on('data', discard);
  raw.on('end', destroyOnEnd);
  return true;
}

function closeParser(parser: HttpParser): void {
  parser.close();
}

function discard(this: Socket): void {
  if (this.bytesRead > MAX_BYTES_READ) this.destroy();
}

/** The HTTP server's socket allows a half-open connection; a stream whose reader left is done. */
function destroyOnEnd(this: Socket): void {
  this.destroy();
}

/**
 * Lets an upgraded connection forget the HTTP request it came in on. @fastify/websocket routes the
 * upgrade through fastify with a ServerResponse of its own making, left on the TCP socket
 * (`_httpMessage`) and never sent, and puts on the WebSocket an 'error' listener that holds
 * fastify's request and reply. Together they keep the request, the reply, the response and a
 * child logger alive for the connection's whole life. `onError` takes that listener's place, so
 * the WebSocket is never without one.
 */
export function forgetUpgradeRequest(webSocket: WebSocket, tcpSocket: Socket, onError: (error: Error) => void): void {
  webSocket.removeAllListeners('error');
  webSocket.on('error', onError);
  const response = (tcpSocket as HttpServerSocket)._httpMessage;
  if (response instanceof ServerResponse) response.detachSocket(tcpSocket);
}
