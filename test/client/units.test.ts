/** The client's pure parts: the fallback rules, backoff with jitter, the SSE parser, delta decoding. */
import { describe, expect, it } from 'vitest';
import { Backoff } from '../../src/client/backoff.js';
import { DeltaDecoder } from '../../src/client/delta-decoder.js';
import { FallbackPolicy } from '../../src/client/fallback-policy.js';
import { SseParser } from '../../src/client/transports/sse-parser.js';
import { encodeVcdiff } from '../../src/delta/vcdiff-encoder.js';

describe('FallbackPolicy', () => {
  it('leaves a transport that cannot work here at once, and stays on the last one with a backoff', () => {
    const policy = new FallbackPolicy(['ws', 'sse', 'poll'], undefined, 3);
    expect(policy.failed('unsuitable', true)).toEqual({ transport: 'sse', immediately: true });
    expect(policy.failed('unsuitable', true)).toEqual({ transport: 'poll', immediately: true });
    expect(policy.failed('unsuitable', true)).toEqual({ transport: 'poll', immediately: false });
  });

  it('starts again from the top when a transport that never worked hits a network error', () => {
    const policy = new FallbackPolicy(['ws', 'sse', 'poll'], undefined, 3);
    policy.failed('unsuitable', true);
    expect(policy.failed('network', true)).toEqual({ transport: 'ws', immediately: false });
  });

  it('keeps a transport that worked through network errors, and leaves it after demoteAfter strikes', () => {
    const policy = new FallbackPolicy(['ws', 'sse', 'poll'], 'sse', 2);
    expect(policy.current).toBe('sse');
    policy.succeeded();
    expect(policy.failed('network', true)).toEqual({ transport: 'sse', immediately: false });
    expect(policy.failed('unsuitable', true)).toEqual({ transport: 'sse', immediately: false });
    expect(policy.failed('unsuitable', true)).toEqual({ transport: 'poll', immediately: true });
  });

  it('does not hold failures while offline against a transport', () => {
    const policy = new FallbackPolicy(['ws', 'sse', 'poll'], undefined, 3);
    expect(policy.failed('unsuitable', false)).toEqual({ transport: 'ws', immediately: false });
  });
});

describe('Backoff', () => {
  it('grows exponentially up to the cap, with full jitter above the server floor', () => {
    const top = new Backoff({ initialDelay: 100, maxDelay: 1000 }, () => 1);
    expect([1, 2, 3, 4, 5].map(() => top.next())).toEqual([100, 200, 400, 800, 1000]);
    const bottom = new Backoff({ initialDelay: 100, maxDelay: 1000 }, () => 0);
    bottom.setFloor(250);
    expect(bottom.next()).toBe(250);
    top.reset();
    expect(top.next()).toBe(100);
  });
});

describe('SseParser', () => {
  it('keeps id-only events, splits across chunks and line endings, reads retry', () => {
    const parser = new SseParser();
    const first = parser.feed('retry: 2000\r\n\r\nid: c.1\n\nid: c.2\ndata: {"a"');
    expect(first.retry).toBe(2000);
    expect(first.events).toEqual([{ type: 'id', data: '', id: 'c.1' }]);
    const second = parser.feed(':1}\r');
    expect(second.events).toEqual([]);
    const third = parser.feed('\n\nevent: reset\ndata: {}\n\n');
    expect(third.events).toEqual([
      { type: 'message', data: '{"a":1}', id: 'c.2' },
      { type: 'reset', data: '{}', id: undefined },
    ]);
  });

  it('reads the heartbeat interval the server announces in its preamble', () => {
    const parsed = new SseParser().feed('retry: 2000\nheartbeat: 60000\n\nid: c.1\n\n');
    expect(parsed).toMatchObject({ retry: 2000, heartbeat: 60000 });
    expect(parsed.events).toEqual([{ type: 'id', data: '', id: 'c.1' }]);
  });
});

describe('DeltaDecoder', () => {
  const base = { position: { latitude: 52.1, longitude: 4.8 }, label: 'Bus 7', note: 'é ↺' };
  const next = { ...base, position: { latitude: 52.2, longitude: 4.8 } };

  it('rebuilds json-patch and vcdiff deltas, and refuses a delta whose base it does not hold', () => {
    const decoder = new DeltaDecoder();
    expect(decoder.decode({ channel: 'v', id: '0-1', ts: 1, data: base })).toEqual({ ok: true, data: base, saved: 0 });
    const patch = [{ op: 'replace', path: '/position/latitude', value: 52.2 }];
    expect(decoder.decode({ channel: 'v', id: '0-2', ts: 2, data: patch, delta: { format: 'json-patch', base: '0-1' } })).toEqual({ ok: true, data: next, saved: expect.any(Number) });
    const vcdiff = Buffer.from(encodeVcdiff(Buffer.from(JSON.stringify(next)), Buffer.from(JSON.stringify(base)))).toString('base64');
    expect(decoder.decode({ channel: 'v', id: '0-3', ts: 3, data: vcdiff, delta: { format: 'vcdiff', base: '0-2' } })).toEqual({ ok: true, data: base, saved: expect.any(Number) });
    expect(decoder.decode({ channel: 'v', id: '0-5', ts: 5, data: patch, delta: { format: 'json-patch', base: '0-4' } })).toMatchObject({ ok: false });
  });

  it('is not fooled by an application that mutates what it was given', () => {
    const decoder = new DeltaDecoder();
    const first = decoder.decode({ channel: 'v', id: '0-1', ts: 1, data: structuredClone(base) });
    if (first.ok) (first.data as { label: string }).label = 'changed by the app';
    const patch = [{ op: 'replace', path: '/position/latitude', value: 52.2 }];
    expect(decoder.decode({ channel: 'v', id: '0-2', ts: 2, data: patch, delta: { format: 'json-patch', base: '0-1' } })).toEqual({ ok: true, data: next, saved: expect.any(Number) });
  });
});
