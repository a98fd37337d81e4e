/**
 * A held long-poll (polling.ts): it waits in the spool until messages come, its time is up or its
 * client goes away, and whichever comes first ends it.
 */
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { DeltaCodec } from '../src/delta/codec.js';
import type { ResumePoint } from '../src/engine/engine.js';
import type { Frontier } from '../src/log/position.js';
import { neverBehind, type PollAnswer } from '../src/resume/resumer.js';
import type { TransportContext } from './context.js';
import type { PollSpool, PollWaiter } from './poll-spool.js';

/** What every held poll of the route shares. */
export interface HeldPolls {
  readonly spool: PollSpool;
  readonly metrics: TransportContext['metrics'];
  readonly engine: TransportContext['engine'];
  reply(response: ServerResponse, headers: OutgoingHttpHeaders, body: Buffer): void;
  encode(answer: PollAnswer, delta: DeltaCodec | null): Buffer;
}

/**
 * A poll held until messages come (the spool answers it), its time is up, or the client goes
 * away. One object with one listener: thousands are held at once, and each lives long enough to
 * be copied by the garbage collector, so closures and wrappers per poll are what it would copy.
 */
export class HeldPoll implements PollWaiter {
  spoolEntry: PollWaiter['spoolEntry'] = undefined;
  readonly #timer: NodeJS.Timeout;

  constructor(
    private readonly polls: HeldPolls,
    private readonly response: ServerResponse,
    private readonly headers: OutgoingHttpHeaders,
    private readonly from: ResumePoint,
    private readonly looked: Frontier,
    private readonly delta: DeltaCodec | null,
    private readonly release: () => void,
    timeoutMs: number,
  ) {
    this.#timer = setTimeout(expireHeldPoll, timeoutMs, this);
    // The reply went out, or the client went away (or a proxy gave up): in the second case stop
    // waiting, there is nothing to send.
    response.on('close', this.#closed);
  }

  answer(body: Buffer): void {
    clearTimeout(this.#timer);
    this.polls.metrics.connectionClosed('poll');
    if (!this.response.destroyed) this.polls.reply(this.response, this.headers, body);
  }

  /** Nothing came in time: the same cursor, or a newer one that skips only other channels' messages. */
  expire(): void {
    const { polls, response } = this;
    if (!polls.spool.expire(this)) return;
    polls.metrics.connectionClosed('poll');
    if (!response.destroyed) polls.reply(response, this.headers, polls.encode({ messages: [], resets: [], cursor: neverBehind(polls.engine.frontier(), this.from).max(this.looked) }, this.delta));
  }

  readonly #closed = (): void => {
    this.release();
    if (!this.polls.spool.leave(this)) return;
    clearTimeout(this.#timer);
    this.polls.metrics.connectionClosed('poll');
  };
}

function expireHeldPoll(poll: HeldPoll): void {
  poll.expire();
}
