/** The client's token source (single flight, backoff after failures), refresh timing, Retry-After. */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { EdgePushError } from '../../src/client/index.js';
import { refreshDelay, TokenSource } from '../../src/client/token-source.js';
import { retryAfterMs } from '../../src/client/transports/transport.js';
import { deferred } from './fake-edge.js';

const BACKOFF = { initialDelay: 1000, maxDelay: 8000 };
/** Full jitter at its top: each delay is its cap, so call times are exact. */
const TOP = (): number => 1;

describe('TokenSource', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('makes one getToken() call for everyone who needs a token meanwhile, then keeps the token', async () => {
    const answer = deferred<string>();
    const getToken = vi.fn(() => answer.promise);
    const source = new TokenSource(undefined, getToken, BACKOFF);
    const waiting = [source.token(), source.fresh(), source.token()];
    await vi.advanceTimersByTimeAsync(0);
    expect(getToken).toHaveBeenCalledTimes(1);
    answer.resolve('jwt-1');
    expect(await Promise.all(waiting)).toEqual(['jwt-1', 'jwt-1', 'jwt-1']);
    expect(await source.token()).toBe('jwt-1');
    expect(getToken).toHaveBeenCalledTimes(1);
  });

  it('uses the token option first, and getToken() once the server refuses it or it expires', async () => {
    let n = 0;
    const getToken = vi.fn(() => `jwt-${++n}`);
    const source = new TokenSource('jwt-0', getToken, BACKOFF, TOP);
    expect(await source.token()).toBe('jwt-0');
    expect(getToken).not.toHaveBeenCalled();
    source.refused('jwt-0', true); // expired: no reason to wait
    expect(await source.token()).toBe('jwt-1');
    // A refusal of an older token does not throw away the newer one.
    source.refused('jwt-0');
    expect(await source.token()).toBe('jwt-1');
    expect(getToken).toHaveBeenCalledTimes(1);
  });

  it('backs off after getToken() fails, however eagerly it is asked again', async () => {
    const calls: number[] = [];
    const start = Date.now();
    const source = new TokenSource(undefined, () => {
      calls.push(Date.now() - start);
      throw new Error('backend down');
    }, BACKOFF, TOP);
    // A caller that asks again the moment a call fails (bounded, so a regression fails, not hangs).
    const errors: unknown[] = [];
    let stop = false;
    const eager = (async () => {
      for (let i = 0; i < 100 && !stop; i++) await source.fresh().catch((error: unknown) => errors.push(error));
    })();
    await vi.advanceTimersByTimeAsync(31_000);
    expect(calls).toEqual([0, 1000, 3000, 7000, 15_000, 23_000, 31_000]);
    expect(errors[0]).toMatchObject({ code: 'token_unavailable', message: /backend down/ });
    stop = true;
    source.close();
    await eager;
    await vi.advanceTimersByTimeAsync(60_000);
    expect(calls).toHaveLength(7);
    expect(errors.at(-1)).toMatchObject({ code: 'closed' });
  });

  it('backs off after the server refuses a token, and starts over once one is accepted', async () => {
    const calls: number[] = [];
    const start = Date.now();
    let n = 0;
    const source = new TokenSource(undefined, () => {
      calls.push(Date.now() - start);
      return `jwt-${++n}`;
    }, BACKOFF, TOP);
    // Each refusal delays the next call: 1 s, 2 s, 4 s (the cap doubles; TOP takes all of it).
    for (const wait of [0, 1000, 2000, 4000]) {
      const next = source.token();
      await vi.advanceTimersByTimeAsync(wait);
      source.refused(await next);
    }
    expect(calls).toEqual([0, 1000, 3000, 7000]);
    expect(source.current).toBe('jwt-4');
    const fifth = source.token();
    await vi.advanceTimersByTimeAsync(8000);
    expect(await fifth).toBe('jwt-5');
    // jwt-5 worked for a while; its refusal starts again from the smallest delay.
    source.accepted();
    source.refused('jwt-5');
    const sixth = source.token();
    await vi.advanceTimersByTimeAsync(1000);
    expect(await sixth).toBe('jwt-6');
    expect(calls).toEqual([0, 1000, 3000, 7000, 15_000, 16_000]);
  });

  it('counts an empty or missing token as a failure', async () => {
    const getToken = vi.fn(() => '');
    const source = new TokenSource(undefined, getToken, BACKOFF, TOP);
    await expect(source.token()).rejects.toMatchObject({ code: 'token_unavailable', message: /empty string/ });
    const second = source.token();
    second.catch(() => {});
    await vi.advanceTimersByTimeAsync(999);
    expect(getToken).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(1);
    await expect(second).rejects.toBeInstanceOf(EdgePushError);
    expect(getToken).toHaveBeenCalledTimes(2);
  });

  it('makes no call once closed, even one that was waiting out its backoff', async () => {
    const getToken = vi.fn(() => Promise.reject(new Error('no')));
    const source = new TokenSource(undefined, getToken, BACKOFF, TOP);
    await expect(source.fresh()).rejects.toThrow(/no/);
    const waiting = source.fresh();
    source.close();
    await expect(waiting).rejects.toMatchObject({ code: 'closed' });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(getToken).toHaveBeenCalledTimes(1);
  });

  it('without getToken, hands out the fixed token, or nothing', async () => {
    expect(await new TokenSource('jwt', undefined, BACKOFF).token()).toBe('jwt');
    const none = new TokenSource(undefined, undefined, BACKOFF);
    expect(none.enabled).toBe(false);
    expect(await none.token()).toBeUndefined();
  });
});

describe('refreshDelay', () => {
  const now = 1_790_000_000_000;
  it('refreshes after 80% of the remaining life, at least 5 s before the end', () => {
    expect(refreshDelay(now + 3600_000, now)).toBe(2880_000);
    expect(refreshDelay(now + 100_000, now)).toBe(80_000);
    expect(refreshDelay(now + 10_000, now)).toBe(5_000);
  });

  it('never refreshes sooner than 5 s from now, and not at all by a clock past the expiry', () => {
    expect(refreshDelay(now + 3_000, now)).toBe(5_000);
    expect(refreshDelay(now - 60_000, now)).toBeUndefined();
  });
});

describe('retryAfterMs', () => {
  const at = (value: string | undefined): number | undefined =>
    retryAfterMs(new Response(null, { status: 429, headers: value === undefined ? {} : { 'retry-after': value } }), Date.parse('2026-11-21T10:00:00Z'));
  it('reads seconds and HTTP dates, and ignores what it cannot read', () => {
    expect(at('7')).toBe(7000);
    expect(at('Sat, 21 Nov 2026 10:00:30 GMT')).toBe(30_000);
    expect(at(undefined)).toBeUndefined();
    expect(at('soon')).toBeUndefined();
  });
});
