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
 * so with more messages per reply. What fastify's hooks do for other routes is done here through
 * the same code: the new-connection rate, CORS headers, credentials, the error body.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { DeltaCodec } from '../src/delta/codec.js';
import type { ResumePoint } from '../src/engine/engine.js';
import { effectiveMaxRate, type PollAnswer } from '../src/resume/resumer.js';
import type { TransportContext } from './context.js';
import { pollBody } from './poll-format.js';
import { PollSpool } from './poll-spool.js';
import { HeldPoll, type HeldPolls } from './held-poll.js';
import { PollAnswers } from './poll-answers.js';
import { isPattern } from '../src/protocol/channel-filter.js';
import { channelsParam, deltaParam, maxRateParam, numberParam, snapshotParam, stringParam } from './request-params.js';
import { credentialOf } from './credentials.js';
import { withOwnSubs } from './sse.js';
import { queryOf, rawRoute, sendJsonBytes, type Query, type RawHandler } from './raw-http.js';
import type { Identity } from '../src/auth/identity.js';

/** Whether a request is a long-poll (for the server's routing below fastify). */
export function isPollRequest(request: IncomingMessage): boolean {
  const url = request.url;
  return request.method === 'GET' && url !== undefined && url.startsWith('/v1/poll') && (url.length === 8 || url.charCodeAt(8) === 63 /* ? */);
}

/** A poll's request, read once: what answering it (now, or after a read from the log) needs. */
interface PollRequest {
  readonly channels: readonly string[];
  readonly from: ResumePoint;
  readonly timeout: number;
  readonly delta: DeltaCodec | null;
  readonly elideMs: number;
  /** The key of an answer pollers with the same request share; undefined: not shared. */
  readonly shared: string | undefined;
  /** The newest seq on the channels when the poll looked (a shared answer is valid until it moves). */
  readonly newest: number;
  readonly address: string;
}

/** Answers kept for pollers that come back with the same cursor, and their bytes in all. */
const SHARED_ANSWERS = 1_000;
const SHARED_ANSWER_BYTES = 16 * 1024 * 1024;

export function createPollRoute(ctx: TransportContext): RawHandler {
  const { engine, options, metrics, resumer } = ctx;
  const spool = new PollSpool(engine, options.pollMaxMessages);
  const answers = new PollAnswers(SHARED_ANSWERS, SHARED_ANSWER_BYTES);
  metrics.watchPollWaiters(() => spool.counts());
  const held: HeldPolls = { spool, metrics, engine, reply, encode };
  ctx.onShutdown(() => spool.answerAll());

  return rawRoute(ctx, 'GET /v1/poll', 'poll', ({ request, response, address, headers }) => {
    const query = queryOf(request.url);
    const credential = credentialOf({ headers: request.headers, query });
    const identity = ctx.auth.knownIdentity(credential);
    // Only a token not verified lately makes the poll wait here.
    if (identity === undefined) return ctx.auth.identify(credential).then((verified) => poll(verified, query, response, address, headers));
    return poll(identity, query, response, address, headers);
  });

  function poll(identity: Identity, query: Query, response: ServerResponse, address: string, headers: OutgoingHttpHeaders): void | Promise<void> {
    const channels = withOwnSubs(channelsParam(query, options.maxChannelsPerSubscription, identity.subs.length > 0), identity, options.maxChannelsPerSubscription);
    const timeout = numberParam(query, 'timeout', 0, options.pollMaxTimeout, options.pollTimeout);
    const cursorText = stringParam(query, 'cursor');
    const delta = deltaParam(query);
    const snapshot = snapshotParam(stringParam(query, 'snapshot'));
    const maxRate = maxRateParam(stringParam(query, 'maxRate'));
    const from = resumer.resumePoint(cursorText);
    const elideMs = effectiveMaxRate(identity, maxRate);
    // Pollers with the same channels, cursor and delta option share an answer (poll-answers.ts);
    // not elided ones (timed per poll) nor patterns (their rings are not one lookup each).
    const shared = from.kind === 'cursor' && elideMs === 0 && !channels.some(isPattern) ? `${channels.join('\n')}\n${cursorText ?? ''}\n${delta?.format ?? ''}` : undefined;
    const newest = shared === undefined ? 0 : engine.newestSeq(channels);
    if (shared !== undefined) {
      // Entitlements first, as collect() would check them: a shared answer is no way around them.
      resumer.checkSubscribe(identity, channels);
      const body = answers.get(shared, newest);
      if (body !== undefined) {
        reply(response, headers, body);
        return;
      }
    }
    const looked = resumer.collect(identity, channels, from, options.pollMaxMessages, snapshot || maxRate ? { ...(snapshot ? { snapshot } : {}), ...(maxRate ? { maxRate } : {}) } : undefined);
    const request: PollRequest = { channels, from, timeout, delta, elideMs, shared, newest, address };
    // Only a read from the log (a cursor behind the rings) makes the poll wait here.
    if (looked instanceof Promise) return looked.then((first) => answerOrHold(request, first, response, headers));
    answerOrHold(request, looked, response, headers);
  }

  /** Answers at once when anything followed the cursor (or there was none), else holds the poll. */
  function answerOrHold(request: PollRequest, first: PollAnswer, response: ServerResponse, headers: OutgoingHttpHeaders): void {
    const { channels, from, timeout, delta, shared, newest } = request;
    if (from.kind !== 'cursor' || first.messages.length > 0 || first.resets.length > 0 || timeout === 0) {
      const body = encode(first, delta);
      // Only if nothing came while it was read (a read from the log awaits): else it may lack it.
      if (shared !== undefined && (first.messages.length > 0 || first.resets.length > 0) && engine.newestSeq(channels) === newest) answers.set(shared, newest, body);
      reply(response, headers, body);
      return;
    }
    // A held poll is a connection like a stream: it counts against the address's limits.
    const release = ctx.guard.admit(request.address);
    metrics.connectionOpened('poll');
    // The point the first look covered (never behind the client's cursor): the spool goes on from there.
    const looked = first.cursor;
    spool.wait(channels, looked, delta, request.elideMs, new HeldPoll(held, response, headers, from, looked, delta, release, timeout * 1000));
  }

  /** A reply body, encoded once: counted and sent as the same bytes. */
  function encode(answer: PollAnswer, delta: DeltaCodec | null): Buffer {
    return Buffer.from(pollBody(answer.messages, answer.cursor.toString(), answer.resets, delta, answer.snapshot === true, answer.elided));
  }

  function reply(response: ServerResponse, headers: OutgoingHttpHeaders, body: Buffer): void {
    metrics.writtenBytes.poll += body.length;
    sendJsonBytes(response, 200, headers, body);
  }
}
