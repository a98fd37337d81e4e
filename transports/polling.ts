/**
 * Long-poll: `GET /v1/poll?channel=A&cursor=…&timeout=25`. Stateless: the cursor carries
 * everything, so each poll may land on any node. Answers at once when anything follows the cursor
 * (or there is no cursor yet), else holds the request until a message comes or the timeout passes.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { DeltaCodec } from '../src/delta/codec.js';
import type { Subscriber } from '../src/engine/channel.js';
import type { DeepResumeResult } from '../src/engine/deep-resume.js';
import { mergeBacklogs, type ChannelEngine, type ResetNotice, type ResumePoint } from '../src/engine/engine.js';
import type { Frontier } from '../src/engine/position.js';
import type { PreparedMessage } from '../src/engine/prepared-message.js';
import { resolveDeep, type TransportContext } from './context.js';
import { sendError, toPushError } from './http-errors.js';
import { pollBody } from './poll-format.js';
import { channelsParam, deltaParam, numberParam, stringParam } from './request-params.js';

interface Answer {
  readonly messages: PreparedMessage[];
  readonly resets: ResetNotice[];
  readonly cursor: Frontier;
}

/** Everything after `from` on `channels`, at most `max` messages, and the cursor to continue from. */
export function collect(engine: ChannelEngine, channels: readonly string[], from: ResumePoint, max: number): Answer {
  const recoveries = channels.map((channel) => engine.recover(channel, from));
  const resets = recoveries.flatMap((recovery) => (recovery.reset ? [recovery.reset] : []));
  let messages = mergeBacklogs(recoveries);
  let cursor = engine.frontier();
  if (messages.length > max) {
    messages = messages.slice(0, max);
    cursor = (messages[max - 1] as PreparedMessage).frontier;
  }
  // Never hand back a cursor behind the client's own (it may come from a node that read further).
  if (from.kind === 'cursor') cursor = cursor.max(from.cursor);
  return { messages, resets, cursor };
}

/**
 * Messages read back from the log go first, then the rings'; the reply stays within `max`. When it
 * is cut among the ring's messages, the cursor is raised to the end of the range read back: a ring
 * message's own cursor can lie behind it on those partitions, and the next poll would read the
 * range again.
 */
function withDeep(deep: DeepResumeResult, answer: Answer, max: number): Answer {
  if (deep.messages.length === 0 && deep.resets.length === 0) return answer;
  const resets = [...deep.resets, ...answer.resets];
  const all = [...deep.messages, ...answer.messages];
  if (all.length <= max) return { messages: all, resets, cursor: answer.cursor };
  const messages = all.slice(0, max);
  let cursor = (messages[max - 1] as PreparedMessage).frontier;
  if (max > deep.messages.length && deep.from.kind === 'cursor') cursor = cursor.max(deep.from.cursor);
  return { messages, resets, cursor };
}

export function registerPolling(app: FastifyInstance, ctx: TransportContext): void {
  const { engine, options, metrics } = ctx;
  const pending = new Set<() => void>();
  ctx.onShutdown(() => {
    for (const answerNow of [...pending]) answerNow();
  });

  app.get('/v1/poll', async (request, reply) => {
    const query = request.query as Record<string, string | string[] | undefined>;
    let channels: string[];
    let timeout: number;
    let cursorText: string | undefined;
    let delta: DeltaCodec | null;
    try {
      channels = channelsParam(query, options.maxChannelsPerSubscription);
      timeout = numberParam(query, 'timeout', 0, options.pollMaxTimeout, options.pollTimeout);
      cursorText = stringParam(query, 'cursor');
      delta = deltaParam(query);
    } catch (error) {
      const pushError = toPushError(error);
      metrics.badInput('poll', pushError.code);
      return sendError(reply, pushError);
    }
    reply.header('cache-control', 'no-store').type('application/json; charset=utf-8');
    const deep = await resolveDeep(ctx, channels, engine.resumePoint(cursorText));
    const from = deep.from;
    const first = withDeep(deep, collect(engine, channels, from, options.pollMaxMessages), options.pollMaxMessages);
    if (from.kind !== 'cursor' || first.messages.length > 0 || first.resets.length > 0 || timeout === 0) {
      return send(reply, first, delta);
    }
    wait(reply, channels, from, timeout, delta);
    return reply;
  });

  function send(reply: FastifyReply, answer: Answer, delta: DeltaCodec | null): FastifyReply {
    return reply.send(pollBody(answer.messages, answer.cursor.toString(), answer.resets, delta));
  }

  function wait(reply: FastifyReply, channels: readonly string[], from: ResumePoint, timeout: number, delta: DeltaCodec | null): void {
    let done = false;
    let scheduled = false;
    /** Stops waiting; false when something else already did. */
    const release = (): boolean => {
      if (done) return false;
      done = true;
      pending.delete(finish);
      clearTimeout(timer);
      for (const channel of channels) engine.unsubscribe(channel, waiter);
      metrics.connectionClosed('poll');
      return true;
    };
    const finish = (): void => {
      if (release() && !reply.raw.destroyed) send(reply, collect(engine, channels, from, options.pollMaxMessages), delta);
    };
    const waiter: Subscriber = {
      // Wait for the end of this turn of the event loop, so a burst goes out as one reply.
      deliver() {
        if (scheduled || done) return;
        scheduled = true;
        setImmediate(() => {
          scheduled = false;
          if (done) return;
          // Messages the client already holds (its cursor is ahead of this node) do not count.
          if (collect(engine, channels, from, 1).messages.length > 0) finish();
        });
      },
    };
    const timer = setTimeout(finish, timeout * 1000);
    pending.add(finish);
    metrics.connectionOpened('poll');
    for (const channel of channels) engine.subscribe(channel, waiter, { kind: 'now' });
    // The client went away (or a proxy gave up): stop waiting, nothing to send.
    reply.raw.on('close', release);
  }
}
