/**
 * Heartbeats spread over their interval.
 *
 * One timer that heartbeats every connection at once stalls the event loop for as long as those
 * writes take: at 10,000 WebSockets, tens of milliseconds every interval, and every message
 * published meanwhile waits behind them (the p99 of a steady load jumps whenever the tick lands in
 * its window). The wheel puts each connection in one of its slots, round robin, and visits one
 * slot per tick, so a tick writes to a slice of the connections and each connection is still
 * visited exactly once per interval. It holds every open connection of its transport, so it is
 * also where the transport finds them all (at shutdown).
 */

/** Ticks no closer than this: at the default 15 s interval, 150 slots of 100 ms. */
const MIN_TICK_MS = 100;
const MAX_SLOTS = 256;

export class HeartbeatWheel<T> {
  readonly #slots: Set<T>[];
  readonly #timer: NodeJS.Timeout;
  #added = 0;
  #tick = 0;

  /** `beat` gets the connections of one slot; every connection is in exactly one slot's turn per interval. */
  constructor(intervalMs: number, private readonly beat: (connections: ReadonlySet<T>) => void) {
    const slots = Math.max(1, Math.min(MAX_SLOTS, Math.floor(intervalMs / MIN_TICK_MS)));
    this.#slots = Array.from({ length: slots }, () => new Set<T>());
    this.#timer = setInterval(() => this.#turn(), intervalMs / slots);
  }

  /** Adds a connection; the slot it returns is what remove() needs. */
  add(connection: T): number {
    const slot = this.#added++ % this.#slots.length;
    (this.#slots[slot] as Set<T>).add(connection);
    return slot;
  }

  remove(connection: T, slot: number): void {
    this.#slots[slot]?.delete(connection);
  }

  /** Every connection, slot by slot. */
  *[Symbol.iterator](): IterableIterator<T> {
    for (const slot of this.#slots) yield* slot;
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  #turn(): void {
    const slot = this.#slots[this.#tick] as Set<T>;
    this.#tick = (this.#tick + 1) % this.#slots.length;
    if (slot.size > 0) this.beat(slot);
  }
}
