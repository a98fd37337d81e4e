/**
 * A real EventSource implementation (the `eventsource` package, spec-following) against the SSE
 * transport: its own automatic reconnects, carrying Last-Event-ID, must resume exactly.
 */
import type { Socket } from 'node:net';
import { EventSource } from 'eventsource';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/start.js';
import { publish, startTestServer } from '../helpers/server.js';

describe('SSE with a real EventSource', () => {
  let server: RunningServer;
  const sseSockets = new Set<Socket>();

  beforeAll(async () => {
    server = await startTestServer({ reconnectDelay: 0.01, historySize: 5000 });
    server.app.server.on('request', (request: { url?: string; socket: Socket }) => {
      if (request.url?.startsWith('/v1/sse')) sseSockets.add(request.socket);
    });
  });
  afterAll(async () => {
    await server.close();
  });

  it('reconnects on its own with Last-Event-ID and misses nothing, gets nothing twice', async () => {
    const lastEventIds: (string | null)[] = [];
    const source = new EventSource(`${server.url}/v1/sse?channel=es/a&channel=es/b`, {
      fetch: (input, init) => {
        lastEventIds.push(new Headers(init?.headers).get('last-event-id'));
        return fetch(input, init);
      },
    });
    const received: number[] = [];
    let progress: { count: number; resolve: () => void } | undefined;
    const receivedAtLeast = (count: number): Promise<void> =>
      received.length >= count ? Promise.resolve() : new Promise((resolve) => (progress = { count, resolve }));
    let cutAt = 50;
    let cuts = 0;
    const total = 1500;
    const done = new Promise<void>((resolve, reject) => {
      source.onmessage = (event) => {
        received.push((JSON.parse(event.data) as { data: number }).data);
        // Cut the connection from the server side now and then, as a flaky network would.
        if (received.length >= cutAt && sseSockets.size > 0) {
          cutAt += 60 + ((cuts * 37) % 90);
          cuts++;
          for (const socket of sseSockets) socket.destroy();
          sseSockets.clear();
        }
        if (progress && received.length >= progress.count) progress.resolve();
        if (received.length >= total) resolve();
      };
      source.onerror = () => {
        if (source.readyState === EventSource.CLOSED) reject(new Error('EventSource gave up'));
      };
    });
    await new Promise<void>((resolve) => (source.onopen = () => resolve()));
    for (let n = 0; n < total; n += 100) {
      await publish(server.url, Array.from({ length: 100 }, (_, i) => ({ channel: (n + i) % 2 ? 'es/b' : 'es/a', data: n + i })));
      // Half the batch in: the next batch goes out while the client may be reconnecting.
      await receivedAtLeast(n + 50);
    }
    await done;
    source.close();
    expect(cuts).toBeGreaterThan(3);
    expect(received).toEqual(Array.from({ length: total }, (_, i) => i));
    // Every reconnect resumed from a cursor; only the very first request had none.
    expect(lastEventIds[0]).toBeNull();
    // One request per cut except, possibly, a cut right after the last message.
    expect(lastEventIds.length).toBeGreaterThanOrEqual(cuts);
    expect(lastEventIds.slice(1).every((id) => typeof id === 'string' && id.length > 0)).toBe(true);
  });
});
