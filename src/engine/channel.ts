/**
 * One channel: its ring of recent messages, its subscribers, and what it can no longer replay.
 */
import { MutableFrontier, type Frontier } from '../log/position.js';
import type { PatternEntry, PatternIndex } from './pattern-index.js';
import type { DeltaBase, PreparedMessage } from './prepared-message.js';
import { Ring, type RingLimits } from './ring.js';

/** Anything that receives a channel's live messages (a session's subscription, a waiting poll). */
export interface Subscriber {
  deliver(message: PreparedMessage): void;
}

export class Channel {
  readonly ring: Ring;
  readonly subscribers = new Set<Subscriber>();
  /** The pattern subscriptions matching this channel, as of {@link #patternGeneration}. */
  #patterns: PatternEntry[] = [];
  #patternGeneration = -1;
  /** The newest message's id and payload: the base of the next message's delta. */
  #last: DeltaBase | undefined;
  /** Messages appended since the engine last sampled the channel's traffic. */
  #messages = 0;
  /**
   * The ring holds every message of this channel positioned after this frontier. It starts where
   * the node's knowledge of the channel starts and moves forward as the ring evicts.
   */
  readonly #replayableAfter: MutableFrontier;

  constructor(readonly name: string, limits: RingLimits, replayableAfter: Frontier) {
    this.#replayableAfter = new MutableFrontier(replayableAfter.epoch, replayableAfter);
    // The evicted message's own frontier says whether it ended its record (item WHOLE_RECORD).
    this.ring = new Ring(limits, (evicted) =>
      this.#replayableAfter.advance(evicted.partition, evicted.offset, evicted.frontier.items[evicted.partition] as number),
    );
  }

  /** Adds a message to the history; it becomes the delta base of the next one. */
  append(message: PreparedMessage, now: number): void {
    message.deltaBase = this.#last;
    this.#last = { id: message.id, payload: message.payload };
    this.ring.push(message, now);
    this.#messages++;
  }

  /** Messages appended since the previous call (the engine's traffic sample). */
  takeMessageCount(): number {
    const count = this.#messages;
    this.#messages = 0;
    return count;
  }

  /** The live pattern subscriptions matching this channel: cached until a pattern comes or goes. */
  patternMatches(index: PatternIndex): readonly PatternEntry[] {
    if (this.#patternGeneration !== index.generation) {
      this.#patterns = index.match(this.name);
      this.#patternGeneration = index.generation;
    }
    return this.#patterns;
  }

  get replayableAfter(): Frontier {
    return this.#replayableAfter.snapshot();
  }

  /** True when the ring holds everything after `cursor` (recovery rule 2 of architecture.md). */
  canReplayFrom(cursor: Frontier): boolean {
    return cursor.covers(this.#replayableAfter.snapshot());
  }
}
