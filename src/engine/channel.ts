/**
 * One channel: its ring of recent messages, its subscribers, and what it can no longer replay.
 */
import { MutableFrontier, type Frontier } from './position.js';
import type { PreparedMessage } from './prepared-message.js';
import { Ring, type RingLimits } from './ring.js';

/** Anything that receives a channel's live messages (a session's subscription, a waiting poll). */
export interface Subscriber {
  deliver(message: PreparedMessage): void;
}

export class Channel {
  readonly ring: Ring;
  readonly subscribers = new Set<Subscriber>();
  /**
   * The ring holds every message of this channel positioned after this frontier. It starts where
   * the node's knowledge of the channel starts and moves forward as the ring evicts.
   */
  readonly #replayableAfter: MutableFrontier;

  constructor(readonly name: string, limits: RingLimits, replayableAfter: Frontier) {
    this.#replayableAfter = new MutableFrontier(replayableAfter.epoch, replayableAfter);
    this.ring = new Ring(limits, (evicted) => this.#replayableAfter.advance(evicted.partition, evicted.offset, evicted.item));
  }

  get replayableAfter(): Frontier {
    return this.#replayableAfter.snapshot();
  }

  /** True when the ring holds everything after `cursor` (recovery rule 2 of architecture.md). */
  canReplayFrom(cursor: Frontier): boolean {
    return cursor.covers(this.#replayableAfter.snapshot());
  }
}
