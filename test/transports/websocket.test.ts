import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/start.js';
import { publish, startTestServer } from '../helpers/server.js';
import { metricValue, scrapeMetrics } from '../helpers/limit-clients.js';
import { WsTestClient } from '../helpers/ws-client.js';
import { runConformance } from './conformance.js';

runConformance('WebSocket', (url, channels, options) => new WsTestClient(url, channels, options), { canBeSlow: true, slowCode: 4008, streamPerSubscription: true });

describe('WebSocket specifics', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startTestServer({ maxMessageBytes: 1024 });
  });
  afterAll(async () => {
    await server.close();
  });

  it('answers each bad frame with a precise error op and keeps the connection', async () => {
    const client = new WsTestClient(server.url, []);
    await client.ready;
    const cases: [string | Buffer, string][] = [
      ['{"op": "subscribe", "channel": ', 'bad_json'],
      ['[1,2]', 'bad_request'],
      ['{"channel": "a"}', 'bad_request'],
      ['{"op": "dance", "id": "d1"}', 'unknown_op'],
      ['{"op": "subscribe", "channel": "a//b", "id": "s1"}', 'bad_channel'],
      ['{"op": "subscribe", "id": "s2"}', 'bad_request'],
      ['{"op": "publish", "data": 1}', 'bad_request'],
      ['{"op": "subscribe", "channel": "a", "cursor": 5}', 'bad_request'],
      ['{"op": "unsubscribe", "channel": "never/subscribed"}', 'not_subscribed'],
      [JSON.stringify({ op: 'publish', channel: 'big', data: 'x'.repeat(2000), id: 'p1' }), 'message_too_large'],
      [Buffer.from([1, 2, 3]), 'unsupported_frame'],
    ];
    for (const [frame, code] of cases) {
      const next = client.nextOp('error');
      client.socket.send(frame, { binary: Buffer.isBuffer(frame) });
      expect(await next).toMatchObject({ code });
    }
    expect(client.ops.find((op) => op['code'] === 'unknown_op')).toMatchObject({ id: 'd1' });
    expect(client.ops.find((op) => op['code'] === 'bad_channel')).toMatchObject({ id: 's1' });
    // Still a working connection after all of that.
    const subscribed = client.nextOp('subscribed');
    client.send({ op: 'subscribe', channel: 'ws/after-errors', id: 'ok' });
    expect(await subscribed).toMatchObject({ channel: 'ws/after-errors', id: 'ok', resumed: false });
    await publish(server.url, [{ channel: 'ws/after-errors', data: 'fine' }]);
    await client.waitFor(() => client.received.length === 1, 'a message');
    client.drop();
  });

  it('publishes over the socket, acks with ids, and publishes a retried op id once', async () => {
    const watcher = new WsTestClient(server.url, ['ws/publish']);
    await watcher.ready;
    const client = new WsTestClient(server.url, []);
    await client.ready;
    const ack = client.nextOp('ack');
    client.send({ op: 'publish', channel: 'ws/publish', data: { v: 1 }, id: 'retry-me-0001' });
    const first = await ack;
    const again = client.nextOp('ack');
    client.send({ op: 'publish', channel: 'ws/publish', data: { v: 1 }, id: 'retry-me-0001' });
    expect(await again).toEqual(first);
    expect(first).toMatchObject({ op: 'ack', id: 'retry-me-0001', ids: [expect.any(String)] });
    const pong = client.nextOp('pong');
    client.send({ op: 'ping', id: 'p' });
    expect(await pong).toMatchObject({ id: 'p', cursor: expect.any(String) });
    await watcher.waitFor(() => watcher.received.length === 1, 'the published message');
    await publish(server.url, [{ channel: 'ws/publish', data: 'marker' }]);
    await watcher.waitFor(() => watcher.received.length === 2, 'the marker');
    expect(watcher.received.map((m) => m.data)).toEqual([{ v: 1 }, 'marker']);
    watcher.drop();
    client.drop();
  });

  it('keeps per-channel cursors: each subscription resumes from its own', async () => {
    const client = new WsTestClient(server.url, ['ws/a']);
    await client.ready;
    const cursorA = client.cursor as string;
    await publish(server.url, [{ channel: 'ws/a', data: 'a1' }, { channel: 'ws/b', data: 'b1' }]);
    await client.waitFor(() => client.received.length === 1, 'a1');
    const cursorAfterA1 = client.cursor as string;
    client.drop();
    await publish(server.url, [{ channel: 'ws/a', data: 'a2' }, { channel: 'ws/b', data: 'b2' }]);
    const again = new WsTestClient(server.url, []);
    await again.ready;
    again.send({ op: 'subscribe', channel: 'ws/a', cursor: cursorAfterA1 });
    again.send({ op: 'subscribe', channel: 'ws/b', cursor: cursorA });
    await again.waitFor(() => again.received.length === 3, 'a2, b1 and b2');
    expect(again.received.filter((m) => m.channel === 'ws/a').map((m) => m.data)).toEqual(['a2']);
    expect(again.received.filter((m) => m.channel === 'ws/b').map((m) => m.data)).toEqual(['b1', 'b2']);
    expect(again.ops.filter((op) => op['op'] === 'subscribed').map((op) => op['resumed'])).toEqual([true, true]);
    again.drop();
  });

  it('closes with 1009 a frame over the hard size limit, and the server keeps serving', async () => {
    const socket = new WebSocket(`${server.url.replace('http', 'ws')}/v1/ws`);
    await new Promise((resolve) => socket.once('open', resolve));
    const closed = new Promise<number>((resolve) => socket.once('close', resolve));
    socket.on('error', () => {});
    socket.send('x'.repeat(64 * 1024));
    expect(await closed).toBe(1009);
    const client = new WsTestClient(server.url, ['ws/still-up']);
    await client.ready;
    client.drop();
  });

  it.each([
    ['/v1/ws', undefined],
    ['/mqtt', 'mqtt'],
  ])('counts a malformed frame on %s once as the client\'s bad input, after ws closed the socket with 1007', async (path, protocol) => {
    const metric = { transport: 'ws', code: 'bad_request' };
    const before = metricValue(await scrapeMetrics(server.url), 'edgepush_bad_input_total', metric);
    const socket = new WebSocket(`${server.url.replace('http', 'ws')}${path}`, protocol);
    await new Promise((resolve) => socket.once('open', resolve));
    const closed = new Promise<number>((resolve) => socket.once('close', resolve));
    socket.on('error', () => {});
    // A text frame that is not UTF-8: ws refuses it below the transport.
    socket.send(Buffer.from([0xc3, 0x28]), { binary: false });
    expect(await closed).toBe(1007);
    // Counted when ws reported the frame, before it sent the close.
    expect(metricValue(await scrapeMetrics(server.url), 'edgepush_bad_input_total', metric)).toBe(before + 1);
  });

  it('tells clients to reconnect with close code 4001 when the server shuts down', async () => {
    const own = await startTestServer();
    const client = new WsTestClient(own.url, ['ws/shutdown']);
    await client.ready;
    await own.close();
    await client.waitFor(() => client.ended !== undefined, 'the close');
    expect(client.ended?.code).toBe(4001);
  });
});
