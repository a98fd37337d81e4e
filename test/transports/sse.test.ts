import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/start.js';
import { publish, startTestServer } from '../helpers/server.js';
import { SseTestClient } from '../helpers/sse-client.js';
import { runConformance } from './conformance.js';

runConformance('SSE', (url, channels, options) => new SseTestClient(url, channels, options), { canBeSlow: true, slowCode: 4008 });

describe('SSE specifics', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startTestServer({ heartbeatInterval: 0.05, reconnectDelay: 3 });
  });
  afterAll(async () => {
    await server.close();
  });

  it('sends proxy-friendly headers, retry:, the heartbeat interval, the session id and a starting id before anything else', async () => {
    const response = await fetch(`${server.url}/v1/sse?channel=sse/headers`);
    expect(response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(response.headers.get('cache-control')).toBe('no-store');
    expect(response.headers.get('x-accel-buffering')).toBe('no');
    expect(response.headers.get('access-control-allow-origin')).toBe('*');
    const reader = response.body!.getReader();
    let text = '';
    while (!text.includes('id: ')) text += new TextDecoder().decode((await reader.read()).value);
    await reader.cancel();
    expect(text).toMatch(/^retry: 3000\nheartbeat: 50\n\nevent: hello\ndata: \{"session":"[A-Za-z0-9_-]{16}"\}\n\nid: [0-9a-z]+\.[^\n]*\n\n/);
  });

  it('keeps an idle stream alive with id-only heartbeats that carry the advancing cursor', async () => {
    const client = new SseTestClient(server.url, ['sse/idle']);
    await client.ready;
    const before = client.cursor;
    await publish(server.url, [{ channel: 'sse/elsewhere', data: 1 }]);
    // The idle channel received nothing, yet its cursor moves past the other channel's message.
    await client.waitFor(() => client.cursor !== before, 'a heartbeat with a newer cursor');
    expect(client.received).toEqual([]);
    expect(client.events.filter((e) => e !== 'id' && e !== 'hello')).toEqual([]);
    client.drop();
  });

  it('takes the cursor from ?lastEventId= when there is no Last-Event-ID header', async () => {
    const first = new SseTestClient(server.url, ['sse/query']);
    await first.ready;
    const cursor = first.cursor as string;
    first.drop();
    await publish(server.url, [{ channel: 'sse/query', data: 'missed' }]);
    const again = new SseTestClient(server.url, ['sse/query'], {}, `&lastEventId=${encodeURIComponent(cursor)}`);
    await again.waitFor(() => again.received.length === 1, 'the missed message');
    expect(again.received[0]?.data).toBe('missed');
    again.drop();
  });

  it('refuses bad requests with JSON errors before opening a stream', async () => {
    const cases: [string, number, string][] = [
      ['', 400, 'bad_request'],
      ['?channel=', 400, 'bad_channel'],
      [`?${Array.from({ length: 101 }, (_, i) => `channel=c${i}`).join('&')}`, 400, 'too_many_channels'],
      ['?channel=a&delta=bogus', 400, 'bad_request'],
    ];
    for (const [query, status, code] of cases) {
      const response = await fetch(`${server.url}/v1/sse${query}`);
      expect(response.status).toBe(status);
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe(code);
    }
  });
});
