/**
 * Reconnect delays: exponential backoff with full jitter, so a server restart that drops thousands
 * of clients does not get them all back in the same instant. The server's SSE `retry:` is a floor:
 * it is how the operator asks clients to slow down.
 */

export interface BackoffOptions {
  /** The delay cap before jitter for the first retry, in ms. */
  readonly initialDelay: number;
  /** The largest delay before jitter, in ms. */
  readonly maxDelay: number;
}

export class Backoff {
  #attempt = 0;
  #floor = 0;

  constructor(
    private readonly options: BackoffOptions,
    private readonly random: () => number = Math.random,
  ) {}

  /** The next delay: `floor + random(0, min(maxDelay, initialDelay × 2^attempt))`. */
  next(): number {
    const cap = Math.min(this.options.maxDelay, this.options.initialDelay * 2 ** Math.min(this.#attempt, 30));
    this.#attempt++;
    return Math.round(this.#floor + this.random() * cap);
  }

  /** The server's reconnect hint (SSE `retry:`), in ms. */
  setFloor(ms: number): void {
    this.#floor = Math.max(0, Math.min(ms, this.options.maxDelay));
  }

  /** A connection worked: the next failure starts from the smallest delay again. */
  reset(): void {
    this.#attempt = 0;
  }

  get attempt(): number {
    return this.#attempt;
  }
}
