import { once } from 'node:events';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/start.js';
import { publish, startTestServer } from '../helpers/server.js';
import { metricValue, scrapeMetrics } from '../helpers/limit-clients.js';
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

describe('SSE behind another request on the same connection', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startTestServer({ maxConnectionsPerIp: 2 });
  });
  afterAll(async () => {
    await server.close();
  });

  it('does not count a stream requested behind another one on its connection: the address can still open its two', async () => {
    // Three stream requests in one write: the first becomes a stream, the two behind it never can.
    const { port } = new URL(server.url);
    const socket = connect(Number(port), '127.0.0.1');
    await once(socket, 'connect');
    let head = '';
    const opened = new Promise<void>((resolve) => socket.on('data', (chunk: Buffer) => (head += chunk.toString()).includes('event: hello') && resolve()));
    const request = (channel: string): string => `GET /v1/sse?channel=${channel} HTTP/1.1\r\nHost: x\r\n\r\n`;
    socket.write(request('piped/a') + request('piped/b') + request('piped/c'));
    await opened;
    socket.destroy();
    // Gone on the server's side too (its close releases what the stream held).
    await expect.poll(async () => metricValue(await scrapeMetrics(server.url), 'edgepush_connections', { transport: 'sse' })).toBe(0);
    // The address's limit is 2: both must open once the piped connection is gone.
    const streams = [new SseTestClient(server.url, ['piped/d']), new SseTestClient(server.url, ['piped/e'])];
    await Promise.all(streams.map((stream) => stream.ready));
    for (const stream of streams) stream.drop();
  });
});
