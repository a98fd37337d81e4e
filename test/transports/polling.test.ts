import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/start.js';
import { PollTestClient } from '../helpers/poll-client.js';
import { publish, startTestServer } from '../helpers/server.js';
import { runConformance } from './conformance.js';

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
