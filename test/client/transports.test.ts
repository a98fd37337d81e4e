/**
 * The client library (src/client, imported as TypeScript) in Node, on each transport forced with
 * `transports: [name]`, through a TCP proxy that cuts every connection on demand: every message
 * exactly once and in order across disconnects, deltas rebuilt exactly, resets surfaced.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EdgePush, type EdgePushOptions, type TransportName } from '../../src/client/index.js';
import type { RunningServer } from '../../src/start.js';
import { ClientWatch } from '../helpers/client-watch.js';
import { publish, startTestServer } from '../helpers/server.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { waitForChange } from '../helpers/wait-for-change.js';

const TRANSPORTS: TransportName[] = ['ws', 'sse', 'poll'];

/** Short thresholds: configuration for a fast test, not timing assertions. */
function open(url: string, transport: TransportName, extra: EdgePushOptions = {}): { client: EdgePush; watch: ClientWatch } {
  const client = new EdgePush(url, {
    transports: [transport],
    heartbeatInterval: 200,
    backoff: { initialDelay: 20, maxDelay: 200 },
    rememberTransport: false,
    ...extra,
  });
  return { client, watch: new ClientWatch(client) };
}

/** A GTFS-realtime-like record: most fields stay put between updates. */
function vehicle(id: number, step: number): Record<string, unknown> {
  return {
    id: `veh-${id}`,
    vehicle: { id: `V${4000 + id}`, label: `Bus ${100 + id}`, licensePlate: `EP-${id}0-XK` },
    trip: { tripId: `T-${id}-0815`, routeId: `R${id % 7}`, startTime: '08:15:00', startDate: '20261121' },
    position: { latitude: 52.37 + step / 10_000, longitude: 4.89 - step / 20_000, bearing: (step * 7) % 360, speed: 8.5 },
    currentStopSequence: 12 + Math.floor(step / 20),
    occupancyStatus: step % 40 < 20 ? 'MANY_SEATS_AVAILABLE' : 'FEW_SEATS_AVAILABLE',
    ...(step % 25 < 3 ? { alert: 'détour ↺ via Prinsengracht' } : {}),
    timestamp: 1_700_000_000 + step,
  };
}

describe('client library in Node', () => {
  let server: RunningServer;
  let proxy: TcpProxy;
  beforeAll(async () => {
    server = await startTestServer({ heartbeatInterval: 0.2, reconnectDelay: 0.02, historySize: 1000 });
    proxy = await TcpProxy.start(server.url);
  });
  afterAll(async () => {
    await proxy?.close();
    await server?.close();
  });

  for (const transport of TRANSPORTS) {
    it(`${transport}: every message exactly once, in order, across forced disconnects`, async () => {
      const channels = [`seq/${transport}/a`, `seq/${transport}/b`];
      const { client, watch } = open(proxy.url, transport);
      for (const channel of channels) client.subscribe(channel, watch.handler);
      await watch.waitFor(() => watch.connections >= 1, 'the first connection');
      let sent = 0;
      const batch = (size: number): { channel: string; data: number }[] =>
        Array.from({ length: size }, () => ({ channel: channels[sent % 2] as string, data: sent++ }));
      const rounds = 4;
      for (let round = 0; round < rounds; round++) {
        await publish(server.url, batch(20));
        await watch.waitFor(() => watch.messages.length >= sent, `round ${round}: ${sent} messages`);
        if (transport === 'poll') await waitForChange(proxy, () => proxy.awaitingReply > 0, () => `round ${round}: no poll held`, 10_000);
        const accepted = proxy.accepted;
        proxy.cutAll();
        // Published while the client is down: it must get these on resume.
        await publish(server.url, batch(10));
        await watch.waitFor(() => proxy.accepted > accepted && watch.messages.length >= sent, `round ${round}: resumed, ${sent} messages`);
      }
      // A last message per channel: anything duplicated would have arrived before it.
      await publish(server.url, batch(2));
      await watch.waitFor(() => watch.messages.length >= sent, 'the last messages');
      client.close();
      const numbers = (channel: string): unknown[] => watch.dataOf(channel);
      expect(numbers(channels[0]!)).toEqual(Array.from({ length: sent / 2 }, (_, i) => i * 2));
      expect(numbers(channels[1]!)).toEqual(Array.from({ length: sent / 2 }, (_, i) => i * 2 + 1));
      expect(watch.resets).toEqual([]);
      expect(watch.connections).toBeGreaterThanOrEqual(2);
      expect(client.cursor).toMatch(/^[0-9a-z]+\./);
    });

    it(`${transport}: a pattern and a channel it matches, with deltas, each handler gets its messages once, across disconnects`, async () => {
      const prefix = `fleet/${transport}`;
      const { client, watch } = open(proxy.url, transport);
      const one: unknown[] = [];
      client.subscribe(`${prefix}/+`, { delta: 'json-patch' }, watch.handler);
      client.subscribe(`${prefix}/3`, { delta: 'json-patch' }, (message) => one.push(message.data));
      await watch.waitFor(() => watch.connections >= 1, 'the first connection');
      const expected: { channel: string; data: unknown }[] = [];
      for (let round = 0; round < 4; round++) {
        const messages = Array.from({ length: 20 }, (_, i) => ({ channel: `${prefix}/${i % 4}`, data: vehicle(i % 4, round * 20 + i) }));
        // Not matched by the pattern (one level too deep).
        messages.push({ channel: `${prefix}/3/extra`, data: vehicle(9, round) });
        expected.push(...messages.filter((m) => !m.channel.endsWith('/extra')));
        await publish(server.url, messages);
        await watch.waitFor(() => watch.messages.length >= expected.length, `round ${round}: ${expected.length} messages`);
        if (round === 1) proxy.cutAll();
      }
      client.close();
      for (const vehicleChannel of [0, 1, 2, 3].map((n) => `${prefix}/${n}`)) {
        expect(watch.dataOf(vehicleChannel), vehicleChannel).toEqual(expected.filter((m) => m.channel === vehicleChannel).map((m) => m.data));
      }
      expect(watch.messages).toHaveLength(expected.length);
      expect(one).toEqual(expected.filter((m) => m.channel === `${prefix}/3`).map((m) => m.data));
      expect(watch.resets).toEqual([]);
    });

    it(`${transport}: snapshot 'latest' starts a pattern with the newest message of each channel, then live`, async () => {
      const prefix = `board/${transport}`;
      await publish(server.url, [
        { channel: `${prefix}/AAPL`, data: 1 },
        { channel: `${prefix}/MSFT`, data: 2 },
        { channel: `${prefix}/AAPL`, data: 3 },
      ]);
      const { client, watch } = open(proxy.url, transport);
      client.subscribe(`${prefix}/+`, { snapshot: 'latest' }, watch.handler);
      await watch.waitFor(() => watch.messages.length >= 2, 'the snapshot');
      await publish(server.url, [{ channel: `${prefix}/MSFT`, data: 4 }]);
      await watch.waitFor(() => watch.messages.length >= 3, 'a live message');
      client.close();
      expect(watch.messages.map((m) => [m.channel, m.data, m.snapshot ?? false])).toEqual([
        [`${prefix}/MSFT`, 2, true],
        [`${prefix}/AAPL`, 3, true],
        [`${prefix}/MSFT`, 4, false],
      ]);
    });

    it(`${transport}: maxRate elides, and every message says how many it stands for; the final value arrives`, async () => {
      const channel = `ticker/${transport}`;
      const { client, watch } = open(proxy.url, transport);
      client.subscribe(channel, { maxRate: 200 }, watch.handler);
      await watch.waitFor(() => watch.connections >= 1, 'the first connection');
      let published = 0;
      for (let round = 0; round < 5; round++) {
        await publish(server.url, Array.from({ length: 40 }, () => ({ channel, data: published++ })));
        if (round === 2) proxy.cutAll();
      }
      await watch.waitFor(() => watch.dataOf(channel).at(-1) === published - 1, 'the final value');
      client.close();
      const sum = watch.messages.reduce((total, m) => total + 1 + (m.elided ?? 0), 0);
      // Across a cut: the resume may repeat the latest value it had, never lose the final one.
      expect(sum).toBeGreaterThanOrEqual(published);
      expect(watch.messages.length).toBeLessThan(published / 4);
      expect(watch.messages.every((m) => typeof m.elided === 'number')).toBe(true);
    });

    it(`${transport}: maxRate with vcdiff deltas rebuilds every sent value exactly, computed once per class`, async () => {
      const channel = `elide-delta/${transport}`;
      const { client, watch } = open(proxy.url, transport);
      client.subscribe(channel, { maxRate: 100, delta: 'vcdiff' }, watch.handler);
      await watch.waitFor(() => watch.connections >= 1, 'the first connection');
      const values: unknown[] = [];
      for (let round = 0; round < 6; round++) {
        const batch = Array.from({ length: 10 }, (_, i) => vehicle(3, round * 10 + i));
        values.push(...batch);
        await publish(server.url, batch.map((data) => ({ channel, data })));
        await watch.waitFor(() => JSON.stringify(watch.dataOf(channel).at(-1)) === JSON.stringify(values.at(-1)), `round ${round}: the latest value`);
      }
      client.close();
      // Every value handed over is one that was published, in order, and the last one is the final value.
      const indexes = watch.dataOf(channel).map((data) => values.findIndex((value) => JSON.stringify(value) === JSON.stringify(data)));
      expect(indexes.every((index) => index >= 0)).toBe(true);
      expect(indexes).toEqual([...indexes].sort((a, b) => a - b));
      expect(indexes.at(-1)).toBe(values.length - 1);
    });

    for (const delta of ['json-patch', 'vcdiff'] as const) {
      it(`${transport} with ${delta}: full messages rebuilt exactly, across a disconnect, in fewer bytes`, async () => {
        const channel = `veh/${transport}/${delta}`;
        const withDeltas = open(proxy.url, transport);
        const plain = open(proxy.url, transport);
        withDeltas.client.subscribe(channel, { delta }, withDeltas.watch.handler);
        plain.client.subscribe(channel, plain.watch.handler);
        await withDeltas.watch.waitFor(() => withDeltas.watch.connections >= 1, 'connected');
        await plain.watch.waitFor(() => plain.watch.connections >= 1, 'connected');
        const expected: unknown[] = [];
        for (let round = 0; round < 4; round++) {
          const messages = Array.from({ length: 25 }, () => ({ channel, data: vehicle(7, expected.length) })).map((m, i) => {
            m.data = vehicle(7, expected.length + i);
            return m;
          });
          expected.push(...messages.map((m) => m.data));
          await publish(server.url, messages);
          for (const { watch } of [withDeltas, plain]) await watch.waitFor(() => watch.messages.length >= expected.length, `${expected.length} vehicles`);
          if (round === 1) proxy.cutAll();
        }
        expect(withDeltas.watch.dataOf(channel)).toEqual(expected);
        expect(plain.watch.dataOf(channel)).toEqual(expected);
        // Deltas were really used: the same messages cost fewer bytes (json-patch saves less than
        // vcdiff on these records: five small ops against a few hundred bytes).
        expect(withDeltas.client.bytesReceived).toBeLessThan(plain.client.bytesReceived * (delta === 'vcdiff' ? 0.6 : 0.95));
        // What the client says deltas saved makes up (roughly: framing and heartbeats differ) the difference.
        expect(plain.client.bytesSavedByDeltas).toBe(0);
        const asFull = withDeltas.client.bytesReceived + withDeltas.client.bytesSavedByDeltas;
        expect(asFull).toBeGreaterThan(plain.client.bytesReceived * 0.9);
        expect(asFull).toBeLessThan(plain.client.bytesReceived * 1.1);
        withDeltas.client.close();
        plain.client.close();
      });
    }
  }
});

describe('client library in Node: resets and errors', () => {
  let server: RunningServer;
  let other: RunningServer;
  let proxy: TcpProxy;
  beforeAll(async () => {
    server = await startTestServer({ heartbeatInterval: 0.2, reconnectDelay: 0.02, historySize: 5, maxChannelsPerSubscription: 2 });
    other = await startTestServer({ heartbeatInterval: 0.2 });
    proxy = await TcpProxy.start(server.url);
  });
  afterAll(async () => {
    await proxy?.close();
    await server?.close();
    await other?.close();
  });

  for (const transport of TRANSPORTS) {
    it(`${transport}: a resume past the channel's history surfaces a cursor_expired reset, then carries on`, async () => {
      const channel = `expire/${transport}`;
      const { client, watch } = open(proxy.url, transport);
      client.subscribe(channel, watch.handler);
      await watch.waitFor(() => watch.connections >= 1, 'connected');
      await publish(server.url, [{ channel, data: 0 }]);
      await watch.waitFor(() => watch.messages.length === 1, 'the first message');
      proxy.setDown(true);
      await publish(server.url, Array.from({ length: 20 }, (_, i) => ({ channel, data: i + 1 })));
      proxy.setDown(false);
      await watch.waitFor(() => watch.resets.length >= 1 && watch.dataOf(channel).at(-1) === 20, 'the reset and the held messages');
      expect(watch.resets[0]).toMatchObject({ channel, reason: 'cursor_expired' });
      // What the ring still held, after the reset, in order, nothing twice.
      expect(watch.dataOf(channel)).toEqual([0, 16, 17, 18, 19, 20]);
      client.close();
    });

    it(`${transport}: a cursor from another server's log surfaces an unknown_epoch reset`, async () => {
      const channel = `epoch/${transport}`;
      const foreign = (await (await fetch(`${other.url}/v1/poll?channel=x`)).json()) as { cursor: string };
      await publish(server.url, [{ channel, data: 'held' }]);
      const { client, watch } = open(proxy.url, transport, { cursor: foreign.cursor });
      client.subscribe(channel, watch.handler);
      await watch.waitFor(() => watch.resets.length >= 1 && watch.messages.length >= 1, 'the reset and the held message');
      expect(watch.resets[0]).toMatchObject({ channel, reason: 'unknown_epoch' });
      expect(watch.dataOf(channel)).toEqual(['held']);
      client.close();
    });
  }

  it.each(['sse', 'poll'] as const)('%s: an HTTP 4xx on subscribe stops the client with the error', async (transport) => {
    const { client, watch } = open(proxy.url, transport);
    for (const channel of ['many/1', 'many/2', 'many/3']) client.subscribe(channel, watch.handler);
    await watch.waitFor(() => client.state === 'closed', 'the client to stop');
    expect(watch.states.at(-1)?.error).toMatchObject({ code: 'too_many_channels', status: 400 });
  });

  it('ws: a subscription the server refuses is reported and the others carry on', async () => {
    const { client, watch } = open(proxy.url, 'ws');
    for (const channel of ['ws-many/1', 'ws-many/2', 'ws-many/3']) client.subscribe(channel, watch.handler);
    await watch.waitFor(() => watch.errors.length === 1, 'the refusal');
    expect(watch.errors[0]).toMatchObject({ code: 'too_many_channels' });
    await publish(server.url, [{ channel: 'ws-many/1', data: 1 }]);
    await watch.waitFor(() => watch.messages.length === 1, 'a message on a channel that was accepted');
    expect(client.state).toBe('connected');
    client.close();
  });

  it('publish retries a network failure with the same Idempotency-Key, and publishes once', async () => {
    const keys: (string | null)[] = [];
    let calls = 0;
    const flaky: typeof fetch = async (input, init) => {
      keys.push(new Headers(init?.headers).get('idempotency-key'));
      // The first attempt reaches the server but its reply is "lost".
      const response = await fetch(input, init);
      if (++calls === 1) throw new TypeError('fetch failed: connection reset');
      return response;
    };
    const { client, watch } = open(server.url, 'poll', { fetch: flaky, backoff: { initialDelay: 10, maxDelay: 20 } });
    const id = await client.publish('publish/once', { hello: 'world' });
    expect(keys).toHaveLength(2);
    expect(keys[0]).toBe(keys[1]);
    const history = (await (await fetch(`${server.url}/v1/history?channel=publish%2Fonce`)).json()) as { messages: { id: string }[] };
    expect(history.messages.map((m) => m.id)).toEqual([id]);
    expect(watch.errors).toEqual([]);
    client.close();
  });

  it('rejects a bad channel name where subscribe() is called', () => {
    const { client, watch } = open(server.url, 'poll');
    expect(() => client.subscribe('a//b', watch.handler)).toThrow(/levels must not be empty/);
    client.close();
  });
});
