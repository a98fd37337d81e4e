// Runs the real-Kafka harness (test/kafka/broker.mjs) against the newest 4.1 and, as a smoke
// test, 3.9, and doubles as the record of what @platformatic/kafka can do against each broker.
import { randomBytes } from 'node:crypto';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import {
  Admin,
  Consumer,
  ListOffsetTimestamps,
  MessagesStreamFallbackModes,
  MessagesStreamModes,
  ProduceAcks,
  Producer,
  compatibilityPartitioner,
  stringDeserializers,
  stringSerializers,
  type ConsumeOptions,
} from '@platformatic/kafka';
import { KAFKA_VERSIONS, kafkaAvailability, startKafka, type KafkaBroker } from '../kafka/broker.mjs';
import { clientOptions, createTopics, partitionOf } from '../helpers/kafka-backend.js';

const avail = kafkaAvailability();
// The first run downloads ~45 MB of jars from Maven Central per version.
const START_TIMEOUT_MS = 10 * 60_000;
const CONSUME_TIMEOUT_MS = 45_000;

function keyed(n: number, prefix: string): Array<{ key: string; value: string }> {
  return Array.from({ length: n }, (_, i) => ({ key: `${prefix}-key-${i}`, value: `${prefix}-value-${i}` }));
}

async function withAdmin<T>(broker: KafkaBroker, use: (admin: Admin) => Promise<T>): Promise<T> {
  const admin = new Admin(clientOptions(broker.bootstrap, 'kafka-broker-test-admin'));
  try {
    return await use(admin);
  } finally {
    await admin.close();
  }
}

async function createTopic(broker: KafkaBroker, topic: string, numPartitions: number): Promise<void> {
  const created = await createTopics(broker.bootstrap, [{ topic, numPartitions }]);
  expect(created.map((t) => ({ name: t.name, partitions: t.partitions }))).toEqual([{ name: topic, partitions: numPartitions }]);
}

/**
 * Produces `messages` in one send, keyed, with the client choosing partitions as Java's client
 * does. Idempotent with acks=all: a send the client retries just after a broker restart (the first
 * attempt may have been written already) must not leave a duplicate record in the topic.
 */
async function produce(broker: KafkaBroker, clientId: string, topic: string, messages: Array<{ key: string; value: string }>): Promise<void> {
  const producer = new Producer({ ...clientOptions(broker.bootstrap, clientId), idempotent: true, serializers: stringSerializers, partitioner: compatibilityPartitioner });
  try {
    const result = await producer.send({ messages: messages.map((m) => ({ topic, ...m })), acks: ProduceAcks.ALL });
    // One base offset per partition written to.
    expect(result.offsets?.length).toBeGreaterThan(0);
    expect(result.offsets?.every((o) => o.topic === topic && o.offset >= 0n)).toBe(true);
  } finally {
    await producer.close();
  }
}

type Received = { key: string; value: string; partition: number; offset: bigint };

/**
 * Consumes with a consumer group until `count` messages arrived, then closes the stream (which
 * commits what was consumed) and the consumer. Messages arriving before the close count too, so a
 * duplicate fails the length checks.
 */
async function consume(broker: KafkaBroker, groupId: string, options: ConsumeOptions<string, string, string, string>, count: number): Promise<Received[]> {
  const consumer = new Consumer({ ...clientOptions(broker.bootstrap, `kafka-broker-test-${groupId}`), groupId, deserializers: stringDeserializers });
  const received: Received[] = [];
  let timer: NodeJS.Timeout | undefined;
  try {
    const stream = await consumer.consume(options);
    try {
      await new Promise<void>((resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`only ${received.length}/${count} messages arrived within ${CONSUME_TIMEOUT_MS} ms`)), CONSUME_TIMEOUT_MS);
        stream.on('error', reject);
        stream.on('data', (message) => {
          received.push({ key: message.key, value: message.value, partition: message.partition, offset: message.offset });
          if (received.length >= count) resolve();
        });
      });
    } finally {
      await stream.close();
    }
  } finally {
    clearTimeout(timer);
    await consumer.close();
  }
  return received;
}

/** From the group's committed offsets, or from the beginning for a group without any. */
function consumeFromBeginning(broker: KafkaBroker, topic: string, count: number, groupId: string): Promise<Received[]> {
  return consume(broker, groupId, { topics: [topic], mode: MessagesStreamModes.COMMITTED, fallbackMode: MessagesStreamFallbackModes.EARLIEST }, count);
}

function expectSameMessages(received: Received[], sent: Array<{ key: string; value: string }>): void {
  const byKey = new Map(received.map((m) => [m.key, m.value]));
  expect(received).toHaveLength(sent.length);
  expect(byKey.size).toBe(sent.length);
  for (const m of sent) expect(byKey.get(m.key)).toBe(m.value);
}

/** The earliest and latest offset of each partition of `topic`. */
async function listOffsets(broker: KafkaBroker, topic: string, partitions: number): Promise<{ earliest: bigint[]; latest: bigint[] }> {
  return withAdmin(broker, async (admin) => {
    const at = async (timestamp: bigint): Promise<bigint[]> => {
      const [listed] = await admin.listOffsets({ topics: [{ name: topic, partitions: Array.from({ length: partitions }, (_, partitionIndex) => ({ partitionIndex, timestamp })) }] });
      return [...(listed?.partitions ?? [])].sort((a, b) => a.partitionIndex - b.partitionIndex).map((p) => p.offset);
    };
    return { earliest: await at(ListOffsetTimestamps.EARLIEST), latest: await at(ListOffsetTimestamps.LATEST) };
  });
}

async function groupIds(broker: KafkaBroker): Promise<string[]> {
  return withAdmin(broker, async (admin) => [...(await admin.listGroups()).keys()].sort());
}

const title = avail.ok
  ? 'real Kafka broker (test/kafka/broker.mjs) with @platformatic/kafka'
  : `real Kafka broker (test/kafka/broker.mjs) with @platformatic/kafka — SKIPPED: ${avail.reason}`;

describe.skipIf(!avail.ok)(title, () => {
  const suites = [
    { version: KAFKA_VERSIONS.latest, full: true },
    { version: KAFKA_VERSIONS.previous, full: false },
  ];

  for (const { version, full } of suites) {
    describe(`Kafka ${version}${full ? '' : ' (smoke)'}`, () => {
      let broker: KafkaBroker;

      beforeAll(async () => {
        broker = await startKafka({ version });
      }, START_TIMEOUT_MS);

      afterAll(async () => {
        await broker?.stop();
      }, 60_000);

      it('reports the requested version on a loopback address', async () => {
        expect(broker.version).toBe(version);
        expect(broker.bootstrap).toMatch(/^127\.0\.0\.1:\d+$/);
        expect(broker.running).toBe(true);
        const metadata = await withAdmin(broker, (admin) => admin.metadata({ topics: [] }));
        expect([...metadata.brokers].map(([nodeId, b]) => ({ nodeId, host: b.host, port: b.port }))).toEqual([{ nodeId: 1, host: '127.0.0.1', port: broker.port }]);
      });

      it('round-trips 100 keyed messages through a 3-partition topic, each key on the partition Java picks', async () => {
        const topic = 'roundtrip';
        await createTopic(broker, topic, 3);
        const sent = keyed(100, 'rt');
        await produce(broker, 'kafka-broker-test-roundtrip', topic, sent);

        const received = await consumeFromBeginning(broker, topic, sent.length, 'roundtrip-group');
        expectSameMessages(received, sent);
        // Keys are hashed, so 100 distinct keys must land on all 3 partitions, and each one on the
        // partition Kafka's Java client would choose for it.
        expect(new Set(received.map((m) => m.partition))).toEqual(new Set([0, 1, 2]));
        for (const m of received) expect(m.partition, m.key).toBe(partitionOf(m.key, 3));

        const offsets = await listOffsets(broker, topic, 3);
        expect(offsets.earliest).toEqual([0n, 0n, 0n]);
        expect(offsets.latest.reduce((sum, high) => sum + high, 0n)).toBe(100n);
      });

      it('a consumer stream starts at the offsets it is given (manual mode)', async () => {
        const topic = 'manual';
        await createTopic(broker, topic, 1);
        const sent = keyed(10, 'manual');
        await produce(broker, 'kafka-broker-test-manual', topic, sent);

        const received = await consume(broker, 'manual-group', { topics: [topic], mode: MessagesStreamModes.MANUAL, offsets: [{ topic, partition: 0, offset: 5n }] }, 5);
        expect(received.map((m) => m.offset)).toEqual([5n, 6n, 7n, 8n, 9n]);
        expect(received.map((m) => m.key)).toEqual(sent.slice(5).map((m) => m.key));
      });

      it('Consumer.fetch reads from a given offset without joining a consumer group', async () => {
        const topic = 'fetch';
        await createTopic(broker, topic, 1);
        const sent = keyed(10, 'fetch');
        await produce(broker, 'kafka-broker-test-fetch', topic, sent);
        const groupsBefore = await groupIds(broker);

        const groupId = `never-joined-${randomBytes(4).toString('hex')}`;
        const consumer = new Consumer({ ...clientOptions(broker.bootstrap, 'kafka-broker-test-fetch'), groupId });
        try {
          const metadata = (await consumer.metadata({ topics: [topic] })).topics.get(topic)!;
          const response = await consumer.fetch({
            node: metadata.partitions[0]!.leader,
            topics: [{ topicId: metadata.id, partitions: [{ partition: 0, fetchOffset: 5n, currentLeaderEpoch: -1, lastFetchedEpoch: -1, partitionMaxBytes: 1 << 20 }] }],
            maxWaitTime: 100,
          });
          const [partition] = response.responses.flatMap((t) => t.partitions);
          expect(partition).toMatchObject({ partitionIndex: 0, errorCode: 0, highWatermark: 10n, logStartOffset: 0n });
          // Whole batches come back, so the records before the offset asked for are dropped here.
          const records = (partition?.records ?? []).flatMap((batch) => batch.records.map((r) => ({ offset: batch.firstOffset + BigInt(r.offsetDelta), key: r.key?.toString(), value: r.value?.toString() })));
          expect(records.filter((r) => r.offset >= 5n)).toEqual(sent.slice(5).map((m, i) => ({ offset: BigInt(5 + i), ...m })));
        } finally {
          await consumer.close();
        }
        expect(await groupIds(broker)).toEqual(groupsBefore);
        expect(groupsBefore).not.toContain(groupId);
      });

      if (full) {
        it('deleteRecords moves the earliest offset of a partition, as retention does', async () => {
          const topic = 'delete-records';
          await createTopic(broker, topic, 1);
          await produce(broker, 'kafka-broker-test-delete', topic, keyed(10, 'delete'));
          const deleted = await withAdmin(broker, (admin) => admin.deleteRecords({ topics: [{ name: topic, partitions: [{ partition: 0, offset: 4n }] }] }));
          expect(deleted).toEqual([{ name: topic, partitions: [{ partition: 0, lowWatermark: 4n }] }]);
          expect(await listOffsets(broker, topic, 1)).toEqual({ earliest: [4n], latest: [10n] });
        });

        it('keeps its address and data across kill() and start()', async () => {
          const topic = 'durable';
          await createTopic(broker, topic, 3);
          const before = keyed(30, 'before');
          await produce(broker, 'kafka-broker-test-before-restart', topic, before);

          const { bootstrap, pid } = broker;
          await broker.kill();
          expect(broker.running).toBe(false);
          expect(broker.pid).toBeNull();

          await broker.start();
          expect(broker.running).toBe(true);
          expect(broker.bootstrap).toBe(bootstrap);
          expect(broker.pid).not.toBe(pid);

          // Fresh clients: the point is that a reconnecting service finds the same broker and log.
          const more = keyed(10, 'after');
          await produce(broker, 'kafka-broker-test-after-restart', topic, more);
          const received = await consumeFromBeginning(broker, topic, before.length + more.length, 'durable-group');
          expectSameMessages(received, [...before, ...more]);
        });

        it('restart() keeps committed consumer-group offsets', async () => {
          const topic = 'committed';
          await createTopic(broker, topic, 1);
          const first = keyed(5, 'first');
          await produce(broker, 'kafka-broker-test-committed', topic, first);
          expectSameMessages(await consumeFromBeginning(broker, topic, 5, 'committed-group'), first);

          await broker.restart();

          const second = keyed(5, 'second');
          await produce(broker, 'kafka-broker-test-committed-after', topic, second);
          // Same group: it must resume after the offsets committed before the restart.
          expectSameMessages(await consumeFromBeginning(broker, topic, 5, 'committed-group'), second);
          expect(await groupIds(broker)).toContain('committed-group');
        });
      }
    });
  }
});
