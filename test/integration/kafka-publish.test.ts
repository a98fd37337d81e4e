// Publishing into a real Kafka broker (docs/kafka.md, "Publishing into Kafka"): POST /v1/publish
// and the WebSocket publish op produce to publishTopic, keyed by the channel, with JSON values; the
// ids in the reply are the Kafka positions subscribers see; retries with the same idempotency key
// publish once. What went into Kafka is read back by offset with a plain client, not with edgepush.
import { describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/start.js';
import {
  Resources,
  createTopics,
  idsOf,
  kafkaAvail,
  kafkaSuiteTitle,
  partitionOf,
  readTopic,
  recordCount,
  useKafkaBroker,
  type KafkaBroker,
  type PlainKafka,
} from '../helpers/kafka.js';
import { publish } from '../helpers/server.js';
import type { WsTestClient } from '../helpers/ws-client.js';
import { KAFKA_VERSIONS } from '../kafka/broker.mjs';

async function post(baseUrl: string, body: unknown, idempotencyKey?: string): Promise<{ status: number; body: { ids?: string[]; error?: { code: string } } }> {
  const response = await fetch(`${baseUrl}/v1/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(idempotencyKey ? { 'idempotency-key': idempotencyKey } : {}) },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as { ids?: string[] } };
}

describe.skipIf(!kafkaAvail.ok)(kafkaSuiteTitle(`publishing into Kafka ${KAFKA_VERSIONS.latest}`), () => {
  let broker: KafkaBroker;
  let kafka: PlainKafka;
  const res = new Resources();
  let topicCount = 0;

  /** A fresh 3-partition topic and an edgepush publishing to it (the second topic, keyed routing). */
  async function setup(): Promise<{ server: RunningServer; topic: string }> {
    const topic = `jobs-${++topicCount}`;
    await createTopics(kafka, [
      { topic: `${topic}-other`, numPartitions: 1 },
      { topic, numPartitions: 3 },
    ]);
    const server = await res.server({ kafka: { brokers: [broker.bootstrap], topics: [`${topic}-other`, topic], publishTopic: topic } });
    return { server, topic };
  }

  useKafkaBroker(KAFKA_VERSIONS.latest, res, (started, client) => {
    broker = started;
    kafka = client;
  });

  it('POST /v1/publish produces to publishTopic keyed by channel; subscribers see the ids of the reply', async () => {
    const { server, topic } = await setup();
    const channels = ['jobs/7f3a', 'jobs/b2c4', 'jobs/0d1e'];
    const sse = res.open('sse', server.url, channels);
    const ws = res.open('ws', server.url, channels);
    await Promise.all([sse.ready, ws.ready]);

    const messages = [
      { channel: 'jobs/7f3a', data: { step: 1, of: 3, message: 'queued' } },
      { channel: 'jobs/b2c4', data: 'plain string' },
      { channel: 'jobs/7f3a', data: { step: 2, of: 3, message: 'résumé ✓' } },
      { channel: 'jobs/0d1e', data: [1, 2, 3] },
      { channel: 'jobs/7f3a', data: { step: 3, of: 3, message: 'done' } },
    ];
    const ids = await publish(server.url, messages);
    const single = await publish(server.url, [{ channel: 'jobs/b2c4', data: null }]);
    const all = [...messages, { channel: 'jobs/b2c4', data: null }];
    const allIds = [...ids, ...single];

    // The ids are Kafka positions: index of the partition (the first topic holds index 0) and offset.
    const records = await readTopic(kafka, topic);
    expect(records).toHaveLength(all.length);
    const byId = new Map(records.map((r) => [`${r.partition + 1}-${r.offset}`, r]));
    all.forEach((message, i) => {
      const record = byId.get(allIds[i]!);
      expect(record, `record for ${allIds[i]}`).toBeDefined();
      expect(record!.key).toBe(message.channel);
      expect(JSON.parse(record!.value!)).toEqual(message.data);
      expect(record!.headers['content-type']).toBe('application/json');
      // The partition a Java client would choose for the key: one channel stays on one partition.
      expect(record!.partition).toBe(partitionOf(message.channel, 3));
    });

    for (const client of [sse, ws]) {
      await client.waitFor(() => client.received.length >= all.length, `${all.length} messages`);
      for (const channel of channels) {
        const expected = all.flatMap((m, i) => (m.channel === channel ? [{ id: allIds[i], data: m.data }] : []));
        expect(client.received.filter((m) => m.channel === channel).map((m) => ({ id: m.id, data: m.data }))).toEqual(expected);
      }
      expect(client.received).toHaveLength(all.length);
    }
  });

  it('an Idempotency-Key retried (after the reply, and while the first is in flight) publishes once with the same ids', async () => {
    const { server, topic } = await setup();
    const body = { messages: [{ channel: 'orders/1', data: { qty: 5 } }, { channel: 'orders/2', data: { qty: 7 } }] };
    const first = await post(server.url, body, 'key-after-reply');
    expect(first.status).toBe(201);
    const retry = await post(server.url, body, 'key-after-reply');
    expect(retry).toEqual(first);

    const concurrent = await Promise.all([1, 2, 3].map(() => post(server.url, { channel: 'orders/3', data: 'once' }, 'key-in-flight')));
    expect(concurrent.map((r) => r.status)).toEqual([201, 201, 201]);
    expect(new Set(concurrent.map((r) => JSON.stringify(r.body.ids))).size).toBe(1);

    // Another key is another publish.
    const other = await post(server.url, body, 'another-key');
    expect(other.body.ids).not.toEqual(first.body.ids);

    expect(await recordCount(kafka, topic)).toBe(2 + 1 + 2);
    const records = await readTopic(kafka, topic);
    expect(records.filter((r) => r.key === 'orders/3').map((r) => JSON.parse(r.value!))).toEqual(['once']);
  });

  it('the WebSocket publish op retried with the same id is acknowledged with the same ids and produces one record', async () => {
    const { server, topic } = await setup();
    const subscriber = res.open('sse', server.url, ['chat/room-1']);
    await subscriber.ready;
    const ws = res.open('ws', server.url, []) as WsTestClient;
    await ws.ready;

    const op = { op: 'publish', channel: 'chat/room-1', data: { text: 'hello' }, id: 'client-op-42' };
    const firstAck = ws.nextOp('ack');
    ws.send(op);
    const ack1 = await firstAck;
    const secondAck = ws.nextOp('ack');
    ws.send(op); // the client did not see the ack (say) and sends the op again
    const ack2 = await secondAck;
    expect(ack1).toMatchObject({ op: 'ack', id: 'client-op-42' });
    expect(ack2).toEqual(ack1);

    await subscriber.waitFor(() => subscriber.received.length >= 1, 'the published message');
    expect(idsOf(subscriber.received)).toEqual(ack1['ids']);
    expect(await recordCount(kafka, topic)).toBe(1);
    const [record] = await readTopic(kafka, topic);
    expect(record).toMatchObject({ key: 'chat/room-1', value: JSON.stringify({ text: 'hello' }) });
    expect(subscriber.received).toHaveLength(1);
  });
});
