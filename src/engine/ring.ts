/**
 * A channel's recent history: a circular buffer bounded by message count, bytes and age.
 * No I/O and no timers: age is enforced whenever the ring is touched.
 */
import type { Frontier } from '../log/position.js';
import type { PreparedMessage } from './prepared-message.js';

export interface RingLimits {
  /** Most messages kept. */
  readonly maxCount: number;
  /** Most bytes kept (payload plus bookkeeping, see PreparedMessage.size). */
  readonly maxBytes: number;
  /** Oldest message kept, in ms since it reached this node. */
  readonly maxAgeMs: number;
}

export class Ring {
  // Grows by doubling up to maxCount, so the many channels that hold one or two messages stay small.
  #slots: (PreparedMessage | undefined)[];
  #head = 0;
  #count = 0;
  #bytes = 0;
  /** True once the ring holds messages of more than one partition (until it is empty again). */
  #mixed = false;

  constructor(
    private readonly limits: RingLimits,
    /** Told of every message that leaves the ring, so the channel knows what it can no longer replay. */
    private readonly onEvict: (message: PreparedMessage) => void,
  ) {
    this.#slots = new Array(Math.min(2, limits.maxCount));
  }

  get count(): number {
    return this.#count;
  }

  get bytes(): number {
    return this.#bytes;
  }

  get newest(): PreparedMessage | undefined {
    return this.#count === 0 ? undefined : this.#at(this.#count - 1);
  }

  push(message: PreparedMessage, now: number): void {
    if (this.#count > 0 && (this.#at(this.#count - 1) as PreparedMessage).partition !== message.partition) this.#mixed = true;
    if (this.#count === this.#slots.length) {
      if (this.#count < this.limits.maxCount) this.#grow();
      else this.#evictOldest();
    }
    this.#slots[(this.#head + this.#count) % this.#slots.length] = message;
    this.#count++;
    this.#bytes += message.size;
    while (this.#count > 1 && this.#bytes > this.limits.maxBytes) this.#evictOldest();
    this.expire(now);
  }

  /** Drops messages older than the age limit. */
  expire(now: number): void {
    const oldestAllowed = now - this.limits.maxAgeMs;
    while (this.#count > 0 && (this.#at(0) as PreparedMessage).receivedAt < oldestAllowed) this.#evictOldest();
  }

  /** Messages the holder of `cursor` does not have yet, oldest first. */
  since(cursor: Frontier): PreparedMessage[] {
    if (!this.#mixed) {
      // One partition, in log order: what a cursor covers is a prefix of the ring. Scanning back
      // from the newest stops at the first covered message, so a poll or resume that is nearly
      // caught up reads a few messages, not the whole ring.
      let first = this.#count;
      while (first > 0 && !(this.#at(first - 1) as PreparedMessage).isCoveredBy(cursor)) first--;
      const newer: PreparedMessage[] = new Array(this.#count - first);
      for (let i = first; i < this.#count; i++) newer[i - first] = this.#at(i) as PreparedMessage;
      return newer;
    }
    const out: PreparedMessage[] = [];
    for (let i = 0; i < this.#count; i++) {
      const message = this.#at(i) as PreparedMessage;
      if (!message.isCoveredBy(cursor)) out.push(message);
    }
    return out;
  }

  /** The newest `limit` messages, oldest first. */
  latest(limit: number): PreparedMessage[] {
    const n = Math.min(limit, this.#count);
    const out: PreparedMessage[] = new Array(n);
    for (let i = 0; i < n; i++) out[i] = this.#at(this.#count - n + i) as PreparedMessage;
    return out;
  }

  #at(index: number): PreparedMessage | undefined {
    return this.#slots[(this.#head + index) % this.#slots.length];
  }

  #grow(): void {
    const size = Math.min(this.limits.maxCount, this.#slots.length * 2);
    const slots: (PreparedMessage | undefined)[] = new Array(size);
    for (let i = 0; i < this.#count; i++) slots[i] = this.#at(i);
    this.#slots = slots;
    this.#head = 0;
  }

  #evictOldest(): void {
    const message = this.#slots[this.#head] as PreparedMessage;
    this.#slots[this.#head] = undefined;
    this.#head = (this.#head + 1) % this.#slots.length;
    this.#count--;
    this.#bytes -= message.size;
    if (this.#count === 0) this.#mixed = false;
    this.onEvict(message);
  }
}
