import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { HeartbeatWheel } from '../../../transports/heartbeat-wheel.js';
import { seededRandom } from '../../../src/demo/seeded-random.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

/** Runs a wheel and records, per tick, which connections it visited. */
function recordedWheel(intervalMs: number) {
  const ticks: number[][] = [];
  const wheel = new HeartbeatWheel<number>(intervalMs, (slot) => ticks.push([...slot]));
  return { wheel, ticks };
}

describe('HeartbeatWheel', () => {
  it('visits every connection once per interval, a slice per tick instead of all at once', () => {
    const { wheel, ticks } = recordedWheel(15_000);
    const slots = Array.from({ length: 10_000 }, (_, connection) => wheel.add(connection));
    vi.advanceTimersByTime(15_000);
    wheel.stop();
    const visits = ticks.flat();
    expect(visits.sort((a, b) => a - b)).toEqual(Array.from({ length: 10_000 }, (_, connection) => connection));
    // 150 ticks of 100 ms at the default interval: no tick writes to more than its share.
    expect(ticks.length).toBe(150);
    expect(Math.max(...ticks.map((tick) => tick.length))).toBe(Math.ceil(10_000 / 150));
    expect(new Set(slots).size).toBe(150);
  });

  it('keeps each connection one interval apart, and never visits one that left (seeded)', () => {
    const seed = 20261203;
    const random = seededRandom(seed);
    const intervalMs = 2_000;
    const { wheel, ticks } = recordedWheel(intervalMs);
    const open = new Map<number, number>();
    const lastVisit = new Map<number, number>();
    let next = 0;
    let now = 0;
    const stepMs = intervalMs / 20;
    for (let step = 0; step < 400; step++) {
      // Connections come and go between ticks.
      for (let i = Math.floor(random() * 5); i > 0; i--) open.set(next, wheel.add(next++));
      for (const [connection, slot] of open) {
        if (random() < 0.02) {
          wheel.remove(connection, slot);
          open.delete(connection);
        }
      }
      const before = ticks.length;
      vi.advanceTimersByTime(stepMs);
      now += stepMs;
      for (const tick of ticks.slice(before)) {
        for (const connection of tick) {
          expect(open.has(connection), `seed ${seed}: visited ${connection} after it left`).toBe(true);
          const previous = lastVisit.get(connection);
          if (previous !== undefined) expect(now - previous, `seed ${seed}: connection ${connection}`).toBe(intervalMs);
          lastVisit.set(connection, now);
        }
      }
    }
    wheel.stop();
    // It holds exactly the open connections: what a shutdown goes through.
    expect(new Set(wheel)).toEqual(new Set(open.keys()));
    // Every connection open for a whole interval was visited.
    expect([...open.keys()].filter((connection) => connection < next - 100 && !lastVisit.has(connection))).toEqual([]);
  });

  it('with an interval shorter than a tick, visits everything every interval', () => {
    const { wheel, ticks } = recordedWheel(50);
    for (let connection = 0; connection < 5; connection++) wheel.add(connection);
    vi.advanceTimersByTime(150);
    wheel.stop();
    expect(ticks).toEqual([
      [0, 1, 2, 3, 4],
      [0, 1, 2, 3, 4],
      [0, 1, 2, 3, 4],
    ]);
  });
});
