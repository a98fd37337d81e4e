/**
 * Long-poll: `GET /v1/poll?channel=A&cursor=…&timeout=25`. Stateless: the cursor carries
 * everything, so each poll may land on any node. Answers at once when anything follows the cursor
 * (or there is no cursor yet), else holds the request until a message comes or the timeout passes.
 *
 * Held polls wait in a spool (as Nchan's do): all waiters on the same channels, cursor and delta
 * option share one engine registration and one reply body, and are woken with the messages that
 * came, not by re-reading the rings (which a burst may have overrun meanwhile).
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { DeltaCodec } from '../src/delta/codec.js';
import type { ResumePoint } from '../src/engine/engine.js';
import type { Frontier } from '../src/log/position.js';
import { effectiveMaxRate, neverBehind, type PollAnswer } from '../src/resume/resumer.js';
import type { TransportContext } from './context.js';
import { countRefusal, sendError, toPushError } from './http-errors.js';
import { pollBody } from './poll-format.js';
import { PollSpool } from './poll-spool.js';
import { channelsParam, deltaParam, maxRateParam, numberParam, snapshotParam, stringParam } from './request-params.js';
import type { Identity } from '../src/auth/identity.js';
import { identify } from './credentials.js';
import { withOwnSubs } from './sse.js';

export function registerPolling(app: FastifyInstance, ctx: TransportContext): void {
  const { engine, options, metrics, resumer } = ctx;
  const spool = new PollSpool(engine, options.pollMaxMessages);
  metrics.watchPollWaiters(() => spool.counts());
  ctx.onShutdown(() => spool.answerAll());

  app.get('/v1/poll', { exposeHeadRoute: false }, async (request, reply) => {
    const query = request.query as Record<string, string | string[] | undefined>;
    let channels: string[];
    let timeout: number;
    let cursorText: string | undefined;
    let delta: DeltaCodec | null;
    let snapshot: 'latest' | undefined;
    let maxRate: number | undefined;
    let identity: Identity;
    try {
      identity = await identify(ctx, request);
      channels = withOwnSubs(channelsParam(query, options.maxChannelsPerSubscription, identity.subs.length > 0), identity, options.maxChannelsPerSubscription);
      timeout = numberParam(query, 'timeout', 0, options.pollMaxTimeout, options.pollTimeout);
      cursorText = stringParam(query, 'cursor');
      delta = deltaParam(query);
      snapshot = snapshotParam(stringParam(query, 'snapshot'));
      maxRate = maxRateParam(stringParam(query, 'maxRate'));
    } catch (error) {
      const pushError = toPushError(error);
      countRefusal(metrics, 'poll', pushError);
      return sendError(reply, pushError);
    }
    reply.header('cache-control', 'no-store').type('application/json; charset=utf-8');
    const from = resumer.resumePoint(cursorText);
    const first = await resumer.collect(identity, channels, from, options.pollMaxMessages, { ...(snapshot ? { snapshot } : {}), ...(maxRate ? { maxRate } : {}) });
    if (from.kind !== 'cursor' || first.messages.length > 0 || first.resets.length > 0 || timeout === 0) {
      return send(reply, first, delta);
    }
    // A held poll is a connection like a stream: it counts against the address's limits.
    const release = ctx.guard.admit(request.ip);
    hold(reply, channels, from, first.cursor, timeout, delta, effectiveMaxRate(identity, maxRate), release);
    return reply;
  });

  function send(reply: FastifyReply, answer: PollAnswer, delta: DeltaCodec | null): FastifyReply {
    // Encoded here, once: counted and sent as the same bytes.
    const body = Buffer.from(pollBody(answer.messages, answer.cursor.toString(), answer.resets, delta, answer.snapshot === true, answer.elided));
    metrics.writtenBytes.poll += body.length;
    return reply.send(body);
  }

  function hold(reply: FastifyReply, channels: readonly string[], from: ResumePoint, looked: Frontier, timeout: number, delta: DeltaCodec | null, maxRate: number, release: () => void): void {
    metrics.connectionOpened('poll');
    reply.raw.once('close', release);
    // The point the first look covered (never behind the client's cursor): the spool goes on from there.
    const waiter = spool.wait(channels, looked, delta, maxRate, (body) => {
      clearTimeout(timer);
      metrics.connectionClosed('poll');
      if (reply.raw.destroyed) return;
      metrics.writtenBytes.poll += body.length;
      reply.send(body);
    });
    // Nothing came in time: the same cursor, or a newer one that skips only other channels' messages.
    const timer = setTimeout(() => {
      if (!spool.expire(waiter)) return;
      metrics.connectionClosed('poll');
      if (!reply.raw.destroyed) send(reply, { messages: [], resets: [], cursor: neverBehind(engine.frontier(), from).max(looked) }, delta);
    }, timeout * 1000);
    // The client went away (or a proxy gave up): stop waiting, nothing to send.
    reply.raw.on('close', () => {
      if (!spool.leave(waiter)) return;
      clearTimeout(timer);
      metrics.connectionClosed('poll');
    });
  }
}
