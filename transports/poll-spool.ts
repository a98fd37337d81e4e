/**
 * Held long-polls, spooled: waiters on the same channels, cursor and delta option share one engine
 * registration, receive the messages that come (not a re-read of the rings, which a burst may have
 * overrun meanwhile), and share one reply body, built once per wake-up.
 */
import type { DeltaCodec } from '../src/delta/codec.js';
import type { Subscriber } from '../src/engine/channel.js';
import { mergeBacklogs, type ChannelEngine } from '../src/engine/engine.js';
import type { Frontier } from '../src/log/position.js';
import type { PreparedMessage } from '../src/engine/prepared-message.js';
import { pollBody } from './poll-format.js';
import { elideBacklog } from '../src/engine/elision.js';
import type { PollWaiterCounts } from '../src/metrics.js';

/** A held poll as the spool sees it. */
export interface PollWaiter {
  /** The reply body, encoded once and the same bytes for every waiter of the group. */
  answer(body: Buffer): void;
  /** The group it waits in: set by PollSpool.wait (a held poll is one object, not a wrapper too). */
  spoolEntry: SpoolEntry | undefined;
}

class SpoolEntry implements Subscriber {
  readonly waiters = new Set<PollWaiter>();
  readonly messages: PreparedMessage[] = [];
  /** More came than one reply may carry: the reply's cursor is its last message's. */
  full = false;
  /** The rings were overrun before the poll was registered: answer with no messages and its own cursor. */
  retry = false;
  scheduled = false;
  answered = false;

  constructor(
    readonly key: string,
    readonly channels: readonly string[],
    /** Everything at or before it was examined already: the held poll's starting point. */
    readonly cursor: Frontier,
    readonly delta: DeltaCodec | null,
    /** Eliding: wait this long after the first message, then answer with the latest per channel. */
    readonly maxRate: number,
    private readonly spool: PollSpool,
  ) {}

  deliver(message: PreparedMessage): void {
    // The client's cursor may be ahead of this node (it came from another): it has those already.
    if (this.answered || this.retry || message.isCoveredBy(this.cursor)) return;
    // A channel and a pattern of this poll (or two patterns) both match it: it comes twice in a row.
    if (this.messages[this.messages.length - 1] === message) return;
    this.take(message);
  }

  take(message: PreparedMessage): void {
    if (this.messages.length < this.spool.maxMessages) this.messages.push(message);
    else this.full = true;
    if (this.scheduled) return;
    this.scheduled = true;
    // Wait for the end of this turn of the event loop, so a burst goes out as one reply; elided,
    // for the interval, so the reply carries the latest of each channel (the first message is
    // then late by up to maxRate: a poll cannot be answered twice).
    if (this.maxRate > 0) setTimeout(() => this.spool.answer(this), this.maxRate).unref();
    else setImmediate(() => this.spool.answer(this));
  }
}

export class PollSpool {
  readonly #entries = new Map<string, SpoolEntry>();

  constructor(
    private readonly engine: ChannelEngine,
    readonly maxMessages: number,
  ) {}

  /**
   * Holds a poll that found nothing after `cursor` on `channels`; the waiter's answer() gets the
   * reply body once messages come (or the server shuts down).
   */
  wait<W extends PollWaiter>(channels: readonly string[], cursor: Frontier, delta: DeltaCodec | null, maxRate: number, waiter: W): W {
    const key = `${channels.join('\n')}\n${cursor.toString()}\n${delta?.format ?? ''}\n${maxRate}`;
    let entry = this.#entries.get(key);
    if (!entry) {
      entry = new SpoolEntry(key, channels, cursor, delta, maxRate, this);
      this.#entries.set(key, entry);
      const point = { kind: 'cursor', cursor } as const;
      // Registered and checked in one synchronous step: anything that came after the poll looked
      // (while it awaited) is taken now; nothing can fall between the look and the registration.
      const missed = channels.map((channel) => this.engine.subscribe(channel, entry as SpoolEntry, point));
      if (missed.some((recovery) => recovery.reset)) {
        // Overrun meanwhile: answer at once with the same cursor; the next poll reads the log.
        entry.retry = true;
        entry.scheduled = true;
        setImmediate(() => this.answer(entry as SpoolEntry));
      } else {
        for (const message of mergeBacklogs(missed)) entry.take(message);
      }
    }
    waiter.spoolEntry = entry;
    entry.waiters.add(waiter);
    return waiter;
  }

  /** Polls held, and the groups they share (one engine registration and one reply each), for the metrics (at scrape time). */
  counts(): PollWaiterCounts {
    let waiters = 0;
    for (const entry of this.#entries.values()) waiters += entry.waiters.size;
    return { waiters, groups: this.#entries.size };
  }

  /**
   * The waiter's time is up: false when an answer is already on its way (messages came this turn,
   * e.g. from a timer that published), which then goes out as usual.
   */
  expire(waiter: PollWaiter): boolean {
    const entry = waiter.spoolEntry;
    return entry === undefined || entry.scheduled ? false : this.leave(waiter);
  }

  /** Stops waiting (the client left); false when the waiter was answered already. */
  leave(waiter: PollWaiter): boolean {
    const entry = waiter.spoolEntry;
    if (entry === undefined || entry.answered || !entry.waiters.delete(waiter)) return false;
    if (entry.waiters.size === 0) this.#drop(entry);
    return true;
  }

  /** Answers every waiter now (shutdown): what came so far, with its cursor. */
  answerAll(): void {
    for (const entry of [...this.#entries.values()]) this.answer(entry);
  }

  answer(entry: SpoolEntry): void {
    if (entry.answered) return;
    this.#drop(entry);
    if (entry.waiters.size === 0) return;
    const messages = entry.retry ? [] : entry.messages;
    const last = messages[messages.length - 1];
    // All that came is in the reply: the node's frontier. Cut: the last message's own cursor.
    const cursor = entry.retry ? entry.cursor : (entry.full && last ? last.frontier : this.engine.frontier()).max(entry.cursor);
    const body = pollBody(messages, cursor.toString(), [], entry.delta, false, entry.maxRate > 0 ? elideBacklog(messages) : undefined);
    // Encoded once here: a string would be encoded again for each waiter's socket.
    const bytes = Buffer.from(body);
    for (const waiter of entry.waiters) waiter.answer(bytes);
    entry.waiters.clear();
  }

  #drop(entry: SpoolEntry): void {
    entry.answered = true;
    if (this.#entries.get(entry.key) === entry) this.#entries.delete(entry.key);
    for (const channel of entry.channels) this.engine.unsubscribe(channel, entry);
  }
}
