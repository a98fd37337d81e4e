import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/start.js';
import { PollTestClient } from '../helpers/poll-client.js';
import { publish, startTestServer } from '../helpers/server.js';
import { runConformance } from './conformance.js';
import { seededRandom } from '../../src/demo/seeded-random.js';
import { errorCode, poll as securePoll, publishAs, SECRET, userToken } from '../helpers/security-kit.js';

runConformance('long-poll', (url, channels, options) => new PollTestClient(url, channels, options), { canBeSlow: false });

interface PollBody {
  messages: { channel: string; data: unknown }[];
  cursor: string;
  resets?: unknown[];
}

describe('long-poll specifics', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startTestServer({ pollMaxMessages: 10 });
  });
  afterAll(async () => {
    await server.close();
  });

  const poll = async (query: string): Promise<{ status: number; headers: Headers; body: PollBody }> => {
    const response = await fetch(`${server.url}/v1/poll?${query}`);
    return { status: response.status, headers: response.headers, body: (await response.json()) as PollBody };
  };

  it('answers at once with the current cursor when none is given, and is never cached', async () => {
    const { status, headers, body } = await poll('channel=poll/start');
    expect(status).toBe(200);
    expect(body).toEqual({ messages: [], cursor: expect.stringMatching(/^[0-9a-z]+\./) });
    expect(headers.get('cache-control')).toBe('no-store');
    expect(headers.get('access-control-allow-origin')).toBe('*');
    expect(headers.get('transfer-encoding')).toBeNull();
  });

  it('holds a request until a message arrives, then answers with it', async () => {
    const { body: start } = await poll('channel=poll/hold');
    const held = poll(`channel=poll/hold&timeout=30&cursor=${start.cursor}`);
    await publish(server.url, [{ channel: 'poll/hold', data: 'woke' }]);
    const { body } = await held;
    expect(body.messages.map((m) => m.data)).toEqual(['woke']);
    expect(body.cursor).not.toBe(start.cursor);
  });

  it('answers an empty list with an unchanged-or-newer cursor when the timeout passes', async () => {
    const { body: start } = await poll('channel=poll/timeout');
    const { body } = await poll(`channel=poll/timeout&timeout=0.2&cursor=${start.cursor}`);
    expect(body.messages).toEqual([]);
    expect(body.cursor).toBe(start.cursor);
  });

  it('bounds a reply by pollMaxMessages and continues exactly from its cursor', async () => {
    const { body: start } = await poll('channel=poll/bounded');
    await publish(server.url, Array.from({ length: 25 }, (_, i) => ({ channel: 'poll/bounded', data: i })));
    const seen: unknown[] = [];
    let cursor = start.cursor;
    for (let round = 0; round < 3; round++) {
      const { body } = await poll(`channel=poll/bounded&timeout=0&cursor=${cursor}`);
      expect(body.messages.length).toBeLessThanOrEqual(10);
      seen.push(...body.messages.map((m) => m.data));
      cursor = body.cursor;
    }
    expect(seen).toEqual(Array.from({ length: 25 }, (_, i) => i));
  });

  it('refuses bad parameters with a precise error', async () => {
    for (const [query, code] of [
      ['', 'bad_request'],
      ['channel=a&timeout=abc', 'bad_request'],
      ['channel=a&timeout=9999', 'bad_request'],
      ['channel=a&cursor=x&cursor=y', 'bad_request'],
      ['channel=%00bad', 'bad_channel'],
    ] as const) {
      const { status, body } = await poll(query);
      expect(status).toBe(400);
      expect((body as unknown as { error: { code: string } }).error.code).toBe(code);
    }
  });
});

describe('long-poll answers shared by pollers with the same cursor', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startTestServer({ jwtSecret: SECRET, anonymousCaps: null, pollMaxMessages: 10 });
  });
  afterAll(async () => {
    await server.close();
  });

  const reader = (channel: string) => userToken('reader', [{ match: channel, allow: ['sub'] }]);
  const publisher = () => userToken('writer', [{ match: 'share/#', allow: ['pub'] }]);

  it('still refuses a poller without the grant, after an entitled poller was answered with the same cursor', async () => {
    const allowed = await reader('share/a');
    const start = (await securePoll(server.url, ['share/a'], { token: allowed })).body as PollBody;
    expect((await publishAs(server.url, await publisher(), { channel: 'share/a', data: 'secret' })).status).toBe(201);
    const first = await securePoll(server.url, ['share/a'], { token: allowed, cursor: start.cursor });
    expect((first.body as PollBody).messages.map((m) => m.data)).toEqual(['secret']);
    // The same channel and cursor: the answer is there to share, but not with this one.
    const refused = await securePoll(server.url, ['share/a'], { token: await reader('share/other'), cursor: start.cursor });
    expect(refused.status).toBe(403);
    expect(errorCode(refused)).toBe('forbidden');
    const anonymous = await securePoll(server.url, ['share/a'], { cursor: start.cursor });
    expect(anonymous.status).toBe(401);
  });

  it('gives every poller every message once, in order, whatever cursors they share (seeded)', async () => {
    const seed = 20261203;
    const random = seededRandom(seed);
    const channels = ['share/r0', 'share/r1', 'share/r2'];
    const token = await userToken('reader', [{ match: 'share/#', allow: ['sub'] }]);
    const writer = await publisher();
    // Pollers on one channel, on two, with and without deltas: same cursors, different answers.
    const pollers = Array.from({ length: 12 }, (_, i) => ({
      channels: i % 4 === 3 ? [channels[0] as string, channels[1] as string] : [channels[i % 3] as string],
      delta: i % 2 === 0 ? undefined : 'json-patch',
      cursor: undefined as string | undefined,
      seen: [] as string[],
    }));
    /** Every publish, in order: one at a time, so also the order of dispatch. */
    const sent: string[] = [];
    const pollOnce = async (poller: (typeof pollers)[number]): Promise<void> => {
      const params = new URLSearchParams();
      for (const channel of poller.channels) params.append('channel', channel);
      if (poller.cursor !== undefined) params.set('cursor', poller.cursor);
      if (poller.delta !== undefined) params.set('delta', poller.delta);
      params.set('timeout', '0');
      const answer = await fetch(`${server.url}/v1/poll?${params}`, { headers: { authorization: `Bearer ${token}` } });
      expect(answer.status, `seed ${seed}`).toBe(200);
      const body = (await answer.json()) as { messages: { channel: string; data?: { n: string } }[]; cursor: string };
      // A delta message carries a patch, not data; its order and channel are what is checked here.
      for (const message of body.messages) poller.seen.push(`${message.channel}:${message.data?.n ?? '?'}`);
      poller.cursor = body.cursor;
    };
    await Promise.all(pollers.map(pollOnce));
    for (const poller of pollers) poller.seen.length = 0;
    let n = 0;
    for (let round = 0; round < 40; round++) {
      const publishes = Math.floor(random() * 4);
      for (let i = 0; i < publishes; i++) {
        const channel = channels[Math.floor(random() * channels.length)] as string;
        const value = `m${n++}`;
        sent.push(`${channel}:${value}`);
        expect((await publishAs(server.url, writer, { channel, data: { n: value, pad: 'x'.repeat(Math.floor(random() * 50)) } })).status).toBe(201);
      }
      // A random half polls now, together: some share a cursor with others, some are behind.
      await Promise.all(pollers.filter(() => random() < 0.5).map(pollOnce));
    }
    for (let i = 0; i < 10; i++) await Promise.all(pollers.map(pollOnce));
    expect(n, 'the rounds published something').toBeGreaterThan(20);
    for (const poller of pollers) {
      const expected = sent.filter((entry) => poller.channels.includes(entry.slice(0, entry.indexOf(':'))));
      const where = `seed ${seed}, poller on ${poller.channels.join('+')}${poller.delta ? ' with deltas' : ''}`;
      // A message sent as a delta names no value: it must stand where that value is due.
      const got = poller.seen.map((entry, i) => (entry.endsWith(':?') && expected[i]?.startsWith(entry.slice(0, -1)) ? (expected[i] as string) : entry));
      if (poller.delta === undefined) expect(poller.seen.every((entry) => !entry.endsWith(':?')), where).toBe(true);
      expect(got, where).toEqual(expected);
    }
  });
});
