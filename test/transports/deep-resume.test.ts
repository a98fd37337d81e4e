/**
 * Deep resume on every transport, against a log that keeps its past (a stand-in for Kafka): a
 * cursor older than the rings gets everything it missed from the log, then the rings, then live,
 * each message once; long-poll replies cut at pollMaxMessages continue exactly; retention losses
 * become resets naming the loss. The same paths run against a real broker in test/integration/.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/start.js';
import { PollTestClient } from '../helpers/poll-client.js';
import { RetainedLog } from '../helpers/retained-log.js';
import { publish, startTestServer } from '../helpers/server.js';
import { SseTestClient } from '../helpers/sse-client.js';
import type { ClientFactory, TestClient } from '../helpers/test-client.js';
import { WsTestClient } from '../helpers/ws-client.js';

const transports: Record<string, ClientFactory> = {
  sse: (url, channels, options) => new SseTestClient(url, channels, options),
  poll: (url, channels, options) => new PollTestClient(url, channels, options),
  ws: (url, channels, options) => new WsTestClient(url, channels, options),
};

describe('deep resume from the log', () => {
  const servers: RunningServer[] = [];
  const clients: TestClient[] = [];
  afterEach(async () => {
    for (const client of clients.splice(0)) client.drop();
    for (const server of servers.splice(0)) await server.close();
  });
  const start = async (log: RetainedLog): Promise<RunningServer> => {
    const server = await startTestServer({ historySize: 5, pollMaxMessages: 7 }, { source: log });
    servers.push(server);
    return server;
  };
  const open: (transport: string) => ClientFactory = (transport) => (url, channels, options) => {
    const client = (transports[transport] as ClientFactory)(url, channels, options);
    clients.push(client);
    return client;
  };

  for (const transport of Object.keys(transports)) {
    it(`${transport}: a cursor 30 messages behind a ring of 5 gets them all once, in order, then live`, async () => {
      const log = new RetainedLog();
      const server = await start(log);
      const first = open(transport)(server.url, ['deep/a']);
      await first.ready;
      const cursor = first.cursor as string;
      first.drop();
      for (let n = 0; n < 30; n += 6) {
        await publish(server.url, [0, 1, 2].flatMap((i) => [{ channel: 'deep/a', data: n + i }, { channel: 'deep/noise', data: -1 }, { channel: 'deep/a', data: n + i + 3 }]).sort((x, y) => (x.data as number) - (y.data as number)));
      }
      const back = open(transport)(server.url, ['deep/a'], { cursor });
      await back.waitFor(() => back.received.length >= 30, 'the 30 missed messages');
      await publish(server.url, [{ channel: 'deep/a', data: 'live' }]);
      await back.waitFor(() => back.received.length >= 31, 'the live message');
      expect(back.received.map((m) => m.data)).toEqual([...Array.from({ length: 30 }, (_, i) => i), 'live']);
      expect(back.resets).toEqual([]);
      expect(log.reads).toBeGreaterThan(0);
    });
  }

  for (const transport of Object.keys(transports)) {
    it(`${transport}: two partitions, one channel's old ring messages behind the other's read-back range: each message once`, async () => {
      // Two partitions: 'a/slow' on 0 keeps its few early messages in its ring; 'b/busy' on 1 has
      // many, most evicted. A ring message of a/slow carries the node's cursor from back then, which is
      // behind b/busy's read-back range on partition 1: handing it back (a long-poll reply cut there,
      // or a stream's next cursor) would make the next resume read that range again.
      const log = new RetainedLog(2, (channel) => (channel.startsWith('a/') ? 0 : 1));
      const server = await start(log);
      const first = open(transport)(server.url, ['a/slow', 'b/busy']);
      await first.ready;
      const cursor = first.cursor as string;
      first.drop();
      await publish(server.url, [0, 1, 2].map((n) => ({ channel: 'a/slow', data: `a${n}` })));
      // 18: 13 evicted from the ring of 5, read back in replies of 7 and 6, so the second reply is cut
      // right at a0, a ring message of the other partition.
      await publish(server.url, Array.from({ length: 18 }, (_, n) => ({ channel: 'b/busy', data: `b${n}` })));
      const back = open(transport)(server.url, ['a/slow', 'b/busy'], { cursor });
      await back.waitFor(() => back.received.length >= 21, 'all 21 messages');
      await publish(server.url, [{ channel: 'b/busy', data: 'live' }]);
      await back.waitFor(() => back.received.some((m) => m.data === 'live'), 'the live message');
      const data = back.received.map((m) => m.data);
      expect(new Set(data).size).toBe(data.length);
      expect(data.filter((d) => String(d).startsWith('a'))).toEqual(['a0', 'a1', 'a2']);
      expect(data.filter((d) => String(d).startsWith('b'))).toEqual(Array.from({ length: 18 }, (_, n) => `b${n}`));
      expect(back.resets).toEqual([]);
      // The cursor the client ends with covers everything it got: a resume from it repeats nothing.
      back.drop();
      const again = open(transport)(server.url, ['a/slow', 'b/busy'], { cursor: back.cursor as string });
      await again.ready;
      await publish(server.url, [{ channel: 'a/slow', data: 'after' }]);
      await again.waitFor(() => again.received.length >= 1, 'the message after the resume');
      expect(again.received.map((m) => m.data)).toEqual(['after']);
      expect(again.resets).toEqual([]);
    });
  }

  it('sse: no heartbeat carries the cursor past a deep resume still reading the log', async () => {
    const log = new RetainedLog();
    const server = await startTestServer({ historySize: 5, heartbeatInterval: 0.05 }, { source: log });
    servers.push(server);
    const first = open('sse')(server.url, ['slow/a']) as SseTestClient;
    await first.ready;
    const cursor = first.cursor as string;
    first.drop();
    await publish(server.url, Array.from({ length: 12 }, (_, n) => ({ channel: 'slow/a', data: n })));
    let release = (): void => {};
    log.gate = new Promise((resolve) => (release = resolve));
    const reading = new Promise<void>((resolve) => (log.onRead = resolve));
    const watcher = open('sse')(server.url, ['slow/other']) as SseTestClient;
    await watcher.ready;
    const resuming = open('sse')(server.url, ['slow/a'], { cursor }) as SseTestClient;
    await reading;
    // Several heartbeat ticks pass (the watcher's stream counts them) while the log is being read.
    const ticks = watcher.events.filter((e) => e === 'id').length;
    await watcher.waitFor(() => watcher.events.filter((e) => e === 'id').length >= ticks + 3, 'three heartbeats');
    release();
    await resuming.waitFor(() => resuming.received.length >= 12, 'the 12 missed messages');
    expect(resuming.events.indexOf('id')).toBeGreaterThan(resuming.events.indexOf('message'));
    expect(resuming.received.map((m) => m.data)).toEqual(Array.from({ length: 12 }, (_, n) => n));
  });

  it('answers records lost to retention with a reset naming the loss, then what is still held', async () => {
    const log = new RetainedLog();
    const server = await start(log);
    const first = open('poll')(server.url, ['kept/a']);
    await first.ready;
    const cursor = first.cursor as string;
    first.drop();
    await publish(server.url, Array.from({ length: 20 }, (_, n) => ({ channel: 'kept/a', data: n })));
    log.forget(8);
    const back = open('poll')(server.url, ['kept/a'], { cursor });
    await back.waitFor(() => back.received.length >= 12 && back.resets.length > 0, 'a reset and the 12 messages held');
    expect(back.resets[0]).toMatchObject({ reason: 'cursor_expired', channel: 'kept/a', from: cursor, to: expect.stringMatching(/\.7$/) });
    expect(back.received.map((m) => m.data)).toEqual(Array.from({ length: 12 }, (_, i) => i + 8));
  });
});
