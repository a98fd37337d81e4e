/**
 * What a route served below fastify (the long-poll, see server.ts) needs of it: the client's
 * address, the query, and replies in the same shape fastify's routes give (sendError's body).
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { parse as parseQuery } from 'node:querystring';
import type { PushError } from '../src/errors.js';

export type Query = Record<string, string | string[] | undefined>;

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

/** The error body every route sends: `{"error": {"code", "message"}}`, its status, Retry-After when there is one. */
export function sendRawError(response: ServerResponse, error: PushError, headers: OutgoingHttpHeaders): void {
  const withRetry = error.retryAfter === undefined ? headers : { ...headers, 'retry-after': String(error.retryAfter) };
  sendJsonBytes(response, error.status, { ...withRetry, 'cache-control': 'no-store' }, Buffer.from(JSON.stringify({ error: error.toJSON() })));
}
