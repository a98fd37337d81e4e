/**
 * What a route served below fastify (the long-poll, see server.ts) needs of it: the client's
 * address, the query, and replies in the same shape fastify's routes give (sendError's body).
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { parse as parseQuery } from 'node:querystring';
import type { PushError } from '../src/errors.js';
import type { TransportContext } from './context.js';
import { countRefusal, errorBody, errorHeaders, toPushError } from './http-errors.js';

export type Query = Record<string, string | string[] | undefined>;

/** A route served on Node's request and response. */
export type RawHandler = (request: IncomingMessage, response: ServerResponse) => void;

/** What a raw route's own code gets: the client's address and the headers every answer carries. */
export interface RawExchange {
  readonly request: IncomingMessage;
  readonly response: ServerResponse;
  readonly address: string;
  /** Cache-Control and CORS; the route adds its own. */
  readonly headers: OutgoingHttpHeaders;
}

/**
 * A raw route with what fastify's hooks and error handler give the others: the new-connection
 * rate (a refused connection is closed after its 429), CORS headers, and any error thrown by
 * `serve` (or rejecting the promise it returns) answered with the error body, counted under
 * `transport` (and logged when internal). `serve` returns a promise only when it must wait (a
 * token to verify, the log to read): the usual poll is served without one.
 */
export function rawRoute(ctx: TransportContext, name: string, transport: string, serve: (exchange: RawExchange) => void | Promise<void>): RawHandler {
  const fail = (error: unknown, response: ServerResponse, headers: OutgoingHttpHeaders): void => {
    const pushError = toPushError(error);
    if (pushError.code === 'internal') ctx.logError(error, `request failed: ${name}`);
    // Gone, or answered already: nothing more can be said on this response.
    if (response.headersSent || response.destroyed) return;
    countRefusal(ctx.metrics, transport, pushError);
    try {
      sendRawError(response, pushError, headers);
    } catch (failed) {
      // What cannot be answered (the error answer itself failed) is logged, and the connection
      // ends; the client retries (a poll polls again).
      ctx.logError(failed, `request failed: ${name}`);
      response.destroy();
    }
  };
  return (request, response) => {
    const address = clientAddress(request, ctx.options.trustProxy);
    const headers: OutgoingHttpHeaders = { 'cache-control': 'no-store', ...ctx.cors.headers(request.headers.origin) };
    let waiting: void | Promise<void>;
    try {
      try {
        ctx.guard.firstRequest(request.socket, address);
      } catch (error) {
        headers['connection'] = 'close';
        throw error;
      }
      waiting = serve({ request, response, address, headers });
    } catch (error) {
      fail(error, response, headers);
      return;
    }
    if (waiting instanceof Promise) waiting.then(undefined, (error: unknown) => fail(error, response, headers));
  };
}

/**
 * The client's address as fastify's `request.ip` gives it: with trustProxy on (every proxy
 * trusted), the first address of X-Forwarded-For; else the socket's peer.
 */
export function clientAddress(request: IncomingMessage, trustProxy: boolean): string {
  const forwarded = trustProxy ? request.headers['x-forwarded-for'] : undefined;
  if (forwarded !== undefined) {
    const first = (Array.isArray(forwarded) ? forwarded.join(',') : forwarded).split(',', 1)[0]?.trim();
    if (first) return first;
  }
  return request.socket.remoteAddress ?? '';
}

/** The query string of a request URL (repeated names become arrays, as fastify's parser makes them). */
export function queryOf(url: string | undefined): Query {
  const mark = url?.indexOf('?') ?? -1;
  // No cap on the number of parameters (Node's default is 1,000): the routes count them and refuse.
  return mark < 0 ? {} : (parseQuery((url as string).slice(mark + 1), '&', '=', { maxKeys: 0 }) as Query);
}

/**
 * A JSON reply with a known length (so no chunked framing), written in one go. `headers` is the
 * request's own object (RawExchange.headers): completed here rather than copied.
 */
export function sendJsonBytes(response: ServerResponse, status: number, headers: OutgoingHttpHeaders, body: Buffer): void {
  headers['content-type'] = 'application/json; charset=utf-8';
  headers['content-length'] = body.length;
  response.writeHead(status, headers);
  response.end(body);
}

/** An error answered as fastify's routes answer it (sendError): the same status, headers and body. */
export function sendRawError(response: ServerResponse, error: PushError, headers: OutgoingHttpHeaders): void {
  sendJsonBytes(response, error.status, { ...headers, ...errorHeaders(error) }, Buffer.from(JSON.stringify(errorBody(error))));
}
