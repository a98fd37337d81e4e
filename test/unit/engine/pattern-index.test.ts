/**
 * The pattern trie against brute force: after any seeded sequence of subscribes and unsubscribes,
 * the patterns it finds for a channel are exactly those a level-by-level comparison accepts, each
 * once; and a channel's cached result is refreshed exactly when a pattern comes or goes.
 */
import { describe, expect, it } from 'vitest';
import type { Subscriber } from '../../../src/engine/channel.js';
import { Channel } from '../../../src/engine/channel.js';
import { PatternIndex } from '../../../src/engine/pattern-index.js';
import { Frontier } from '../../../src/log/position.js';

const SEED = Number(process.env['PATTERN_INDEX_SEED'] ?? 7);
const LEVELS = ['a', 'b', 'c'];

function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

/** MQTT matching by brute force over the levels, written apart from src/. */
function bruteMatches(pattern: string, channel: string): boolean {
  const want = pattern.split('/');
  const have = channel.split('/');
  if (want[want.length - 1] === '#') return have.length >= want.length - 1 && want.slice(0, -1).every((level, i) => level === '+' || level === have[i]);
  return want.length === have.length && want.every((level, i) => level === '+' || level === have[i]);
}

const subscriber = (): Subscriber => ({ deliver: () => {} });

describe('PatternIndex', () => {
  it('finds exactly the matching patterns, each once, through 5,000 seeded adds and removes', () => {
    const next = random(SEED);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)] as T;
    const name = (pattern: boolean): string => {
      const depth = 1 + Math.floor(next() * 4);
      const levels: string[] = [];
      for (let i = 0; i < depth; i++) {
        const roll = next();
        levels.push(pattern && roll < 0.3 ? '+' : pattern && roll < 0.45 && i === depth - 1 ? '#' : pick(LEVELS));
      }
      return levels.join('/');
    };
    const index = new PatternIndex();
    const live = new Map<string, Set<Subscriber>>();
    const problems: string[] = [];
    for (let step = 0; step < 5000; step++) {
      if (next() < 0.6 || live.size === 0) {
        const pattern = name(true);
        const who = subscriber();
        index.add(pattern, who);
        if (!live.has(pattern)) live.set(pattern, new Set());
        live.get(pattern)!.add(who);
      } else {
        const pattern = pick([...live.keys()]);
        const set = live.get(pattern)!;
        const who = pick([...set]);
        expect(index.remove(pattern, who)).toBe(true);
        set.delete(who);
        if (set.size === 0) live.delete(pattern);
      }
      const channel = name(false);
      const found = index.match(channel).map((entry) => entry.pattern);
      const expected = [...live.keys()].filter((pattern) => bruteMatches(pattern, channel));
      if (found.length !== new Set(found).size || [...found].sort().join('|') !== [...expected].sort().join('|')) {
        if (problems.length < 5) problems.push(`step ${step}, ${channel}: found [${found.join(', ')}], expected [${expected.join(', ')}]`);
      }
      for (const entry of index.match(channel)) expect(entry.subscribers).toEqual(live.get(entry.pattern));
    }
    expect(problems).toEqual([]);
    expect(index.size).toBe(live.size);
  });

  it('refreshes a channel\'s cached matches when a pattern comes or goes, not when a subscriber joins one', () => {
    const index = new PatternIndex();
    const channel = new Channel('x/y', { maxCount: 1, maxBytes: 1024, maxAgeMs: 60_000 }, Frontier.empty('e', 1));
    expect(channel.patternMatches(index)).toEqual([]);
    const first = subscriber();
    index.add('x/+', first);
    expect(channel.patternMatches(index).map((e) => e.pattern)).toEqual(['x/+']);
    const generation = index.generation;
    index.add('x/+', subscriber());
    expect(index.generation).toBe(generation);
    index.add('#', subscriber());
    expect(channel.patternMatches(index).map((e) => e.pattern).sort()).toEqual(['#', 'x/+']);
    index.remove('x/+', first);
    expect(channel.patternMatches(index).map((e) => e.pattern).sort()).toEqual(['#', 'x/+']);
    expect(index.remove('x/+', first)).toBe(false);
  });
});
