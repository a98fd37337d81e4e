/**
 * What the series of docs/metrics.md count, checked against what clients see: bytes written per
 * transport equal to the bytes each client received, one latency observation per message however
 * many subscribers, publish results by outcome from every way in, held long-polls, the bytes deltas
 * saved (once per message, not per subscriber), elided messages, control-log records.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/start.js';
import { CountingMqtt, CountingSse, CountingWs, type CountingClient } from '../helpers/counting-clients.js';
import { eventually, metricSum, metricValue, scrapeMetrics } from '../helpers/limit-clients.js';
import { publishAs, SECRET, userToken } from '../helpers/security-kit.js';
import { publish, startTestServer } from '../helpers/server.js';

const clients: CountingClient[] = [];
afterEach(() => {
  for (const client of clients.splice(0)) client.close();
});
function track<T extends CountingClient>(client: T): T {
  clients.push(client);
  return client;
}

/** One long-poll: its body as text, and how many bytes that is. */
async function poll(baseUrl: string, query: string): Promise<{ body: { cursor: string; messages: unknown[] }; bytes: number }> {
  const response = await fetch(`${baseUrl}/v1/poll?${query}`);
  const bytes = Buffer.from(await response.arrayBuffer());
  return { body: JSON.parse(bytes.toString('utf8')) as { cursor: string; messages: unknown[] }, bytes: bytes.length };
}

describe('metrics of an open server', () => {
  let server: RunningServer;
  const scrape = (): Promise<string> => scrapeMetrics(server.url);
  beforeAll(async () => {
    server = await startTestServer({ maxMessageBytes: 1000 });
  });
  afterAll(async () => {
    await server.close();
  });

  it('counts the bytes written to each transport exactly as its clients received them', async () => {
    const channel = 'bytes/a';
    const sse = track(new CountingSse(server.url, `channel=${channel}`));
    const ws = track(new CountingWs(server.url, [channel]));
    const mqtt = track(new CountingMqtt(server.url, [channel]));
    await Promise.all([sse.ready, ws.ready, mqtt.ready]);
    const first = await poll(server.url, `channel=${channel}&timeout=0`);
    const held = poll(server.url, `channel=${channel}&cursor=${encodeURIComponent(first.body.cursor)}&timeout=30`);
    await eventually(async () => metricValue(await scrape(), 'edgepush_poll_waiters') === 1, 'the poll to be held');
    for (let i = 0; i < 3; i++) await publish(server.url, [{ channel, data: { i, text: 'x'.repeat(50 * i) } }]);
    const answered = await held;
    await Promise.all([sse, ws, mqtt].map((client) => client.until(() => client.messages.length === 3, 'three messages')));
    expect(answered.body.messages.length).toBeGreaterThan(0);
    const received = { sse: sse.bytes, ws: ws.bytes, mqtt: mqtt.bytes, poll: first.bytes + answered.bytes };
    // A heartbeat may be on its way: the counts converge on what the clients hold.
    await eventually(async () => {
      const text = await scrape();
      const written = Object.fromEntries(Object.keys(received).map((transport) => [transport, metricValue(text, 'edgepush_written_bytes_total', { transport })]));
      return JSON.stringify(written) === JSON.stringify({ sse: sse.bytes, ws: ws.bytes, mqtt: mqtt.bytes, poll: received.poll });
    }, 'written bytes to match received bytes');
    for (const value of Object.values(received)) expect(value).toBeGreaterThan(0);
  });

  it('observes delivery latency once per message, however many subscribers took it', async () => {
    const channel = 'latency/a';
    const subscribers = [track(new CountingSse(server.url, `channel=${channel}`)), track(new CountingSse(server.url, `channel=${channel}`)), track(new CountingWs(server.url, [channel]))];
    await Promise.all(subscribers.map((client) => client.ready));
    const before = await scrape();
    for (let i = 0; i < 4; i++) await publish(server.url, [{ channel, data: i }]);
    await Promise.all(subscribers.map((client) => client.until(() => client.messages.length === 4, 'four messages')));
    const after = await scrape();
    const delta = (name: string, labels: Record<string, string> = {}): number => metricValue(after, name, labels) - metricValue(before, name, labels);
    expect(delta('edgepush_deliveries_total')).toBe(12);
    expect(delta('edgepush_delivery_latency_seconds_count')).toBe(4);
    expect(delta('edgepush_delivery_latency_seconds_bucket', { le: '+Inf' })).toBe(4);
    expect(delta('edgepush_delivery_latency_seconds_sum')).toBeGreaterThanOrEqual(0);
  });

  it('counts held long-polls and the groups that share a registration and a reply', async () => {
    const start = await poll(server.url, 'channel=wait/a&timeout=0');
    const cursor = encodeURIComponent(start.body.cursor);
    const held = [
      poll(server.url, `channel=wait/a&cursor=${cursor}&timeout=30`),
      poll(server.url, `channel=wait/a&cursor=${cursor}&timeout=30`),
      poll(server.url, `channel=wait/a&cursor=${cursor}&timeout=30`),
    ];
    const other = poll(server.url, `channel=wait/b&cursor=${cursor}&timeout=30`);
    await eventually(async () => metricValue(await scrape(), 'edgepush_poll_waiters') === 4, 'four held polls');
    const text = await scrape();
    expect(metricValue(text, 'edgepush_poll_waiter_groups')).toBe(2);
    expect(metricValue(text, 'edgepush_connections', { transport: 'poll' })).toBe(4);
    await publish(server.url, [{ channel: 'wait/a', data: 1 }]);
    const bodies = await Promise.all(held);
    expect(bodies.map((answer) => answer.body.messages.length)).toEqual([1, 1, 1]);
    const after = await scrape();
    expect([metricValue(after, 'edgepush_poll_waiters'), metricValue(after, 'edgepush_poll_waiter_groups')]).toEqual([1, 1]);
    await publish(server.url, [{ channel: 'wait/b', data: 1 }]);
    await other;
  });

  it('counts the bytes deltas saved once per message, not once per subscriber sent the delta', async () => {
    const channel = 'delta/a';
    const full = track(new CountingSse(server.url, `channel=${channel}`));
    const withDelta = track(new CountingSse(server.url, `channel=${channel}&delta=json-patch`));
    const wsDelta = track(new CountingWs(server.url, [channel], { delta: 'json-patch' }));
    await Promise.all([full.ready, withDelta.ready, wsDelta.ready]);
    const before = metricValue(await scrape(), 'edgepush_delta_saved_bytes_total', { codec: 'json-patch' });
    for (let i = 0; i < 4; i++) await publish(server.url, [{ channel, data: { bus: 7, position: [52.5 + i / 1000, 13.4], note: 'on time, no delay reported at this stop; '.repeat(4) } }]);
    await Promise.all([full, withDelta, wsDelta].map((client) => client.until(() => client.messages.length === 4, 'four messages')));
    // What one client saved: each full message's line minus the delta's line in its place.
    const fullLines = full.dataLines.filter((line) => line.startsWith('{"channel"'));
    const deltaLines = withDelta.dataLines.filter((line) => line.startsWith('{"channel"'));
    const saved = fullLines.reduce((sum, line, i) => sum + Buffer.byteLength(line) - Buffer.byteLength(deltaLines[i] as string), 0);
    expect(deltaLines.filter((line) => line.includes('"delta":{')).length).toBe(3);
    expect(saved).toBeGreaterThan(0);
    expect(metricValue(await scrape(), 'edgepush_delta_saved_bytes_total', { codec: 'json-patch' }) - before).toBe(saved);
  });

  it('counts the messages eliding replaced', async () => {
    const ws = track(new CountingWs(server.url, ['elide/a'], { maxRate: 60_000 }));
    await ws.ready;
    const before = metricValue(await scrape(), 'edgepush_elided_messages_total');
    // The first goes at once; within the minute each next one replaces the one waiting.
    for (let i = 0; i < 4; i++) await publish(server.url, [{ channel: 'elide/a', data: i }]);
    await ws.until(() => ws.messages.length === 1, 'the first message');
    expect(metricValue(await scrape(), 'edgepush_elided_messages_total') - before).toBe(2);
  });

  it('counts server-API commands this node read from the control log', async () => {
    const before = metricValue(await scrape(), 'edgepush_control_log_records_total', { log: 'control', outcome: 'applied' });
    const answer = await fetch(`${server.url}/v1/server/disconnect`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ session: 'no-such-session' }) });
    expect(answer.status).toBe(202);
    const text = await scrape();
    expect(metricValue(text, 'edgepush_control_log_records_total', { log: 'control', outcome: 'applied' }) - before).toBe(1);
    expect(metricValue(text, 'edgepush_control_log_records_total', { log: 'control', outcome: 'skipped' })).toBe(0);
  });
});

describe('publish results', () => {
  const API_KEY = 'metrics-values-api-key-0001';
  let server: RunningServer;
  beforeAll(async () => {
    // One publish per client, then a 10 s wait: the second is rate limited.
    server = await startTestServer({ jwtSecret: SECRET, apiKeys: API_KEY, maxMessageBytes: 1000, publishRate: 0.1 });
  });
  afterAll(async () => {
    await server.close();
  });

  it('counts every request once by outcome, from HTTP, the server API, WebSocket and MQTT', async () => {
    const caps = [{ match: 'pub/#', allow: ['pub', 'sub'] }];
    const [httpUser, wsUser, mqttUser] = await Promise.all(['http-user', 'ws-user', 'mqtt-user'].map((sub) => userToken(sub, caps)));
    const status = async (token: string | undefined, body: unknown, headers: Record<string, string> = {}, path?: string): Promise<number> => (await publishAs(server.url, token, body, headers, path)).status;
    expect(await status(API_KEY, { channel: 'pub/a', data: 1 }, {}, '/v1/server/publish')).toBe(201);
    expect(await status(API_KEY, { channel: 'pub/a', data: 2 }, { 'idempotency-key': 'k1' }, '/v1/server/publish')).toBe(201);
    expect(await status(API_KEY, { channel: 'pub/a', data: 2 }, { 'idempotency-key': 'k1' }, '/v1/server/publish')).toBe(201); // duplicate
    expect(await status(undefined, { channel: 'pub/a', data: 1 }, {}, '/v1/server/publish')).toBe(401); // refused: no API key
    expect(await status(httpUser, { channel: 'elsewhere', data: 1 })).toBe(403); // refused: no pub grant
    expect(await status(API_KEY, { data: 1 }, {}, '/v1/server/publish')).toBe(400); // invalid: no channel
    expect(await status(API_KEY, { channel: 'pub/a', data: 'x'.repeat(2000) }, {}, '/v1/server/publish')).toBe(413); // too_large
    expect(await status(httpUser, { channel: 'pub/a', data: 1 })).toBe(429); // rate_limited: the refused one took the token
    const ws = track(new CountingWs(server.url, [], {}, wsUser));
    await ws.until(() => ws.ops.some((op) => op['op'] === 'hello'), 'hello');
    ws.send({ op: 'publish', id: 'p1', channel: 'pub/ws', data: 1 });
    ws.send({ op: 'publish', id: 'p2', channel: 'pub/ws', data: 2 });
    await ws.until(() => ws.ops.some((op) => op['id'] === 'p1') && ws.ops.some((op) => op['id'] === 'p2'), 'both answers');
    expect(ws.ops.filter((op) => op['id'] !== undefined).map((op) => [op['id'], op['op'], op['code']]).sort()).toEqual([['p1', 'ack', undefined], ['p2', 'error', 'rate_limited']]);
    const mqtt = track(new CountingMqtt(server.url, ['pub/#'], mqttUser));
    await mqtt.ready;
    await mqtt.publish('pub/mqtt', { x: 1 }, 7);
    const text = await scrapeMetrics(server.url, API_KEY);
    const outcomes = Object.fromEntries(['ok', 'duplicate', 'refused', 'invalid', 'too_large', 'rate_limited', 'failed'].map((outcome) => [outcome, metricValue(text, 'edgepush_publish_results_total', { outcome })]));
    expect(outcomes).toEqual({ ok: 4, duplicate: 1, refused: 2, invalid: 1, too_large: 1, rate_limited: 2, failed: 0 });
    expect(metricSum(text, 'edgepush_published_messages_total')).toBe(4);
  });
});
