/**
 * Long-poll: `GET /v1/poll?channel=A&cursor=…&timeout=25`. Stateless: the cursor carries
 * everything, so each poll may land on any node. Answers at once when anything follows the cursor
 * (or there is no cursor yet), else holds the request until a message comes or the timeout passes.
 *
 * Held polls wait in a spool (as Nchan's do): all waiters on the same channels, cursor and delta
 * option share one engine registration and one reply body, and are woken with the messages that
 * came, not by re-reading the rings (which a burst may have overrun meanwhile).
 *
 * Every poll is a whole HTTP request, so it is served on Node's request and response directly
 * (server.ts routes it here before fastify): fastify's cycle (its request and reply objects, hooks,
 * promise chain) was the larger part of a poll's cost, and a cheaper poll is answered sooner and
 * so with more messages per reply. What fastify's hooks do for other routes is done here the same
 * way: the new-connection rate, CORS headers, the error body.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { DeltaCodec } from '../src/delta/codec.js';
import type { ResumePoint } from '../src/engine/engine.js';
import type { Frontier } from '../src/log/position.js';
import { effectiveMaxRate, neverBehind, type PollAnswer } from '../src/resume/resumer.js';
import type { TransportContext } from './context.js';
import { countRefusal, toPushError } from './http-errors.js';
import { pollBody } from './poll-format.js';
import { PollSpool } from './poll-spool.js';
import { channelsParam, deltaParam, maxRateParam, numberParam, snapshotParam, stringParam } from './request-params.js';
import { identify } from './credentials.js';
import { withOwnSubs } from './sse.js';
import { clientAddress, queryOf, sendJsonBytes, sendRawError } from './raw-http.js';

/** Serves one long-poll on Node's request and response. */
export type PollHandler = (request: IncomingMessage, response: ServerResponse) => void;

/** Whether a request is a long-poll (for the server's routing below fastify). */
export function isPollRequest(request: IncomingMessage): boolean {
  const url = request.url;
  return request.method === 'GET' && url !== undefined && url.startsWith('/v1/poll') && (url.length === 8 || url.charCodeAt(8) === 63 /* ? */);
}

export function registerPolling(app: FastifyInstance, ctx: TransportContext): PollHandler {
  const { engine, options, metrics, resumer } = ctx;
  const spool = new PollSpool(engine, options.pollMaxMessages);
  metrics.watchPollWaiters(() => spool.counts());
  ctx.onShutdown(() => spool.answerAll());

  const handle: PollHandler = (request, response) => {
    // What serve() cannot answer itself (a failure after its reply began) is logged; the client's
    // connection then ends with the response, and it polls again.
    serve(request, response).catch((error: unknown) => {
      ctx.logError(error, 'request failed: GET /v1/poll');
      response.destroy();
    });
  };
  // The route as fastify knows it, for whatever reaches fastify anyway (app.inject, say): the
  // same handler, after fastify's hooks, on the same raw request and response.
  app.get('/v1/poll', { exposeHeadRoute: false }, (request, reply) => {
    reply.hijack();
    handle(request.raw, reply.raw);
  });
  return handle;

  async function serve(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const query = queryOf(request.url);
    const address = clientAddress(request, options.trustProxy);
    const headers: OutgoingHttpHeaders = { 'cache-control': 'no-store', ...ctx.cors.headers(request.headers.origin) };
    try {
      try {
        ctx.guard.firstRequest(request.socket, address);
      } catch (error) {
        // Refused as a new connection: it may not go on with keep-alive requests either.
        headers['connection'] = 'close';
        throw error;
      }
      const identity = await identify(ctx, { headers: request.headers, query });
      const channels = withOwnSubs(channelsParam(query, options.maxChannelsPerSubscription, identity.subs.length > 0), identity, options.maxChannelsPerSubscription);
      const timeout = numberParam(query, 'timeout', 0, options.pollMaxTimeout, options.pollTimeout);
      const cursorText = stringParam(query, 'cursor');
      const delta = deltaParam(query);
      const snapshot = snapshotParam(stringParam(query, 'snapshot'));
      const maxRate = maxRateParam(stringParam(query, 'maxRate'));
      const from = resumer.resumePoint(cursorText);
      const first = await resumer.collect(identity, channels, from, options.pollMaxMessages, { ...(snapshot ? { snapshot } : {}), ...(maxRate ? { maxRate } : {}) });
      if (from.kind !== 'cursor' || first.messages.length > 0 || first.resets.length > 0 || timeout === 0) {
        send(response, headers, first, delta);
        return;
      }
      // A held poll is a connection like a stream: it counts against the address's limits.
      const release = ctx.guard.admit(address);
      hold(response, headers, channels, from, first.cursor, timeout, delta, effectiveMaxRate(identity, maxRate), release);
    } catch (error) {
      if (response.headersSent) throw error;
      const pushError = toPushError(error);
      if (pushError.code === 'internal') ctx.logError(error, 'request failed: GET /v1/poll');
      countRefusal(metrics, 'poll', pushError);
      sendRawError(response, pushError, headers);
    }
  }

  function send(response: ServerResponse, headers: OutgoingHttpHeaders, answer: PollAnswer, delta: DeltaCodec | null): void {
    // Encoded here, once: counted and sent as the same bytes.
    const body = Buffer.from(pollBody(answer.messages, answer.cursor.toString(), answer.resets, delta, answer.snapshot === true, answer.elided));
    reply(response, headers, body);
  }

  function reply(response: ServerResponse, headers: OutgoingHttpHeaders, body: Buffer): void {
    metrics.writtenBytes.poll += body.length;
    sendJsonBytes(response, 200, headers, body);
  }

  function hold(response: ServerResponse, headers: OutgoingHttpHeaders, channels: readonly string[], from: ResumePoint, looked: Frontier, timeout: number, delta: DeltaCodec | null, maxRate: number, release: () => void): void {
    metrics.connectionOpened('poll');
    // The point the first look covered (never behind the client's cursor): the spool goes on from there.
    const waiter = spool.wait(channels, looked, delta, maxRate, (body) => {
      clearTimeout(timer);
      metrics.connectionClosed('poll');
      if (!response.destroyed) reply(response, headers, body);
    });
    // Nothing came in time: the same cursor, or a newer one that skips only other channels' messages.
    const timer = setTimeout(() => {
      if (!spool.expire(waiter)) return;
      metrics.connectionClosed('poll');
      if (!response.destroyed) send(response, headers, { messages: [], resets: [], cursor: neverBehind(engine.frontier(), from).max(looked) }, delta);
    }, timeout * 1000);
    // The reply went out, or the client went away (or a proxy gave up): in the second case stop
    // waiting, there is nothing to send.
    response.once('close', () => {
      release();
      if (!spool.leave(waiter)) return;
      clearTimeout(timer);
      metrics.connectionClosed('poll');
    });
  }
}
