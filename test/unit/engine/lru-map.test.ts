import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../../src/demo/seeded-random.js';
import { LruMap } from '../../../src/engine/lru-map.js';

/** The model: entries in an array, least recently used first, every rule spelled out plainly. */
class ModelLru {
  entries: { key: string; value: number }[] = [];
  evicted: string[] = [];
  constructor(readonly maxCount: number, readonly maxSize: number) {}
  #take(key: string): { key: string; value: number } | undefined {
    const at = this.entries.findIndex((entry) => entry.key === key);
    return at < 0 ? undefined : this.entries.splice(at, 1)[0];
  }
  get(key: string): number | undefined {
    const entry = this.#take(key);
    if (entry) this.entries.push(entry);
    return entry?.value;
  }
  set(key: string, value: number): boolean {
    this.#take(key);
    if (value > this.maxSize) return false;
    this.entries.push({ key, value });
    const total = (): number => this.entries.reduce((sum, entry) => sum + entry.value, 0);
    while (this.entries.length > this.maxCount || total() > this.maxSize) this.evicted.push((this.entries.shift() as { key: string }).key);
    return true;
  }
  delete(key: string): number | undefined {
    return this.#take(key)?.value;
  }
}

describe('LruMap', () => {
  it('evicts the least recently used past the count, and a get or set makes an entry the newest', () => {
    const evicted: string[] = [];
    const lru = new LruMap<string, number>({ maxCount: 3, onEvict: (_value, key) => evicted.push(key) });
    lru.set('a', 1);
    lru.set('b', 2);
    lru.set('c', 3);
    expect(lru.get('a')).toBe(1);
    expect(lru.peek('b')).toBe(2); // peek is not a use
    lru.set('d', 4);
    expect(evicted).toEqual(['b']);
    lru.set('c', 30);
    lru.set('e', 5);
    expect(evicted).toEqual(['b', 'a']);
    expect([...lru.entries()]).toEqual([['d', 4], ['c', 30], ['e', 5]]);
  });

  it('keeps the total size within maxSize as entries are measured again, and refuses one over it alone', () => {
    const evicted: string[] = [];
    const lru = new LruMap<string, { bytes: number }>({ maxCount: 100, maxSize: 100, sizeOf: (value) => value.bytes, onEvict: (_value, key) => evicted.push(key) });
    const a = { bytes: 40 };
    lru.set('a', a);
    lru.set('b', { bytes: 40 });
    // The same object, grown: set() measures it again.
    a.bytes = 50;
    expect(lru.set('a', a)).toBe(true);
    expect(evicted).toEqual([]);
    expect(lru.totalSize).toBe(90);
    expect(lru.set('c', { bytes: 20 })).toBe(true);
    expect(evicted).toEqual(['b']);
    expect(lru.set('a', { bytes: 101 })).toBe(false);
    expect(lru.has('a')).toBe(false);
    expect(evicted).toEqual(['b']);
    expect(lru.totalSize).toBe(20);
  });

  it('delete() takes an entry out without calling onEvict, down to none and back', () => {
    const evicted: string[] = [];
    const lru = new LruMap<string, number>({ maxCount: 2, onEvict: (_value, key) => evicted.push(key) });
    lru.set('a', 1);
    expect(lru.delete('a')).toBe(1);
    expect(lru.delete('a')).toBeUndefined();
    expect(lru.count).toBe(0);
    lru.set('b', 2);
    expect([...lru.values()]).toEqual([2]);
    expect(evicted).toEqual([]);
  });

  it('agrees with a plain model over random gets, sets and deletes (seeded)', () => {
    for (const seed of [1, 2, 20261203]) {
      const random = seededRandom(seed);
      const maxCount = 1 + Math.floor(random() * 8);
      const maxSize = 20 + Math.floor(random() * 60);
      const model = new ModelLru(maxCount, maxSize);
      const evicted: string[] = [];
      const lru = new LruMap<string, number>({ maxCount, maxSize, sizeOf: (value) => value, onEvict: (_value, key) => evicted.push(key) });
      for (let step = 0; step < 5_000; step++) {
        const key = `k${Math.floor(random() * 12)}`;
        const roll = random();
        const where = `seed ${seed}, step ${step}`;
        if (roll < 0.4) expect(lru.get(key), where).toBe(model.get(key));
        else if (roll < 0.85) {
          const value = Math.floor(random() * (maxSize + 5));
          expect(lru.set(key, value), where).toBe(model.set(key, value));
        } else expect(lru.delete(key), where).toBe(model.delete(key));
        expect([...lru.entries()], where).toEqual(model.entries.map((entry) => [entry.key, entry.value]));
        expect(evicted, where).toEqual(model.evicted);
        expect(lru.totalSize, where).toBe(model.entries.reduce((sum, entry) => sum + entry.value, 0));
      }
    }
  });
});
