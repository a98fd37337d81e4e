// Resume from Kafka itself (docs/kafka.md, "Resume from Kafka"): a cursor older than the channel
// rings is served by reading the log back (deep resume), on every transport; what Kafka no longer
// holds, or a range over deepResumeMaxRecords, is named in a reset notice; and a new edgepush node
// on the same cluster and topics (same epoch) resumes an old cursor exactly.
import { describe, expect, it } from 'vitest';
import type { ServerOptions } from '../../src/config.js';
import {
  Resources,
  TRANSPORTS,
  consumedUpTo,
  createTopics,
  cursorOffsets,
  deleteRecordsBefore,
  eventually,
  history,
  idsOf,
  kafkaAvail,
  kafkaSourceOf,
  kafkaSuiteTitle,
  listConsumerGroups,
  metricValue,
  useKafkaBroker,
  type KafkaBroker,
  type PlainKafka,
  type Produced,
  type Transport,
} from '../helpers/kafka.js';
import type { TestClient } from '../helpers/test-client.js';
import { KAFKA_VERSIONS } from '../kafka/broker.mjs';

const RING = 5;
/** Transports on which messages read back from Kafka reach the client (see the note below). */
const idOf = (at: Produced): string => `${at.partition}-${at.offset}`;

describe.skipIf(!kafkaAvail.ok)(kafkaSuiteTitle(`resume from Kafka ${KAFKA_VERSIONS.latest}`), () => {
  let broker: KafkaBroker;
  let kafka: PlainKafka;
  const res = new Resources();
  let topics = 0;

  /** A fresh topic (2 partitions, keyed routing) and the options of an edgepush reading it. */
  async function topicWithOptions(kafkaExtra: Record<string, unknown> = {}, extra: Partial<ServerOptions> = {}): Promise<{ topic: string; options: Partial<ServerOptions> }> {
    const topic = `resume-${++topics}`;
    await createTopics(kafka, [{ topic, numPartitions: 2 }]);
    return { topic, options: { historySize: RING, heartbeatInterval: 0.2, ...extra, kafka: { brokers: [broker.bootstrap], topics: [topic], ...kafkaExtra } } };
  }

  /** Subscribes, takes the starting cursor and disconnects: a client going away for a while. */
  async function cursorThenLeave(transport: Transport, baseUrl: string, channel: string): Promise<string> {
    const client = res.open(transport, baseUrl, [channel]);
    await client.ready;
    const cursor = client.cursor as string;
    expect(cursor).toMatch(/^[0-9a-z]+\./);
    client.drop();
    return cursor;
  }

  /** `count` messages on `channel`, with records for another channel mixed in (other partitions too). */
  async function produceOn(topic: string, channel: string, count: number, first = 0): Promise<Array<{ id: string; data: unknown }>> {
    const messages = Array.from({ length: count }, (_, i) => [
      { key: channel, value: JSON.stringify({ n: first + i }) },
      { key: `noise/${i % 7}`, value: JSON.stringify({ noise: i }) },
    ]).flat();
    const placed = await res.producer(kafka).send(topic, 2, messages);
    return placed.flatMap((at, i) => (i % 2 === 0 ? [{ id: idOf(at), data: { n: first + i / 2 } }] : []));
  }

  const got = (client: TestClient): Array<{ id: string; data: unknown }> => client.received.map((m) => ({ id: m.id, data: m.data }));

  // Kafka's default group.initial.rebalance.delay.ms (the harness's broker uses 0): a resume that
  // joined a consumer group would wait 3 s for it.
  useKafkaBroker(
    KAFKA_VERSIONS.latest,
    res,
    (started, client) => {
      broker = started;
      kafka = client;
    },
    { 'group.initial.rebalance.delay.ms': '3000' },
  );

  it('a deep resume reads Kafka without any consumer group: the broker lists the same groups before and after', async () => {
    const { topic, options } = await topicWithOptions();
    const server = await res.server(options);
    const channel = 'groupless/a';
    const cursor = await cursorThenLeave('ws', server.url, channel);
    const sent = await produceOn(topic, channel, 100);
    await consumedUpTo(server.url, channel, sent.at(-1)!.id);
    const before = await listConsumerGroups(broker.bootstrap);

    const back = res.open('ws', server.url, [channel], { cursor });
    await back.waitFor(() => back.received.length >= 100, '100 messages read back');
    expect(got(back)).toEqual(sent);
    expect(back.resets).toEqual([]);
    expect(await listConsumerGroups(broker.bootstrap)).toEqual(before);
    expect(before.filter((group) => group.startsWith('edgepush'))).toEqual([]);
    // Counted: the records read back for the resume (the channel's 100 and the noise around them).
    expect(await metricValue(server.url, 'edgepush_kafka_records_read_back_total')).toBeGreaterThanOrEqual(100);
  });

  for (const transport of TRANSPORTS) {
    it(`${transport}: a cursor 200 messages behind a ring of ${RING} gets all 200 from Kafka, in order, once, without a reset`, async () => {
      const { topic, options } = await topicWithOptions();
      const server = await res.server(options);
      const channel = `deep/${transport}`;
      const cursor = await cursorThenLeave(transport, server.url, channel);

      const sent = await produceOn(topic, channel, 200);
      await consumedUpTo(server.url, channel, sent.at(-1)!.id);
      expect((await history(server.url, channel)).messages).toHaveLength(RING);

      const back = res.open(transport, server.url, [channel], { cursor });
      await back.waitFor(() => back.received.length >= 200, '200 messages');
      expect(got(back)).toEqual(sent);
      expect(back.resets).toEqual([]);
      // Live continues right after the replay.
      const more = await produceOn(topic, channel, 3, 200);
      await back.waitFor(() => back.received.length >= 203, 'three live messages');
      expect(got(back)).toEqual([...sent, ...more]);
      expect(back.resets).toEqual([]);
    });
  }

  for (const transport of TRANSPORTS) {
    it(`${transport}: a deep resume while the channel gets 5x the ring per read from Kafka loses nothing and resets nothing`, async () => {
      const { topic, options } = await topicWithOptions();
      const server = await res.server(options);
      const channel = `busy/${transport}`;
      const cursor = await cursorThenLeave(transport, server.url, channel);
      const sent = await produceOn(topic, channel, 50);
      await consumedUpTo(server.url, channel, sent.at(-1)!.id);

      // Every range read from Kafka first waits for a burst of 5x the ring on the channel to be
      // produced and taken by the node: the rings move on while the resume reads.
      const source = kafkaSourceOf(server);
      const readRange = source.readRange.bind(source);
      const bursts: Array<Array<{ id: string; data: unknown }>> = [];
      source.readRange = async (partition, after, upTo) => {
        if (bursts.length < 3) {
          const burst = await produceOn(topic, channel, 5 * RING, 50 + bursts.length * 5 * RING);
          bursts.push(burst);
          await consumedUpTo(server.url, channel, burst.at(-1)!.id);
        }
        return readRange(partition, after, upTo);
      };

      const back = res.open(transport, server.url, [channel], { cursor });
      const expected = (): Array<{ id: string; data: unknown }> => [...sent, ...bursts.flat()];
      await back.waitFor(() => bursts.length > 0 && back.received.length >= expected().length, 'everything produced before and during the resume');
      expect(got(back)).toEqual(expected());
      expect(back.resets).toEqual([]);
    });
  }

  /**
   * `rounds` messages on each of `count` channels under `prefix` (both partitions), with records of
   * channels the pattern does not match in between; and a last message on `${prefix}/last`.
   */
  async function produceUnder(topic: string, prefix: string, count: number, rounds: number): Promise<Array<{ id: string; channel: string; data: unknown }>> {
    const messages: Array<{ key: string; value: string }> = [];
    for (let r = 0; r < rounds; r++) {
      for (let c = 0; c < count; c++) {
        messages.push({ key: `${prefix}/c${c}`, value: JSON.stringify({ c, r }) });
        messages.push({ key: `${prefix}/c${c}/deeper`, value: JSON.stringify({ no: true }) });
      }
    }
    messages.push({ key: `${prefix}/last`, value: JSON.stringify({ last: true }) });
    const placed = await res.producer(kafka).send(topic, 2, messages);
    lastPlaced = placed;
    return placed.flatMap((at, i) => (messages[i]!.key.endsWith('/deeper') ? [] : [{ id: idOf(at), channel: messages[i]!.key, data: JSON.parse(messages[i]!.value) as unknown }]));
  }
  let lastPlaced: Produced[] = [];

  /**
   * The node has taken every record of the last produceUnder. (Not by one channel's history: with a
   * tiny idle LRU, the channel holding the last record of one partition may be dropped by the
   * records of the other.)
   */
  async function consumedAll(baseUrl: string): Promise<void> {
    const ends = [-1, -1];
    for (const at of lastPlaced) ends[at.partition] = Math.max(ends[at.partition]!, at.offset);
    await eventually(async () => {
      const { offsets } = cursorOffsets((await history(baseUrl, 'any')).cursor);
      return ends.every((end, p) => (offsets[p] ?? -1) >= end);
    }, `the node to take offsets ${ends.join(', ')}`);
  }

  /** Per channel, in order: a pattern's messages come in log order per partition, not across them. */
  const byChannel = (messages: ReadonlyArray<{ id: string; channel: string; data: unknown }>): Record<string, string[]> => {
    const out: Record<string, string[]> = {};
    for (const m of messages) (out[m.channel] ??= []).push(m.id);
    return out;
  };

  for (const transport of TRANSPORTS) {
    it(`${transport}: a pattern cursor behind the rings, over channels the idle LRU dropped, gets every matching message from Kafka once, without a reset`, async () => {
      // Rings of 5 and room for 2 idle channels: most of the 9 channels are forgotten by the node.
      const { topic, options } = await topicWithOptions({}, { maxIdleChannels: 2 });
      const server = await res.server(options);
      const prefix = `pat/${transport}`;
      const cursor = await cursorThenLeave(transport, server.url, `${prefix}/+`);
      const sent = await produceUnder(topic, prefix, 8, 20);
      await consumedAll(server.url);

      const back = res.open(transport, server.url, [`${prefix}/+`], { cursor });
      await back.waitFor(() => back.received.length >= sent.length, `${sent.length} messages`);
      const received = back.received.map((m) => ({ id: m.id, channel: m.channel, data: m.data }));
      expect(byChannel(received)).toEqual(byChannel(sent));
      expect(new Set(received.map((m) => m.id)).size).toBe(sent.length);
      expect(back.resets).toEqual([]);
      // Live continues on the pattern.
      const more = await produceUnder(topic, prefix, 2, 1);
      await back.waitFor(() => back.received.length >= sent.length + more.length, 'the live messages');
      expect(byChannel(back.received.slice(sent.length).map((m) => ({ id: m.id, channel: m.channel, data: m.data })))).toEqual(byChannel(more));
    });
  }

  it('a pattern cursor taken on one node resumes exactly on a second node that started after it was taken', async () => {
    const { topic, options } = await topicWithOptions({ readBack: 0 }, { historySize: 100 });
    const first = await res.server(options);
    const early = await Promise.all(TRANSPORTS.map(async (t) => {
      const client = res.open(t, first.url, [`node-pat/${t}/#`]);
      await client.ready;
      const sent = await produceUnder(topic, `node-pat/${t}`, 3, 3);
      await client.waitFor(() => client.received.length >= sent.length + 3 * 3, 'the first messages, the deeper ones too');
      const cursor = client.cursor as string;
      client.drop();
      return cursor;
    }));
    const late = await Promise.all(TRANSPORTS.map((t) => produceUnder(topic, `node-pat/${t}`, 4, 5)));
    const second = await res.server(options);
    await kafkaSourceOf(second).caughtUp;
    for (const [i, transport] of TRANSPORTS.entries()) {
      const back = res.open(transport, second.url, [`node-pat/${transport}/#`], { cursor: early[i]! });
      const expected = late[i]!;
      // `#` takes the parent's children and grandchildren: the deeper records count too.
      await back.waitFor(() => back.received.filter((m) => !m.channel.endsWith('/deeper')).length >= expected.length, `${expected.length} messages`);
      const received = back.received.filter((m) => !m.channel.endsWith('/deeper')).map((m) => ({ id: m.id, channel: m.channel, data: m.data }));
      expect(byChannel(received)).toEqual(byChannel(expected));
      expect(back.received.filter((m) => m.channel.endsWith('/deeper'))).toHaveLength(4 * 5);
      expect(back.resets).toEqual([]);
    }
  });

  it('records deleted by retention: a reset naming from/to, then everything still held', async () => {
    const { topic, options } = await topicWithOptions();
    const server = await res.server(options);
    const channel = 'retention/a';
    const cursors = await Promise.all(TRANSPORTS.map((t) => cursorThenLeave(t, server.url, channel)));
    const sent = await produceOn(topic, channel, 50);
    await consumedUpTo(server.url, channel, sent.at(-1)!.id);

    // Retention removes the first 20 messages of the channel (and whatever came before them).
    const [partition, firstKept] = sent[20]!.id.split('-').map(Number) as [number, number];
    await deleteRecordsBefore(kafka, topic, partition, firstKept);

    for (const [i, transport] of TRANSPORTS.entries()) {
      const cursor = cursors[i]!;
      const back = res.open(transport, server.url, [channel], { cursor });
      await back.waitFor(() => back.received.length >= 30 && back.resets.length >= 1, `${transport}: a reset and the 30 messages still held`);
      expect(back.resets).toHaveLength(1);
      const reset = back.resets[0]!;
      expect(reset).toMatchObject({ reason: 'cursor_expired', channel, from: cursor });
      expect(cursorOffsets(reset.to!).offsets[partition]).toBe(firstKept - 1);
      expect(got(back)).toEqual(sent.slice(20));
    }
  });

  it('a gap over deepResumeMaxRecords: a reset, then what the ring holds', async () => {
    const { topic, options } = await topicWithOptions({ deepResumeMaxRecords: 50 });
    const server = await res.server(options);
    const channel = 'too-far/a';
    const cursors = await Promise.all(TRANSPORTS.map((t) => cursorThenLeave(t, server.url, channel)));
    const sent = await produceOn(topic, channel, 200);
    await consumedUpTo(server.url, channel, sent.at(-1)!.id);

    const [partition, firstOffset] = sent.at(-RING)!.id.split('-').map(Number) as [number, number];
    for (const [i, transport] of TRANSPORTS.entries()) {
      const back = res.open(transport, server.url, [channel], { cursor: cursors[i]! });
      await back.waitFor(() => back.received.length >= RING && back.resets.length >= 1, `${transport}: a reset and the ring`);
      expect(back.resets).toHaveLength(1);
      expect(back.resets[0]).toMatchObject({ reason: 'cursor_expired', channel, from: cursors[i] });
      expect(got(back)).toEqual(sent.slice(-RING));
      // The reset's `to` is where the delivered messages start.
      expect(cursorOffsets(back.resets[0]!.to!).offsets[partition]).toBe(firstOffset - 1);
    }
  });

  for (const { readBack, transports } of [
    { readBack: undefined, transports: TRANSPORTS },
    { readBack: 0, transports: TRANSPORTS },
  ]) {
    const how = readBack === undefined ? 'from the rings it read back at start' : 'by deep resume (readBack 0)';
    it(`a new node on the same cluster and topics resumes old cursors exactly, ${how}`, async () => {
      const { topic, options } = await topicWithOptions(readBack === undefined ? {} : { readBack }, { historySize: 100 });
      const first = await res.server(options);
      const channels = Object.fromEntries(transports.map((t) => [t, `node/${t}`])) as Record<Transport, string>;
      const live = transports.map((t) => res.open(t, first.url, [channels[t]]));
      await Promise.all(live.map((c) => c.ready));
      const early = await Promise.all(transports.map((t) => produceOn(topic, channels[t], 10)));
      for (const [i, client] of live.entries()) {
        await client.waitFor(() => client.received.length >= 10, '10 messages');
        expect(got(client)).toEqual(early[i]);
      }
      const cursors = live.map((c) => c.cursor as string);
      for (const client of live) client.drop();
      await first.close();

      // Produced while no node runs.
      const late = await Promise.all(transports.map((t) => produceOn(topic, channels[t], 20, 10)));
      const second = await res.server(options);
      await kafkaSourceOf(second).caughtUp;
      expect(cursorOffsets((await history(second.url, 'any')).cursor).epoch).toBe(cursorOffsets(cursors[0]!).epoch);

      for (const [i, transport] of transports.entries()) {
        const back = res.open(transport, second.url, [channels[transport]], { cursor: cursors[i]! });
        await back.waitFor(() => back.received.length >= 20, '20 messages');
        expect(got(back)).toEqual(late[i]);
        expect(back.resets).toEqual([]);
        expect(new Set(idsOf(back.received)).size).toBe(20);
      }
    });
  }
});
