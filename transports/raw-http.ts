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
 * `serve` answered with the error body, counted under `transport` (and logged when internal).
 */
export function rawRoute(ctx: TransportContext, name: string, transport: string, serve: (exchange: RawExchange) => Promise<void>): RawHandler {
  const attempt = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const address = clientAddress(request, ctx.options.trustProxy);
    const headers: OutgoingHttpHeaders = { 'cache-control': 'no-store', ...ctx.cors.headers(request.headers.origin) };
    try {
      try {
        ctx.guard.firstRequest(request.socket, address);
      } catch (error) {
        headers['connection'] = 'close';
        throw error;
      }
      await serve({ request, response, address, headers });
    } catch (error) {
      const pushError = toPushError(error);
      if (pushError.code === 'internal') ctx.logError(error, `request failed: ${name}`);
      // Gone, or answered already: nothing more can be said on this response.
      if (response.headersSent || response.destroyed) return;
      countRefusal(ctx.metrics, transport, pushError);
      sendRawError(response, pushError, headers);
    }
  };
  return (request, response) => {
    // What cannot be answered (the error answer itself failed) is logged, and the connection
    // ends; the client retries (a poll polls again).
    attempt(request, response).catch((error: unknown) => {
      ctx.logError(error, `request failed: ${name}`);
      response.destroy();
    });
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

/** A JSON reply with a known length (so no chunked framing), written in one go. */
export function sendJsonBytes(response: ServerResponse, status: number, headers: OutgoingHttpHeaders, body: Buffer): void {
  response.writeHead(status, { ...headers, 'content-type': 'application/json; charset=utf-8', 'content-length': body.length });
  response.end(body);
}

/** An error answered as fastify's routes answer it (sendError): the same status, headers and body. */
export function sendRawError(response: ServerResponse, error: PushError, headers: OutgoingHttpHeaders): void {
  sendJsonBytes(response, error.status, { ...headers, ...errorHeaders(error) }, Buffer.from(JSON.stringify(errorBody(error))));
}
