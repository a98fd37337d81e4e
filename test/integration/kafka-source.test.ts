// edgepush on a real Kafka broker (test/kafka/broker.mjs): records produced by a plain Kafka
// producer, as any backend would, reach SSE, WebSocket and long-poll clients through the routing
// rules of docs/kafka.md — market data by template, a vehicle feed split into one channel per
// vehicle, key / header / prefix routing — and records a rule cannot apply to are skipped and
// counted without stopping anything. A smoke test repeats the market-data round trip on Kafka 3.9.
import { describe, expect, it } from 'vitest';
import {
  Resources,
  TRANSPORTS,
  badRecordsTotal,
  createTopics,
  cursorOffsets,
  history,
  idsOf,
  kafkaAvail,
  kafkaSuiteTitle,
  plainKafka,
  useKafkaBroker,
  type KafkaBroker,
  type PlainKafka,
  type Produced,
} from '../helpers/kafka.js';
import { KAFKA_VERSIONS } from '../kafka/broker.mjs';
import { publish } from '../helpers/server.js';

const TICKERS = [
  { tickerSymbol: 'AAPL', countryCode: 'US', exchange: 'NASDAQ' },
  { tickerSymbol: 'MSFT', countryCode: 'US', exchange: 'NASDAQ' },
  { tickerSymbol: 'IBM', countryCode: 'US', exchange: 'NYSE' },
  // The same ticker on another exchange is another channel (and, keyed by ticker, the same partition).
  { tickerSymbol: 'AAPL', countryCode: 'DE', exchange: 'XETRA' },
  { tickerSymbol: 'SAP', countryCode: 'DE', exchange: 'XETRA' },
  { tickerSymbol: 'VOD', countryCode: 'GB', exchange: 'LSE' },
];
const MARKET_RULE = '{countryCode}/{exchange}/{tickerSymbol}';

/** `rounds` ticks of every ticker, keyed by ticker, each with a distinct price. */
function ticks(rounds: number, startRound = 0): Array<{ key: string; value: string; tick: Record<string, unknown> }> {
  const out = [];
  for (let round = startRound; round < startRound + rounds; round++) {
    for (const [i, t] of TICKERS.entries()) {
      const tick = { ...t, bidPrice: 100 + round + i / 100, askPrice: 100.5 + round + i / 100, seq: round };
      out.push({ key: t.tickerSymbol, value: JSON.stringify(tick), tick });
    }
  }
  return out;
}

const idOf = (at: Produced, item?: number): string => `${at.partition}-${at.offset}${item === undefined ? '' : `-${item}`}`;

/** A GTFS-realtime-like feed: one record holding every vehicle, each with ~2 KB of other fields. */
function vehicleFeed(vehicles: number, seq: number): { header: object; entity: object[] } {
  return {
    header: { gtfsRealtimeVersion: '2.0', incrementality: 'FULL_DATASET', timestamp: 1_700_000_000 + seq },
    entity: Array.from({ length: vehicles }, (_, i) => ({
      id: `entity-${i}`,
      vehicle: {
        trip: { tripId: `trip-${i}`, routeId: `route-${i % 12}`, directionId: i % 2, startDate: '20250101' },
        vehicle: { id: String(1001 + i), label: `Bus ${1001 + i}`, licensePlate: `AB-${i}-CD` },
        position: { latitude: positionOf(i, seq).lat, longitude: positionOf(i, seq).long, bearing: (i * 7) % 360, speed: 8.5 },
        currentStopSequence: i % 30,
        stopId: `stop-${i}`,
        currentStatus: 'IN_TRANSIT_TO',
        timestamp: 1_700_000_000 + seq,
        congestionLevel: 'RUNNING_SMOOTHLY',
        occupancyStatus: 'MANY_SEATS_AVAILABLE',
        extension: 'x'.repeat(1800),
      },
    })),
  };
}

function positionOf(vehicle: number, seq: number): { lat: number; long: number } {
  return { lat: 52.3 + vehicle / 1000 + seq / 100_000, long: 4.8 + vehicle / 2000 - seq / 100_000 };
}

describe.skipIf(!kafkaAvail.ok)(kafkaSuiteTitle(`edgepush consuming Kafka ${KAFKA_VERSIONS.latest}`), () => {
  let broker: KafkaBroker;
  let kafka: PlainKafka;
  const res = new Resources();

  useKafkaBroker(KAFKA_VERSIONS.latest, res, (started, client) => {
    broker = started;
    kafka = client;
  });

  it('market data: a client of US/NASDAQ/AAPL gets only those records, in order, with <partition>-<offset> ids, on every transport', async () => {
    await createTopics(kafka, [{ topic: 'prices', numPartitions: 3 }]);
    const server = await res.server({ kafka: { brokers: [broker.bootstrap], topics: [{ topic: 'prices', channel: MARKET_RULE }] } });
    const clients = TRANSPORTS.map((t) => res.open(t, server.url, ['US/NASDAQ/AAPL']));
    await Promise.all(clients.map((c) => c.ready));

    const producer = res.producer(kafka);
    const sent = ticks(30);
    const placed: Produced[] = [];
    // Three batches, as a feed would send them over time.
    for (let i = 0; i < sent.length; i += 60) placed.push(...(await producer.send('prices', 3, sent.slice(i, i + 60).map(({ key, value }) => ({ key, value })))));
    // A last AAPL tick, so that once it arrived everything before it on its partition has too.
    const last = ticks(1, 30)[0]!;
    placed.push(...(await producer.send('prices', 3, [{ key: last.key, value: last.value }])));
    sent.push(last);
    expect(new Set(placed.map((p) => p.partition)).size).toBeGreaterThan(1);

    const wanted = sent.flatMap((s, i) => (s.tick['countryCode'] === 'US' && s.tick['exchange'] === 'NASDAQ' && s.tick['tickerSymbol'] === 'AAPL' ? [{ tick: s.tick, id: idOf(placed[i]!) }] : []));
    expect(wanted).toHaveLength(31);
    for (const client of clients) {
      await client.waitFor(() => client.received.length >= wanted.length, `${wanted.length} AAPL ticks`);
      expect(client.received.map((m) => m.channel)).toEqual(wanted.map(() => 'US/NASDAQ/AAPL'));
      expect(client.received.map((m) => m.data)).toEqual(wanted.map((w) => w.tick));
      expect(idsOf(client.received)).toEqual(wanted.map((w) => w.id));
      expect(client.resets).toEqual([]);
    }
    // The other instruments went to their own channels (same rule), not to this one.
    const xetra = await history(server.url, 'DE/XETRA/AAPL', 100);
    expect(xetra.messages.map((m) => (m.data as { seq: number }).seq)).toEqual(Array.from({ length: 30 }, (_, i) => i));
  });

  it('split and transform: one record of 150 vehicles becomes 150 {id, lat, long} messages on vehicles/<id>', async () => {
    await createTopics(kafka, [{ topic: 'gtfs-vehicles', numPartitions: 2 }]);
    const server = await res.server({
      kafka: {
        brokers: [broker.bootstrap],
        topics: [{ topic: 'gtfs-vehicles', split: 'entity', channel: 'vehicles/{vehicle.vehicle.id}', fields: { id: 'vehicle.vehicle.id', lat: 'vehicle.position.latitude', long: 'vehicle.position.longitude' } }],
      },
    });
    const watched = ['vehicles/1001', 'vehicles/1077', 'vehicles/1150'];
    const sse = res.open('sse', server.url, watched);
    const ws = res.open('ws', server.url, watched);
    await Promise.all([sse.ready, ws.ready]);

    const producer = res.producer(kafka);
    const first = vehicleFeed(150, 1);
    expect(JSON.stringify(first).length).toBeGreaterThan(150 * 2000);
    const [at1] = await producer.send('gtfs-vehicles', 2, [{ key: 'feed', value: JSON.stringify(first) }]);
    const [at2] = await producer.send('gtfs-vehicles', 2, [{ key: 'feed', value: JSON.stringify(vehicleFeed(150, 2)) }]);

    const expectedFor = (vehicle: number): Array<{ id: string; data: unknown }> =>
      [at1!, at2!].map((at, k) => ({ id: idOf(at, vehicle), data: { id: String(1001 + vehicle), ...positionOf(vehicle, k + 1) } }));
    for (const client of [sse, ws]) {
      await client.waitFor(() => client.received.length >= 6, 'two updates of three vehicles');
      for (const channel of watched) {
        const vehicle = Number(channel.split('/')[1]) - 1001;
        expect(client.received.filter((m) => m.channel === channel).map((m) => ({ id: m.id, data: m.data }))).toEqual(expectedFor(vehicle));
      }
      expect(client.received).toHaveLength(6);
    }
    // Every vehicle has its own channel with its own two small messages.
    const histories = await Promise.all(Array.from({ length: 150 }, (_, i) => history(server.url, `vehicles/${1001 + i}`)));
    histories.forEach((h, i) => {
      expect(h.messages.map((m) => ({ id: m.id, data: m.data }))).toEqual(expectedFor(i));
      expect(h.messages.every((m) => m.channel === `vehicles/${1001 + i}`)).toBe(true);
    });
  });

  it('bad records are skipped and counted; records after them are delivered and cursors move past them', async () => {
    await createTopics(kafka, [
      { topic: 'bad-ticks', numPartitions: 1 },
      { topic: 'bad-feed', numPartitions: 1 },
    ]);
    const server = await res.server({
      heartbeatInterval: 0.1,
      kafka: {
        brokers: [broker.bootstrap],
        topics: [
          { topic: 'bad-ticks', channel: MARKET_RULE },
          { topic: 'bad-feed', split: 'entity', channel: 'vehicles/{vehicle.vehicle.id}', fields: { id: 'vehicle.vehicle.id', lat: 'vehicle.position.latitude' } },
        ],
      },
    });
    const client = res.open('sse', server.url, ['US/NASDAQ/AAPL', 'vehicles/7', 'vehicles/8']);
    await client.ready;
    const before = await badRecordsTotal(server.url);

    const producer = res.producer(kafka);
    const aapl = (seq: number): string => JSON.stringify({ ...TICKERS[0], bidPrice: 200 + seq, seq });
    const ticksAt = await producer.send('bad-ticks', 1, [
      { key: 'AAPL', value: aapl(1) },
      { key: 'AAPL', value: 'not JSON {' },
      { key: 'AAPL', value: JSON.stringify({ tickerSymbol: 'AAPL', countryCode: 'US', bidPrice: 1 }) }, // no exchange
      { key: 'AAPL', value: aapl(2) },
      { key: 'AAPL', value: '\u0000\u0001 binary garbage' }, // the newest record of the partition is a bad one
    ]);
    const vehicle = (id: string | undefined, lat: number): object => ({ vehicle: { ...(id ? { vehicle: { id } } : {}), position: { latitude: lat } } });
    const feedAt = await producer.send('bad-feed', 1, [
      { key: 'feed', value: JSON.stringify({ entity: [vehicle('7', 1.5), vehicle(undefined, 2.5), vehicle('8', 3.5)] }) },
      { key: 'feed', value: JSON.stringify({ entity: 'not an array' }) },
    ]);

    await client.waitFor(() => client.received.length >= 4, 'the four good messages');
    const got = (channel: string): unknown[] => client.received.filter((m) => m.channel === channel).map((m) => [m.id, m.data]);
    expect(got('US/NASDAQ/AAPL')).toEqual([
      [`0-${ticksAt[0]!.offset}`, JSON.parse(aapl(1))],
      [`0-${ticksAt[3]!.offset}`, JSON.parse(aapl(2))],
    ]);
    expect(got('vehicles/7')).toEqual([[`1-${feedAt[0]!.offset}-0`, { id: '7', lat: 1.5 }]]);
    // Items keep their index in the array, whatever was skipped before them.
    expect(got('vehicles/8')).toEqual([[`1-${feedAt[0]!.offset}-2`, { id: '8', lat: 3.5 }]]);
    // The client's cursor moves past the bad records at the end of both partitions (heartbeats carry it).
    await client.waitFor(() => {
      const offsets = client.cursor === undefined ? [] : cursorOffsets(client.cursor).offsets;
      return offsets[0] === ticksAt[4]!.offset && offsets[1] === feedAt[1]!.offset;
    }, 'a cursor past the bad records');
    // Non-JSON, missing template field, garbage, one split item without its field, split path not an array.
    expect(await badRecordsTotal(server.url)).toBe(before + 5);
    expect(client.resets).toEqual([]);
    expect(client.ended).toBeUndefined();
  });

  it('--kafka-topics shortcut: the record key names the channel; partition indexes run across the topics in order', async () => {
    await createTopics(kafka, [
      { topic: 'jobs-a', numPartitions: 2 },
      { topic: 'jobs-b', numPartitions: 1 },
    ]);
    const server = await res.server({ kafkaBrokers: broker.bootstrap, kafkaTopics: 'jobs-a,jobs-b' });
    const client = res.open('sse', server.url, ['jobs/7f3a', 'jobs/b1']);
    await client.ready;
    const producer = res.producer(kafka);
    const a = await producer.send('jobs-a', 2, [
      { key: 'jobs/7f3a', value: JSON.stringify({ step: 1, of: 2 }) },
      { key: 'jobs/7f3a', value: 'plain text, not JSON' },
    ]);
    const [b] = await producer.send('jobs-b', 1, [{ key: 'jobs/b1', value: JSON.stringify({ step: 2, of: 2 }) }]);
    await client.waitFor(() => client.received.length >= 3, 'three job messages');
    const byChannel = (channel: string): unknown[] => client.received.filter((m) => m.channel === channel).map((m) => [m.id, m.data]);
    expect(byChannel('jobs/7f3a')).toEqual([
      [idOf(a[0]!), { step: 1, of: 2 }],
      [idOf(a[1]!), 'plain text, not JSON'],
    ]);
    // jobs-a holds partition indexes 0 and 1, so jobs-b's partition 0 is index 2.
    expect(byChannel('jobs/b1')).toEqual([[`2-${b!.offset}`, { step: 2, of: 2 }]]);
  });

  it('channelHeader and prefix rules name channels from a header, or the key or a template with a prefix', async () => {
    await createTopics(kafka, [{ topic: 'alerts' }, { topic: 'quotes' }, { topic: 'fx' }]);
    const server = await res.server({
      kafka: {
        brokers: [broker.bootstrap],
        topics: [
          { topic: 'alerts', channelHeader: 'x-channel' },
          { topic: 'quotes', prefix: 'prices/' },
          { topic: 'fx', prefix: 'fx/', channel: '{base}/{quote}' },
        ],
      },
    });
    const before = await badRecordsTotal(server.url);
    const decoys = ['key-not-header', 'AAPL', 'EUR/USD'];
    const client = res.open('ws', server.url, ['alerts/eu', 'prices/AAPL', 'fx/EUR/USD', ...decoys]);
    await client.ready;
    const producer = res.producer(kafka);
    const [noHeader, alert] = await producer.send('alerts', 1, [
      { key: 'key-not-header', value: '{"level":"ignored"}' },
      { key: 'key-not-header', value: '{"level":"high"}', headers: { 'x-channel': 'alerts/eu' } },
    ]);
    const [quote] = await producer.send('quotes', 1, [{ key: 'AAPL', value: '{"bid":1}' }]);
    const [rate] = await producer.send('fx', 1, [{ key: 'EURUSD', value: '{"base":"EUR","quote":"USD","rate":1.08}' }]);
    await client.waitFor(() => client.received.length >= 3, 'three messages');
    expect(client.received.map((m) => [m.channel, m.id, m.data]).sort()).toEqual(
      [
        ['alerts/eu', `0-${alert!.offset}`, { level: 'high' }],
        ['prices/AAPL', `1-${quote!.offset}`, { bid: 1 }],
        ['fx/EUR/USD', `2-${rate!.offset}`, { base: 'EUR', quote: 'USD', rate: 1.08 }],
      ].sort(),
    );
    // The record without the header was skipped (and was before the delivered one on its partition).
    expect(noHeader!.offset).toBeLessThan(alert!.offset);
    expect(await badRecordsTotal(server.url)).toBe(before + 1);
    for (const decoy of decoys) expect((await history(server.url, decoy)).messages).toEqual([]);
  });
});

describe.skipIf(!kafkaAvail.ok)(kafkaSuiteTitle(`edgepush consuming Kafka ${KAFKA_VERSIONS.previous} (smoke)`), () => {
  let broker: KafkaBroker;
  const res = new Resources();

  useKafkaBroker(KAFKA_VERSIONS.previous, res, (started) => (broker = started));

  it('market data round trip: produce → route → SSE and WebSocket, and publish → Kafka → subscriber', async () => {
    const kafka = plainKafka(broker);
    await createTopics(kafka, [{ topic: 'prices', numPartitions: 3 }]);
    const server = await res.server({ kafka: { brokers: [broker.bootstrap], topics: [{ topic: 'prices', channel: MARKET_RULE }] } });
    const clients = [res.open('sse', server.url, ['US/NASDAQ/AAPL']), res.open('ws', server.url, ['US/NASDAQ/AAPL'])];
    await Promise.all(clients.map((c) => c.ready));
    const sent = ticks(5);
    const placed = await res.producer(kafka).send('prices', 3, sent.map(({ key, value }) => ({ key, value })));
    const wanted = sent.flatMap((s, i) => (s.tick['countryCode'] === 'US' && s.tick['tickerSymbol'] === 'AAPL' ? [{ id: idOf(placed[i]!), data: s.tick }] : []));
    for (const client of clients) {
      await client.waitFor(() => client.received.length >= 5, 'five AAPL ticks');
      expect(client.received.map((m) => ({ id: m.id, data: m.data }))).toEqual(wanted);
    }
    // Publishing goes through Kafka (an idempotent producer) and comes back by the same rule.
    const tick = { ...TICKERS[0], bidPrice: 1234.5, seq: 99 };
    const [id] = await publish(server.url, [{ channel: 'US/NASDAQ/AAPL', data: tick }]);
    expect(id).toMatch(/^[0-2]-\d+$/);
    for (const client of clients) {
      await client.waitFor(() => client.received.length >= 6, 'the published tick');
      expect(client.received[5]).toMatchObject({ id, data: tick });
    }
  });
});
