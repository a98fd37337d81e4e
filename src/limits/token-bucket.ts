/**
 * Rate limits as token buckets: `rate` per second on average, bursts up to `burst`. One bucket per
 * connection, or one per key (client address, user) in a bounded map, so a flood of distinct
 * keys cannot grow memory without bound (the least recently seen keys are forgotten: a forgotten
 * key starts again with a full bucket, which only ever errs on the side of letting through).
 */
import { LRUCache } from 'lru-cache';

/**
 * The burst every limit allows for `rate` per second: twice the rate, and never less than one, or
 * a rate under 0.5 per second would admit nothing at all.
 */
export function burstFor(rate: number): number {
  return Math.max(1, 2 * rate);
}

export class TokenBucket {
  #tokens: number;
  #updatedAt: number;

  constructor(private readonly rate: number, private readonly burst: number, now = Date.now()) {
    this.#tokens = burst;
    this.#updatedAt = now;
  }

  /** Takes `cost` tokens if there are enough; false (and nothing taken) otherwise. */
  take(cost = 1, now = Date.now()): boolean {
    this.#refill(now);
    if (this.#tokens < cost) return false;
    this.#tokens -= cost;
    return true;
  }

  /** Seconds until `cost` tokens are there (0 when they are now): the Retry-After hint. */
  waitSeconds(cost = 1, now = Date.now()): number {
    this.#refill(now);
    return this.#tokens >= cost ? 0 : Math.ceil((cost - this.#tokens) / this.rate);
  }

  #refill(now: number): void {
    const elapsed = Math.max(0, now - this.#updatedAt) / 1000;
    this.#tokens = Math.min(this.burst, this.#tokens + elapsed * this.rate);
    this.#updatedAt = now;
  }
}

export class KeyedRateLimiter {
  readonly #buckets: LRUCache<string, TokenBucket>;

  constructor(private readonly rate: number, private readonly burst: number, maxKeys = 100_000) {
    this.#buckets = new LRUCache({ max: maxKeys });
  }

  /**
   * Takes from `key`'s bucket: 0 when allowed, else the whole seconds until it would be, at least 1
   * (the Retry-After hint). Both at one instant: a second reading of the clock could find the
   * tokens refilled and say 0.
   */
  tryTake(key: string, cost = 1, now = Date.now()): number {
    const bucket = this.#bucket(key, now);
    if (bucket.take(cost, now)) return 0;
    return Math.max(1, bucket.waitSeconds(cost, now));
  }

  #bucket(key: string, now: number): TokenBucket {
    let bucket = this.#buckets.get(key);
    if (!bucket) this.#buckets.set(key, (bucket = new TokenBucket(this.rate, this.burst, now)));
    return bucket;
  }
}
