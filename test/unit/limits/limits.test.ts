import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Metrics } from '../../../src/metrics.js';
import { PushError } from '../../../src/errors.js';
import { ConnectionGuard } from '../../../transports/connection-guard.js';
import { ConnectionCounter } from '../../../src/limits/connection-counter.js';
import { KeyedRateLimiter, TokenBucket } from '../../../src/limits/token-bucket.js';
import { jsonTooDeep } from '../../../src/protocol/json-depth.js';

describe('token bucket', () => {
  it('allows a burst, then the rate, and says how long to wait', () => {
    const bucket = new TokenBucket(10, 20, 0);
    let taken = 0;
    while (bucket.take(1, 0)) taken++;
    expect(taken).toBe(20);
    expect(bucket.waitSeconds(1, 0)).toBe(1);
    expect(bucket.take(1, 100)).toBe(true); // 100 ms at 10/s: one more
    expect(bucket.take(1, 100)).toBe(false);
    expect(bucket.take(5, 1000)).toBe(true);
  });

  it('keeps one bucket per key', () => {
    const limiter = new KeyedRateLimiter(1, 1, 10);
    // 0: allowed; else the seconds to wait.
    expect(limiter.tryTake('a', 1, 0)).toBe(0);
    expect(limiter.tryTake('a', 1, 0)).toBe(1);
    expect(limiter.tryTake('b', 1, 0)).toBe(0);
  });
});

describe('connection guard', () => {
  afterEach(() => vi.restoreAllMocks());
  const metrics = { limited: () => {} } as unknown as Metrics;
  const refusalOf = (attempt: () => void): PushError => {
    try {
      attempt();
    } catch (error) {
      return error as PushError;
    }
    throw new Error('not refused');
  };

  it('asks a client over the connection rate to wait at least a second, even when the clock moves while it is refused', () => {
    const guard = new ConnectionGuard({ maxConnections: 100, maxConnectionsPerIp: 100, connectionRatePerIp: 10, publishRate: 10 }, metrics);
    let now = 1_000_000;
    vi.spyOn(Date, 'now').mockImplementation(() => now);
    for (let i = 0; i < 20; i++) guard.request('a');
    // The refusal is decided at `now`; by the time the hint is computed, 150 ms (1.5 tokens) passed.
    vi.spyOn(Date, 'now').mockImplementationOnce(() => now).mockImplementation(() => now + 150);
    const refusal = refusalOf(() => guard.request('a'));
    expect(refusal.code).toBe('too_many_connections');
    expect(refusal.retryAfter).toBeGreaterThanOrEqual(1);
  });
});

describe('connection counter', () => {
  it('caps per address and in all, and frees a slot once per release', () => {
    const counter = new ConnectionCounter(3, 2);
    const a1 = counter.admit('a');
    const a2 = counter.admit('a');
    expect(counter.admit('a')).toEqual({ ok: false, reason: 'per_ip' });
    const b1 = counter.admit('b');
    expect(counter.admit('c')).toEqual({ ok: false, reason: 'global' });
    if (!a1.ok || !a2.ok || !b1.ok) throw new Error('refused');
    a1.release();
    a1.release();
    expect(counter.total).toBe(2);
    expect(counter.admit('a').ok).toBe(true);
  });
});

describe('JSON depth', () => {
  it('counts nesting outside strings only', () => {
    expect(jsonTooDeep('[[[1]]]', 3)).toBe(false);
    expect(jsonTooDeep('[[[[1]]]]', 3)).toBe(true);
    expect(jsonTooDeep('{"a":"[[[[[[","b":{"c":[1]}}', 3)).toBe(false);
    expect(jsonTooDeep('{"a":"\\"[[[[","b":1}', 1)).toBe(false);
    expect(jsonTooDeep('['.repeat(5000) + ']'.repeat(5000), 32)).toBe(true);
  });
});
