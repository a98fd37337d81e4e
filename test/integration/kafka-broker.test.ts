// Runs the real-Kafka harness (test/kafka/broker.mjs) against the newest 4.1 and, as a smoke
// test, 3.9, and doubles as the record of what kafkajs 2.2.4 can do against each broker.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { Kafka, Partitioners, logLevel, type Consumer, type EachMessagePayload } from 'kafkajs';
import { KAFKA_VERSIONS, kafkaAvailability, startKafka, type KafkaBroker } from '../kafka/broker.mjs';

const avail = kafkaAvailability();
// The first run downloads ~45 MB of jars from Maven Central per version.
const START_TIMEOUT_MS = 10 * 60_000;
const CONSUME_TIMEOUT_MS = 45_000;

function client(broker: KafkaBroker, clientId: string): Kafka {
  return new Kafka({
    clientId,
    brokers: [broker.bootstrap],
    logLevel: logLevel.NOTHING,
    retry: { initialRetryTime: 100, retries: 8 },
  });
}

function keyed(n: number, prefix: string): Array<{ key: string; value: string }> {
  return Array.from({ length: n }, (_, i) => ({ key: `${prefix}-key-${i}`, value: `${prefix}-value-${i}` }));
}

async function createTopic(kafka: Kafka, topic: string, numPartitions: number): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const created = await admin.createTopics({ topics: [{ topic, numPartitions }], waitForLeaders: true });
    expect(created).toBe(true);
  } finally {
    await admin.disconnect();
  }
}

async function produce(kafka: Kafka, topic: string, messages: Array<{ key: string; value: string }>): Promise<void> {
  // Idempotent: a send retried by kafkajs just after a broker restart (the first attempt may have
  // been written already) must not leave a duplicate record in the topic.
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  try {
    const results = await producer.send({ topic, messages, acks: -1 });
    expect(results.every((r) => r.errorCode === 0)).toBe(true);
  } finally {
    await producer.disconnect();
  }
}

type Received = { key: string; value: string; partition: number; offset: string };

/**
 * Runs `consumer` until `count` messages arrived; `afterRun` lets a test act once the consumer is
 * running (kafkajs only accepts seek() after run()).
 */
async function collect(
  consumer: Consumer,
  count: number,
  afterRun: () => void = () => {},
): Promise<Received[]> {
  const received: Received[] = [];
  let timer: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      timer = setTimeout(
        () => reject(new Error(`only ${received.length}/${count} messages arrived within ${CONSUME_TIMEOUT_MS} ms`)),
        CONSUME_TIMEOUT_MS,
      );
      consumer
        .run({
          eachMessage: async ({ partition, message }: EachMessagePayload) => {
            received.push({
              key: message.key?.toString() ?? '',
              value: message.value?.toString() ?? '',
              partition,
              offset: message.offset,
            });
            if (received.length >= count) resolve();
          },
        })
        .then(afterRun, reject);
    });
  } finally {
    clearTimeout(timer);
    await consumer.disconnect();
  }
  return received;
}

async function consumeFromBeginning(kafka: Kafka, topic: string, count: number, groupId: string): Promise<Received[]> {
  const consumer = kafka.consumer({ groupId });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  return collect(consumer, count);
}

function expectSameMessages(received: Received[], sent: Array<{ key: string; value: string }>): void {
  const byKey = new Map(received.map((m) => [m.key, m.value]));
  expect(received).toHaveLength(sent.length);
  expect(byKey.size).toBe(sent.length);
  for (const m of sent) expect(byKey.get(m.key)).toBe(m.value);
}

const title = avail.ok
  ? 'real Kafka broker (test/kafka/broker.mjs) with kafkajs'
  : `real Kafka broker (test/kafka/broker.mjs) with kafkajs — SKIPPED: ${avail.reason}`;

describe.skipIf(!avail.ok)(title, () => {
  const suites = [
    { version: KAFKA_VERSIONS.latest, full: true },
    { version: KAFKA_VERSIONS.previous, full: false },
  ];

  for (const { version, full } of suites) {
    describe(`Kafka ${version}${full ? '' : ' (smoke)'}`, () => {
      let broker: KafkaBroker;
      let kafka: Kafka;

      beforeAll(async () => {
        broker = await startKafka({ version });
        kafka = client(broker, `kafka-broker-test-${version}`);
      }, START_TIMEOUT_MS);

      afterAll(async () => {
        await broker?.stop();
      }, 60_000);

      it('reports the requested version on a loopback address', async () => {
        expect(broker.version).toBe(version);
        expect(broker.bootstrap).toMatch(/^127\.0\.0\.1:\d+$/);
        expect(broker.running).toBe(true);
        const admin = kafka.admin();
        await admin.connect();
        try {
          const cluster = await admin.describeCluster();
          expect(cluster.brokers).toEqual([{ nodeId: 1, host: '127.0.0.1', port: broker.port }]);
        } finally {
          await admin.disconnect();
        }
      });

      it('round-trips 100 keyed messages through a 3-partition topic', async () => {
        const topic = 'roundtrip';
        await createTopic(kafka, topic, 3);
        const sent = keyed(100, 'rt');
        await produce(kafka, topic, sent);

        const received = await consumeFromBeginning(kafka, topic, sent.length, 'roundtrip-group');
        expectSameMessages(received, sent);
        // The default partitioner hashes keys, so 100 distinct keys must land on all 3 partitions,
        // and one key always on the same partition.
        expect(new Set(received.map((m) => m.partition))).toEqual(new Set([0, 1, 2]));

        const admin = kafka.admin();
        await admin.connect();
        try {
          const offsets = await admin.fetchTopicOffsets(topic);
          expect(offsets.reduce((sum, p) => sum + Number(p.high), 0)).toBe(100);
        } finally {
          await admin.disconnect();
        }
      });

      it('consumer.seek() fetches from a given offset', async () => {
        const topic = 'seek';
        await createTopic(kafka, topic, 1);
        const sent = keyed(10, 'seek');
        await produce(kafka, topic, sent);

        // Without committed offsets and without fromBeginning the consumer starts at the end, so
        // every message that arrives can only be there because of the seek.
        const consumer = kafka.consumer({ groupId: 'seek-group' });
        await consumer.connect();
        await consumer.subscribe({ topics: [topic], fromBeginning: false });
        const received = await collect(consumer, 5, () => consumer.seek({ topic, partition: 0, offset: '5' }));
        expect(received.map((m) => m.offset)).toEqual(['5', '6', '7', '8', '9']);
        expect(received.map((m) => m.key)).toEqual(sent.slice(5).map((m) => m.key));
      });

      if (full) {
        it('keeps its address and data across kill() and start()', async () => {
          const topic = 'durable';
          await createTopic(kafka, topic, 3);
          const before = keyed(30, 'before');
          await produce(kafka, topic, before);

          const { bootstrap, pid } = broker;
          await broker.kill();
          expect(broker.running).toBe(false);
          expect(broker.pid).toBeNull();

          await broker.start();
          expect(broker.running).toBe(true);
          expect(broker.bootstrap).toBe(bootstrap);
          expect(broker.pid).not.toBe(pid);

          // A fresh client: the point is that a reconnecting service finds the same broker and log.
          const after = client(broker, 'kafka-broker-test-after-restart');
          const more = keyed(10, 'after');
          await produce(after, topic, more);
          const received = await consumeFromBeginning(after, topic, before.length + more.length, 'durable-group');
          expectSameMessages(received, [...before, ...more]);
        });

        it('restart() keeps committed consumer-group offsets', async () => {
          const topic = 'committed';
          await createTopic(kafka, topic, 1);
          const first = keyed(5, 'first');
          await produce(kafka, topic, first);
          expectSameMessages(await consumeFromBeginning(kafka, topic, 5, 'committed-group'), first);

          await broker.restart();

          const second = keyed(5, 'second');
          const after = client(broker, 'kafka-broker-test-committed');
          await produce(after, topic, second);
          // Same group: it must resume after the offsets committed before the restart.
          expectSameMessages(await consumeFromBeginning(after, topic, 5, 'committed-group'), second);
        });
      }
    });
  }
});
