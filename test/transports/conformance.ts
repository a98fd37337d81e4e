/**
 * The transport conformance suite: the same behaviour checked over real sockets for SSE, long-poll
 * and WebSocket. What a user notices: every message, in order, none twice, across disconnects; an
 * explicit reset when a cursor cannot be honoured; slow clients cut and resumed; bad input refused.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/start.js';
import { publish, startTestServer } from '../helpers/server.js';
import type { ClientFactory, TestClient } from '../helpers/test-client.js';

export interface ConformanceOptions {
  /** Whether the client can stop reading (streaming transports); long-poll replies are bounded instead. */
  readonly canBeSlow: boolean;
  /** The close or disconnect code a slow client sees. */
  readonly slowCode?: number;
  /**
   * WebSocket: each subscription is its own stream, so a message matching a channel and a pattern
   * of one socket comes once per subscription. SSE and long-poll carry one stream: once.
   */
  readonly streamPerSubscription?: boolean;
}

/** Does `pattern` take `channel`? The test's own matcher, written apart from src/. */
function patternTakes(pattern: string, channel: string): boolean {
  const want = pattern.split('/');
  const have = channel.split('/');
  if (want[want.length - 1] === '#') return have.length >= want.length - 1 && want.slice(0, -1).every((level, i) => level === '+' || level === have[i]);
  return want.length === have.length && want.every((level, i) => level === '+' || level === have[i]);
}

const dataOf = (client: TestClient, channel: string): unknown[] => client.received.filter((m) => m.channel === channel).map((m) => m.data);

/** A deterministic pseudo-random sequence, so a failing run can be repeated exactly. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

export function runConformance(name: string, open: ClientFactory, options: ConformanceOptions): void {
  describe(`${name} transport conformance`, () => {
    let server: RunningServer;
    let url: string;
    const clients: TestClient[] = [];
    const track = (client: TestClient): TestClient => {
      clients.push(client);
      return client;
    };

    beforeAll(async () => {
      server = await startTestServer({ historySize: 10_000, historyBytes: 64 * 1024 * 1024, maxIdleBytes: 256 * 1024 * 1024, heartbeatInterval: 1 });
      url = server.url;
    });
    afterAll(async () => {
      for (const client of clients) client.drop();
      await server.close();
    });

    it('delivers published messages in order with their envelope', async () => {
      const client = track(open(url, ['conf/basic']));
      await client.ready;
      const ids = await publish(url, [1, 2, 3, 4, 5].map((n) => ({ channel: 'conf/basic', data: { n, text: 'é"\n' } })));
      await client.waitFor(() => client.received.length === 5, '5 messages');
      expect(client.received.map((m) => m.data)).toEqual([1, 2, 3, 4, 5].map((n) => ({ n, text: 'é"\n' })));
      expect(client.received.map((m) => m.id)).toEqual(ids);
      expect(client.received.every((m) => m.channel === 'conf/basic' && typeof m.ts === 'number')).toBe(true);
    });

    it('carries several channels on one subscription, and only those', async () => {
      const client = track(open(url, ['conf/multi/a', 'conf/multi/b']));
      await client.ready;
      await publish(url, [
        { channel: 'conf/multi/a', data: 'a1' },
        { channel: 'conf/multi/c', data: 'c1' },
        { channel: 'conf/multi/b', data: 'b1' },
        { channel: 'conf/multi/a', data: 'a2' },
      ]);
      await publish(url, [{ channel: 'conf/multi/b', data: 'b2' }]);
      await client.waitFor(() => client.received.length === 4, '4 messages');
      expect(client.received.map((m) => m.data)).toEqual(['a1', 'b1', 'a2', 'b2']);
    });

    it('starts from now: a subscriber gets nothing published before it, and a cursor at once', async () => {
      await publish(url, [{ channel: 'conf/now', data: 'old' }]);
      const client = track(open(url, ['conf/now']));
      await client.ready;
      expect(client.cursor).toMatch(/^[0-9a-z]+\./);
      await publish(url, [{ channel: 'conf/now', data: 'new' }]);
      await client.waitFor(() => client.received.length === 1, 'the new message');
      expect(dataOf(client, 'conf/now')).toEqual(['new']);
    });

    it('resumes exactly across random disconnects: thousands of messages, none lost, none twice', async () => {
      const channels = ['conf/resume/a', 'conf/resume/b'];
      const total = 3000;
      const expected: Record<string, number[]> = { 'conf/resume/a': [], 'conf/resume/b': [] };
      const got: Record<string, number[]> = { 'conf/resume/a': [], 'conf/resume/b': [] };
      const next = random(name.length * 7919);
      let client = track(open(url, channels));
      await client.ready;
      let publishing = true;
      const publisher = (async () => {
        for (let n = 0; n < total; n += 50) {
          const batch = [];
          for (let i = n; i < n + 50; i++) {
            const channel = ['conf/resume/a', 'conf/resume/b', 'conf/resume/other'][i % 3] as string;
            expected[channel]?.push(i);
            batch.push({ channel, data: i });
          }
          await publish(url, batch);
        }
        publishing = false;
      })();
      let reconnects = 0;
      const collected = (): number => got['conf/resume/a']!.length + got['conf/resume/b']!.length + client.received.length;
      while (publishing || collected() < 2000) {
        const target = collected() + 50 + Math.floor(next() * 250);
        await client.waitFor(() => client.received.length + collected() - client.received.length >= Math.min(target, 2000) || (!publishing && collected() >= 2000), `messages up to ${target}`);
        if (!publishing && collected() >= 2000) break;
        client.drop();
        for (const message of client.received) got[message.channel]?.push(message.data as number);
        const cursor = client.cursor;
        client = track(open(url, channels, cursor === undefined ? {} : { cursor }));
        await client.ready;
        reconnects++;
      }
      await publisher;
      await client.waitFor(() => collected() >= 2000, 'all 2000 messages');
      for (const message of client.received) got[message.channel]?.push(message.data as number);
      expect(reconnects).toBeGreaterThan(3);
      expect(got['conf/resume/a']).toEqual(expected['conf/resume/a']);
      expect(got['conf/resume/b']).toEqual(expected['conf/resume/b']);
      expect(client.resets).toEqual([]);
    });

    it('answers a cursor the ring no longer covers with a reset, then what it still holds', async () => {
      const small = await startTestServer({ historySize: 5 });
      try {
        const first = track(open(small.url, ['conf/expired']));
        await first.ready;
        await publish(small.url, [{ channel: 'conf/expired', data: 0 }]);
        await first.waitFor(() => first.received.length === 1, 'the first message');
        first.drop();
        await publish(small.url, Array.from({ length: 20 }, (_, i) => ({ channel: 'conf/expired', data: i + 1 })));
        const again = track(open(small.url, ['conf/expired'], { cursor: first.cursor as string }));
        await again.ready;
        await again.waitFor(() => again.received.length === 5 && again.resets.length === 1, 'a reset and the 5 messages still held');
        expect(again.resets[0]).toMatchObject({ reason: 'cursor_expired', channel: 'conf/expired', from: first.cursor });
        expect(again.received.map((m) => m.data)).toEqual([16, 17, 18, 19, 20]);
      } finally {
        await small.close();
      }
    });

    it('answers a cursor from another log with an unknown_epoch reset and continues', async () => {
      const other = await startTestServer();
      let foreign: string;
      try {
        const probe = track(open(other.url, ['conf/epoch']));
        await probe.ready;
        foreign = probe.cursor as string;
        probe.drop();
      } finally {
        await other.close();
      }
      const client = track(open(url, ['conf/epoch'], { cursor: foreign }));
      await client.ready;
      await client.waitFor(() => client.resets.length === 1, 'a reset');
      expect(client.resets[0]).toMatchObject({ reason: 'unknown_epoch', channel: 'conf/epoch' });
      await publish(url, [{ channel: 'conf/epoch', data: 'after' }]);
      await client.waitFor(() => client.received.some((m) => m.data === 'after'), 'the message after the reset');
    });

    it('answers a malformed cursor with a bad_cursor reset and starts from now', async () => {
      await publish(url, [{ channel: 'conf/garbage', data: 'before' }]);
      const client = track(open(url, ['conf/garbage'], { cursor: 'not a cursor!' }));
      await client.ready;
      await client.waitFor(() => client.resets.length === 1, 'a reset');
      expect(client.resets[0]).toMatchObject({ reason: 'bad_cursor', channel: 'conf/garbage' });
      await publish(url, [{ channel: 'conf/garbage', data: 'after' }]);
      await client.waitFor(() => client.received.length === 1, 'the message after the reset');
      expect(dataOf(client, 'conf/garbage')).toEqual(['after']);
    });

    it('delivers to a pattern exactly the channels it matches, each envelope naming its real channel', async () => {
      const client = track(open(url, ['conf/pat/+', 'conf/tree/#']));
      await client.ready;
      await publish(url, [
        { channel: 'conf/pat/a', data: 1 },
        { channel: 'conf/pat/a/deeper', data: 'no: + is one level' },
        { channel: 'conf/tree', data: 2 },
        { channel: 'conf/pat', data: 'no: + needs a level' },
        { channel: 'conf/tree/x/y/z', data: 3 },
        { channel: 'conf/other/a', data: 'no' },
        { channel: 'conf/pat/b', data: 4 },
      ]);
      await publish(url, [{ channel: 'conf/tree/end', data: 5 }]);
      await client.waitFor(() => client.received.length === 5, '5 matching messages');
      expect(client.received.map((m) => [m.channel, m.data])).toEqual([
        ['conf/pat/a', 1],
        ['conf/tree', 2],
        ['conf/tree/x/y/z', 3],
        ['conf/pat/b', 4],
        ['conf/tree/end', 5],
      ]);
    });

    it('resumes a pattern exactly from a cursor, across the channels it matches', async () => {
      const first = track(open(url, ['conf/resume-pat/+']));
      await first.ready;
      await publish(url, [
        { channel: 'conf/resume-pat/a', data: 1 },
        { channel: 'conf/resume-pat/b', data: 2 },
      ]);
      await first.waitFor(() => first.received.length === 2, 'the first two');
      first.drop();
      await publish(url, [
        { channel: 'conf/resume-pat/c', data: 3 },
        { channel: 'conf/resume-pat/a', data: 4 },
        { channel: 'conf/resume-pat', data: 'no' },
        { channel: 'conf/resume-pat/b', data: 5 },
      ]);
      const again = track(open(url, ['conf/resume-pat/+'], { cursor: first.cursor as string }));
      await again.ready;
      await publish(url, [{ channel: 'conf/resume-pat/d', data: 6 }]);
      await again.waitFor(() => again.received.length === 4, 'the three missed and one live');
      expect(again.received.map((m) => m.data)).toEqual([3, 4, 5, 6]);
      expect(again.resets).toEqual([]);
    });

    it(options.streamPerSubscription ? 'sends a message matching a channel and a pattern of one socket once per subscription' : 'sends a message matching a channel and a pattern of one stream once', async () => {
      const client = track(open(url, ['conf/overlap/a', 'conf/overlap/#']));
      await client.ready;
      await publish(url, [
        { channel: 'conf/overlap/a', data: 1 },
        { channel: 'conf/overlap/b', data: 2 },
      ]);
      await publish(url, [{ channel: 'conf/overlap/end', data: 3 }]);
      const expected = options.streamPerSubscription ? [1, 1, 2, 3] : [1, 2, 3];
      await client.waitFor(() => client.received.length >= expected.length && client.received.some((m) => m.data === 3), 'the messages');
      expect(client.received.map((m) => m.data)).toEqual(expected);
    });

    it('gives pattern subscribers exactly the matching messages of a seeded random stream', async () => {
      const next = random(name.length * 104729);
      const levels = ['x', 'y', 'z'];
      const randomName = (pattern: boolean): string => {
        const depth = 1 + Math.floor(next() * 3);
        const parts = ['conf', 'rnd'];
        for (let i = 0; i < depth; i++) {
          const roll = next();
          if (pattern && roll < 0.3) parts.push('+');
          else if (pattern && roll < 0.45 && i === depth - 1) parts.push('#');
          else parts.push(levels[Math.floor(next() * levels.length)] as string);
        }
        return parts.join('/');
      };
      const patterns = [...new Set(Array.from({ length: 6 }, () => randomName(true)))];
      const subscribers = patterns.map((pattern) => ({ pattern, client: track(open(url, [pattern])) }));
      await Promise.all(subscribers.map(({ client }) => client.ready));
      const sent: { channel: string; data: number }[] = [];
      for (let batch = 0; batch < 10; batch++) {
        const messages = Array.from({ length: 30 }, (_, i) => ({ channel: randomName(false), data: batch * 30 + i }));
        sent.push(...messages);
        await publish(url, messages);
      }
      for (const { pattern, client } of subscribers) {
        const expected = sent.filter((m) => patternTakes(pattern, m.channel)).map((m) => [m.channel, m.data]);
        await client.waitFor(() => client.received.length >= expected.length, `${expected.length} messages on ${pattern}`);
        expect(client.received.map((m) => [m.channel, m.data]), pattern).toEqual(expected);
      }
    });

    it('sends the newest message of each matching channel first with snapshot=latest, flagged, then live', async () => {
      await publish(url, [
        { channel: 'conf/snap/a', data: 'a1' },
        { channel: 'conf/snap/b', data: 'b1' },
        { channel: 'conf/snap/a', data: 'a2' },
        { channel: 'conf/snap/c/deeper', data: 'no' },
      ]);
      const client = track(open(url, ['conf/snap/+', 'conf/snap/none'], { snapshot: 'latest' }));
      await client.ready;
      await client.waitFor(() => client.received.length >= 2, 'the snapshot');
      const start = client.cursor;
      await publish(url, [{ channel: 'conf/snap/b', data: 'b2' }]);
      await client.waitFor(() => client.received.length >= 3, 'a live message');
      expect(client.received.map((m) => [m.data, (m as { snapshot?: boolean }).snapshot ?? false])).toEqual([
        ['b1', true],
        ['a2', true],
        ['b2', false],
      ]);
      expect(start).toMatch(/^[0-9a-z]+\./);
      // A resume from a cursor gets what it missed, not a snapshot.
      const again = track(open(url, ['conf/snap/+'], { snapshot: 'latest', cursor: client.cursor as string }));
      await again.ready;
      await publish(url, [{ channel: 'conf/snap/a', data: 'a3' }]);
      await again.waitFor(() => again.received.length >= 1, 'the next message');
      expect(again.received.map((m) => m.data)).toEqual(['a3']);
    });

    it('elides with maxRate: each message says how many it replaced, sent + elided = published, the final value arrives, and a resume gets the latest', async () => {
      const channels = ['conf/elide/a', 'conf/elide/b'];
      const client = track(open(url, [...channels], { maxRate: 250 }));
      await client.ready;
      const published: Record<string, number[]> = { 'conf/elide/a': [], 'conf/elide/b': [] };
      let n = 0;
      const burst = async (size: number, only?: string): Promise<void> => {
        const messages = Array.from({ length: size }, (_, i) => ({ channel: only ?? (channels[i % 2] as string), data: n++ }));
        for (const m of messages) published[m.channel]!.push(m.data);
        await publish(url, messages);
      };
      for (let round = 0; round < 5; round++) await burst(20);
      const last = (c: TestClient, channel: string): unknown => c.received.filter((m) => m.channel === channel).at(-1)?.data;
      const finalValues = (c: TestClient): boolean => channels.every((channel) => last(c, channel) === published[channel]!.at(-1));
      await client.waitFor(() => finalValues(client), 'the final value of each channel');
      for (const channel of channels) {
        const sent = client.received.filter((m) => m.channel === channel);
        expect(sent.every((m) => typeof m.elided === 'number'), channel).toBe(true);
        expect(sent.length + sent.reduce((sum, m) => sum + (m.elided ?? 0), 0), channel).toBe(published[channel]!.length);
        // In order, and each message at most once.
        const data = sent.map((m) => m.data as number);
        expect(data).toEqual([...new Set(data)].sort((x, y) => x - y));
      }
      expect(client.received.length).toBeLessThan(100);
      // Away while 30 more come on one channel: the resume sends its latest, standing for all 30.
      client.drop();
      await burst(30, 'conf/elide/a');
      const again = track(open(url, [...channels], { maxRate: 250, cursor: client.cursor as string }));
      await again.ready;
      await again.waitFor(() => last(again, 'conf/elide/a') === published['conf/elide/a']!.at(-1), 'the latest of a');
      expect(again.received.map((m) => [m.channel, m.data, m.elided])).toEqual([['conf/elide/a', published['conf/elide/a']!.at(-1), 29]]);
      expect(again.resets).toEqual([]);
    });

    it('holds a connection to maxPatternsPerConnection patterns of at most maxPatternLevels levels', async () => {
      const many = open(url, Array.from({ length: 21 }, (_, i) => `conf/limit/${i}/+`));
      await expect(many.ready).rejects.toMatchObject({ code: 'too_many_channels' });
      const deep = open(url, [`conf/${Array.from({ length: 15 }, () => 'x').join('/')}/#`]);
      await expect(deep.ready).rejects.toMatchObject({ code: 'bad_channel' });
      // Twenty, and sixteen levels, are fine.
      const fine = track(open(url, [...Array.from({ length: 19 }, (_, i) => `conf/limit/${i}/+`), `conf/${Array.from({ length: 14 }, () => 'x').join('/')}/#`]));
      await fine.ready;
    });

    it('refuses # anywhere but last, and a publish to a pattern name, with bad_channel', async () => {
      const bad = open(url, ['conf/#/x']);
      await expect(bad.ready).rejects.toMatchObject({ code: 'bad_channel' });
      const response = await fetch(`${url}/v1/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ channel: 'conf/+', data: 1 }) });
      expect(response.status).toBe(400);
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe('bad_channel');
    });

    it('refuses an invalid channel name with a precise error, and keeps serving', async () => {
      const bad = open(url, ['ok/channel', 'bad//channel']);
      await expect(bad.ready).rejects.toMatchObject({ code: 'bad_channel' });
      const good = track(open(url, ['conf/after-bad']));
      await good.ready;
      await publish(url, [{ channel: 'conf/after-bad', data: 1 }]);
      await good.waitFor(() => good.received.length === 1, 'a message after the bad request');
    });

    if (options.canBeSlow) {
      it('keeps a paused client that asked onSlow=conflate connected, and brings it to the latest value of each channel', async () => {
        const slowServer = await startTestServer({ maxBufferedBytes: 65_536 });
        try {
          const channels = ['conf/conflate/a', 'conf/conflate/b'];
          const client = track(open(slowServer.url, channels, { onSlow: 'conflate' }));
          await client.ready;
          client.pause();
          const blob = 'x'.repeat(30_000);
          const count = 400; // 12 MB: far more than the socket buffers on both sides can absorb
          for (let n = 0; n < count; n += 20) {
            await publish(slowServer.url, Array.from({ length: 20 }, (_, i) => ({ channel: channels[(n + i) % 2] as string, data: { n: n + i, blob } })));
          }
          client.resume();
          const last = (channel: string): number | undefined => (client.received.filter((m) => m.channel === channel).at(-1)?.data as { n: number } | undefined)?.n;
          await client.waitFor(() => last(channels[0]!) === count - 2 && last(channels[1]!) === count - 1, 'the latest value of each channel');
          expect(client.ended).toBeUndefined();
          expect(client.received.length).toBeLessThan(count);
          for (const [k, channel] of channels.entries()) {
            const got = client.received.filter((m) => m.channel === channel);
            const numbers = got.map((m) => (m.data as { n: number }).n);
            expect(numbers).toEqual([...new Set(numbers)].sort((x, y) => x - y));
            // Each message written, or counted by the one that replaced it.
            expect(got.reduce((sum, m) => sum + 1 + (m.elided ?? 0), 0)).toBe(count / 2);
            expect(numbers.every((n) => n % 2 === k)).toBe(true);
          }
          // Live again, message by message.
          await publish(slowServer.url, [{ channel: channels[0]!, data: { n: count } }]);
          await client.waitFor(() => last(channels[0]!) === count, 'a live message after catching up');
        } finally {
          await slowServer.close();
        }
      });

      it('disconnects a client that stops reading, which then resumes with nothing lost', async () => {
        const slowServer = await startTestServer({ maxBufferedBytes: 65_536, historySize: 1000, historyBytes: 64 * 1024 * 1024, maxIdleBytes: 256 * 1024 * 1024 });
        try {
          const client = track(open(slowServer.url, ['conf/slow']));
          await client.ready;
          client.pause();
          const blob = 'x'.repeat(30_000);
          const count = 400; // 12 MB: far more than the socket buffers on both sides can absorb
          for (let n = 0; n < count; n += 20) {
            await publish(slowServer.url, Array.from({ length: 20 }, (_, i) => ({ channel: 'conf/slow', data: { n: n + i, blob } })));
          }
          client.resume();
          await client.waitFor(() => client.ended !== undefined, 'the slow-consumer disconnect');
          expect(client.ended?.code).toBe(options.slowCode);
          expect(client.received.length).toBeLessThan(count);
          const again = track(open(slowServer.url, ['conf/slow'], { cursor: client.cursor as string }));
          await again.ready;
          await again.waitFor(() => client.received.length + again.received.length >= count, 'the rest after resuming');
          const all = [...client.received, ...again.received].map((m) => (m.data as { n: number }).n);
          expect(all).toEqual(Array.from({ length: count }, (_, i) => i));
          expect(again.resets).toEqual([]);
        } finally {
          await slowServer.close();
        }
      });
    }
  });
}
