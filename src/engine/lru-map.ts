/**
 * A least-recently-used map with a count limit and an optional size budget, for the engine's idle
 * channels and their tombstones (and the long-poll's shared answers). Every operation is O(1) and
 * nothing is allocated up front: a Map keeps insertion order, so re-inserting a key makes it the
 * newest and the first key is the oldest.
 *
 * Why not lru-cache (used elsewhere): it preallocates arrays of `max` slots (the idle LRU's default
 * is 100,000: a few MB), and removing its last entry clears all of them, which made every publish
 * to the one channel nobody subscribed to cost about 0.7 ms. The engine also re-measures an entry
 * on every append, which lru-cache does only when the value object changes.
 */
export interface LruMapOptions<K, V> {
  /** Most entries; the least recently used go first. */
  readonly maxCount: number;
  /** Most total size (with `sizeOf`); an entry over it alone is not kept. */
  readonly maxSize?: number;
  readonly sizeOf?: (value: V, key: K) => number;
  /** An entry pushed out by the limits (not by delete(), nor by a set() of its own key). */
  readonly onEvict?: (value: V, key: K) => void;
}

interface Slot<V> {
  value: V;
  size: number;
}

export class LruMap<K, V> {
  readonly #slots = new Map<K, Slot<V>>();
  #size = 0;

  constructor(private readonly options: LruMapOptions<K, V>) {}

  /** Entries held. */
  get count(): number {
    return this.#slots.size;
  }

  /** Their total size (0 without `sizeOf`). */
  get totalSize(): number {
    return this.#size;
  }

  /** The value, now the most recently used. */
  get(key: K): V | undefined {
    const slot = this.#slots.get(key);
    if (slot === undefined) return undefined;
    this.#slots.delete(key);
    this.#slots.set(key, slot);
    return slot.value;
  }

  /** The value, its recency left alone. */
  peek(key: K): V | undefined {
    return this.#slots.get(key)?.value;
  }

  has(key: K): boolean {
    return this.#slots.has(key);
  }

  /**
   * Sets (or re-sets, measuring it again) `key` as the most recently used, then evicts the least
   * recently used while over a limit. False when the entry alone is over `maxSize`: then it is
   * not held (and any older value of the key is gone, without onEvict).
   */
  set(key: K, value: V): boolean {
    const size = this.options.sizeOf?.(value, key) ?? 0;
    const old = this.#slots.get(key);
    if (old !== undefined) {
      this.#slots.delete(key);
      this.#size -= old.size;
    }
    if (this.options.maxSize !== undefined && size > this.options.maxSize) return false;
    if (old !== undefined) {
      old.value = value;
      old.size = size;
      this.#slots.set(key, old);
    } else {
      this.#slots.set(key, { value, size });
    }
    this.#size += size;
    this.#evict();
    return true;
  }

  /** Takes `key` out (no onEvict); its value, if it was there. */
  delete(key: K): V | undefined {
    const slot = this.#slots.get(key);
    if (slot === undefined) return undefined;
    this.#slots.delete(key);
    this.#size -= slot.size;
    return slot.value;
  }

  /** Every value, least recently used first; reading them is not a use. */
  *values(): IterableIterator<V> {
    for (const slot of this.#slots.values()) yield slot.value;
  }

  /** Every entry, least recently used first; reading them is not a use. */
  *entries(): IterableIterator<[K, V]> {
    for (const [key, slot] of this.#slots) yield [key, slot.value];
  }

  #evict(): void {
    const { maxCount, maxSize } = this.options;
    while (this.#slots.size > maxCount || (maxSize !== undefined && this.#size > maxSize)) {
      const [key, slot] = this.#slots.entries().next().value as [K, Slot<V>];
      this.#slots.delete(key);
      this.#size -= slot.size;
      this.options.onEvict?.(slot.value, key);
    }
  }
}
