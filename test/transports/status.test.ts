/**
 * The status page: one small self-contained document; the snapshot shows connections by transport,
 * rates, resumes, the busiest channels and the slowest consumers. Its protection (the same guard as
 * /metrics) is checked with /metrics in test/security/routes-and-browsers.test.ts.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/start.js';
import { StatusSampler, type StatusSnapshot } from '../../src/status.js';
import type { Session } from '../../src/engine/session.js';
import { ChannelEngine } from '../../src/engine/engine.js';
import { EmbeddedLog } from '../../src/log/embedded-log.js';
import { createMetrics } from '../../src/metrics.js';
import { payloadFromValue } from '../../src/protocol/envelope.js';
import { Resumer } from '../../src/resume/resumer.js';
import { ConnectionRegistry, type ControllableConnection } from '../../transports/connection-registry.js';
import { CountingMqtt, CountingSse, CountingWs, type CountingClient } from '../helpers/counting-clients.js';
import { eventually, httpRequest, metricValue, scrapeMetrics } from '../helpers/limit-clients.js';
import { publish, startTestServer } from '../helpers/server.js';

describe('/status page', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
  });

  it('is one small self-contained document: nothing loaded from elsewhere, a policy that allows nothing else', async () => {
    const answer = await httpRequest(server.url, '/status');
    expect(Buffer.byteLength(answer.text)).toBeLessThan(16 * 1024);
    // (The SVG namespace is a name, not something loaded.)
    expect(answer.text).not.toMatch(/<script[^>]+src=|<link[^>]+rel="stylesheet"|href="https?:|url\(|@import|fetch\('https?:/);
    const policy = answer.headers['content-security-policy'] as string;
    expect(policy).toMatch(/default-src 'none'/);
    expect(policy).toMatch(/script-src 'sha256-[^']+'/);
    expect(policy).toMatch(/connect-src 'self'/);
    expect(answer.headers['referrer-policy']).toBe('no-referrer');
    expect(answer.headers['cache-control']).toBe('no-store');
  });
});

describe('/status.json', () => {
  let server: RunningServer;
  const clients: CountingClient[] = [];
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterEach(() => {
    for (const client of clients.splice(0)) client.close();
  });
  afterAll(async () => {
    await server.close();
  });

  const snapshot = async (): Promise<StatusSnapshot> => JSON.parse((await httpRequest(server.url, '/status.json')).text) as StatusSnapshot;

  it('shows connections by transport, rates, resumes and the busiest channels', async () => {
    const busy = 'status/busy';
    const sse = new CountingSse(server.url, `channel=${busy}`);
    const ws = new CountingWs(server.url, [busy]);
    const mqtt = new CountingMqtt(server.url, [busy]);
    clients.push(sse, ws, mqtt);
    await Promise.all([sse.ready, ws.ready, mqtt.ready]);
    const start = JSON.parse((await httpRequest(server.url, `/v1/poll?channel=${busy}&timeout=0`)).text) as { cursor: string };
    const held = httpRequest(server.url, `/v1/poll?channel=status/quiet&cursor=${encodeURIComponent(start.cursor)}&timeout=30`);
    await eventually(async () => metricValue(await scrapeMetrics(server.url), 'edgepush_poll_waiters') === 1, 'the poll to be held');

    const during = await snapshot();
    expect(during.connections).toEqual({ ws: 1, sse: 1, poll: 1, mqtt: 1 });
    expect(during.source).toEqual({ kind: 'embedded', reachable: null, lag: null });

    for (let i = 0; i < 6; i++) await publish(server.url, [{ channel: busy, data: { i } }]);
    await publish(server.url, [{ channel: 'status/other', data: 1 }]);
    await Promise.all([sse, ws, mqtt].map((client) => client.until(() => client.messages.length === 6, 'six messages')));
    // A resume from the rings: a WebSocket subscribe with the cursor taken before the burst.
    const resumed = new CountingWs(server.url, [busy], { cursor: start.cursor });
    clients.push(resumed);
    await resumed.until(() => resumed.messages.length === 6, 'the six missed messages');

    // Snapshots are shared for half a second: wait for the next one.
    let after = during;
    await eventually(async () => (after = await snapshot()).time !== during.time, 'a new snapshot');
    expect(after.interval).toBeCloseTo((after.time - during.time) / 1000, 6);
    expect(after.connections).toEqual({ ws: 2, sse: 1, poll: 1, mqtt: 1 });
    expect(after.busiestChannels[0]).toEqual({ channel: busy, rate: expect.any(Number), subscribers: 4 });
    expect(after.busiestChannels.map((c) => c.channel)).toEqual([busy, 'status/other']);
    expect(after.busiestChannels[0]!.rate).toBeCloseTo(6 / after.interval, 6);
    expect(after.rates.deliveries).toBeCloseTo(18 / after.interval, 6);
    expect(after.rates.messages).toBeCloseTo(7 / after.interval, 6);
    expect(after.rates.published).toBeCloseTo(7 / after.interval, 6);
    expect(after.rates.resumes.ring).toBeCloseTo(1 / after.interval, 6);
    expect(after.rates.writtenBytes.sse).toBeGreaterThan(0);
    expect(after.channels.active).toBeGreaterThanOrEqual(1);

    await publish(server.url, [{ channel: 'status/quiet', data: 1 }]);
    await held;
  });

});

describe('StatusSampler', () => {
  it('samples at most every half second, however many pages ask, with rates over the time between samples', () => {
    const clock = { now: 0 };
    const engine = new ChannelEngine({ epoch: 'test', partitions: 1, ring: { maxCount: 100, maxBytes: 1e6, maxAgeMs: 60_000 }, maxIdleChannels: 100, maxIdleBytes: 1e8 });
    const source = new EmbeddedLog('test');
    const resumer = new Resumer(engine);
    const sampler = new StatusSampler(engine, source, resumer, createMetrics(engine, source, resumer), { slowest: () => [] }, () => clock.now);
    const send = (offset: number, channel: string): void => engine.dispatchRecord(0, offset, [{ channel, payload: payloadFromValue(offset), ts: 0 }]);
    for (let offset = 0; offset < 5; offset++) send(offset, 'a');
    clock.now = 1000;
    const first = sampler.snapshot();
    expect([first.interval, first.rates.messages, first.rates.records]).toEqual([1, 5, 5]);
    expect(first.busiestChannels).toEqual([{ channel: 'a', rate: 5, subscribers: 0 }]);
    send(5, 'b');
    clock.now = 1400;
    expect(sampler.snapshot()).toBe(first);
    send(6, 'b');
    clock.now = 1500;
    const second = sampler.snapshot();
    expect([second.interval, second.rates.messages]).toEqual([0.5, 4]);
    expect(second.busiestChannels).toEqual([{ channel: 'b', rate: 4, subscribers: 0 }]);
  });
});

describe('slowest consumers', () => {
  /** A connection as the registry sees it, with an outbox of `buffered` bytes. */
  const connection = (sessionId: string, buffered: number): ControllableConnection => ({
    sessionId,
    user: sessionId === 'c' ? 'carol' : undefined,
    transport: 'ws',
    connectedAt: 1000,
    bufferedAmount: buffered,
    session: { channelCount: 2 } as Session,
    serverSubscribe: () => {},
    serverUnsubscribe: () => {},
    serverDisconnect: () => {},
  });

  it('lists the connections with the fullest outboxes, fullest first, leaving out those that keep up', () => {
    const registry = new ConnectionRegistry();
    for (const [id, buffered] of [['a', 10], ['b', 0], ['c', 5000], ['d', 700], ['e', 3]] as const) registry.add(connection(id, buffered));
    expect(registry.slowest(3)).toEqual([
      { session: 'c', transport: 'ws', user: 'carol', bufferedBytes: 5000, channels: 2, connectedAt: 1000 },
      { session: 'd', transport: 'ws', user: null, bufferedBytes: 700, channels: 2, connectedAt: 1000 },
      { session: 'a', transport: 'ws', user: null, bufferedBytes: 10, channels: 2, connectedAt: 1000 },
    ]);
    expect(registry.slowest(10).map((c) => c.session)).toEqual(['c', 'd', 'a', 'e']);
  });
});
