/**
 * Helpers for integration tests against the real broker (test/kafka/broker.mjs): a plain kafkajs
 * client to create topics and produce records the way any backend would (not through edgepush),
 * a reader to check what edgepush wrote into Kafka, and small probes of a running edgepush.
 */
import { Kafka, Partitioners, logLevel, type Message, type PartitionerArgs } from 'kafkajs';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { kafkaAvailability, startKafka, type KafkaBroker } from '../kafka/broker.mjs';
import { KafkaSource } from '../../src/kafka/kafka-source.js';
import type { ServerOptions } from '../../src/config.js';
import type { RunningServer } from '../../src/start.js';
import { PollTestClient } from './poll-client.js';
import { startTestServer } from './server.js';
import { SseTestClient } from './sse-client.js';
import type { OpenOptions, ReceivedMessage, TestClient } from './test-client.js';
import { WsTestClient } from './ws-client.js';

export const kafkaAvail = kafkaAvailability();
/** The first run downloads ~45 MB of jars per version from Maven Central. */
export const BROKER_START_TIMEOUT_MS = 10 * 60_000;

/** A describe title that says why the suite was skipped, so a skip is never silent. */
export function kafkaSuiteTitle(name: string): string {
  return kafkaAvail.ok ? name : `${name} — SKIPPED: ${kafkaAvail.reason}`;
}

export { startKafka, type KafkaBroker };

export function plainKafka(broker: KafkaBroker, clientId = 'plain-test-client'): Kafka {
  return new Kafka({ clientId, brokers: [broker.bootstrap], logLevel: logLevel.NOTHING, retry: { initialRetryTime: 100, retries: 8 } });
}

export async function createTopics(kafka: Kafka, topics: Array<{ topic: string; numPartitions?: number }>): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: topics.map((t) => ({ topic: t.topic, numPartitions: t.numPartitions ?? 1 })), waitForLeaders: true });
    // Leaders are elected, but a loaded broker may still answer "not the leader" to a list-offsets
    // for a moment (which edgepush sends at start, without retrying): wait until it answers.
    for (const { topic } of topics) {
      const deadline = Date.now() + 15_000;
      for (;;) {
        try {
          await admin.fetchTopicOffsets(topic);
          break;
        } catch (error) {
          if (Date.now() > deadline) throw error;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
    }
  } finally {
    await admin.disconnect();
  }
}

/** The partition a keyed record lands on with the default (Java-compatible, murmur2) partitioner. */
export function partitionFor(topic: string, key: string, partitions: number): number {
  const partitionMetadata = Array.from({ length: partitions }, (_, partitionId) => ({ partitionId, leader: 1, replicas: [1], isr: [1] }));
  return Partitioners.DefaultPartitioner()({ topic, partitionMetadata, message: { key, value: null } } as unknown as PartitionerArgs);
}

export interface Produced {
  readonly partition: number;
  readonly offset: number;
}

/**
 * A plain producer: produces `messages` in one batch (acks=all) and says where each one landed.
 * Keyed messages go where the default partitioner puts them (set explicitly, so the offsets in the
 * reply can be matched to messages); unkeyed ones need an explicit partition.
 */
export class PlainProducer {
  readonly #producer;
  #connected: Promise<void> | undefined;

  constructor(private readonly kafka: Kafka) {
    // Idempotent, as a careful backend's: a send kafkajs retries around a broker restart must not
    // leave a duplicate record that the tests would then (rightly) see delivered twice.
    this.#producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, allowAutoTopicCreation: false, idempotent: true, maxInFlightRequests: 1 });
  }

  async send(topic: string, partitions: number, messages: Message[]): Promise<Produced[]> {
    this.#connected ??= this.#producer.connect();
    await this.#connected;
    const routed = messages.map((m) => {
      if (m.partition !== undefined) return m;
      if (typeof m.key !== 'string') throw new Error('give a string key or a partition');
      return { ...m, partition: partitionFor(topic, m.key, partitions) };
    });
    const results = await this.#producer.send({ topic, acks: -1, messages: routed });
    const next = new Map(results.map((r) => [r.partition, Number(r.baseOffset)]));
    return routed.map((m) => {
      const offset = next.get(m.partition as number) as number;
      next.set(m.partition as number, offset + 1);
      return { partition: m.partition as number, offset };
    });
  }

  async close(): Promise<void> {
    await this.#producer.disconnect();
  }
}

export interface KafkaRecord {
  partition: number;
  offset: number;
  key: string | null;
  value: string | null;
  headers: Record<string, string>;
}

/** Every record of `topic` (reads until the high watermarks taken at the call). */
export async function readTopic(kafka: Kafka, topic: string): Promise<KafkaRecord[]> {
  const admin = kafka.admin();
  await admin.connect();
  const offsets = await admin.fetchTopicOffsets(topic).finally(() => admin.disconnect());
  const remaining = new Map(offsets.filter((o) => Number(o.high) > Number(o.low)).map((o) => [o.partition, Number(o.high)]));
  const records: KafkaRecord[] = [];
  if (remaining.size === 0) return records;
  const consumer = kafka.consumer({ groupId: `read-${topic}-${Math.random().toString(36).slice(2)}` });
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`reading ${topic} took over 30 s (${records.length} records so far)`)), 30_000);
      consumer
        .run({
          autoCommit: false,
          eachMessage: async ({ partition, message }) => {
            const headers: Record<string, string> = {};
            for (const [name, value] of Object.entries(message.headers ?? {})) headers[name] = String(Array.isArray(value) ? value[0] : value);
            records.push({ partition, offset: Number(message.offset), key: message.key?.toString() ?? null, value: message.value?.toString() ?? null, headers });
            if (Number(message.offset) >= (remaining.get(partition) ?? 0) - 1) remaining.delete(partition);
            if (remaining.size === 0) {
              clearTimeout(timer);
              resolve();
            }
          },
        })
        .catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
  return records.sort((a, b) => a.partition - b.partition || a.offset - b.offset);
}

/** How many records `topic` holds (sum of high minus low watermarks). */
export async function recordCount(kafka: Kafka, topic: string): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    return offsets.reduce((sum, o) => sum + Number(o.high) - Number(o.low), 0);
  } finally {
    await admin.disconnect();
  }
}

export function kafkaSourceOf(server: RunningServer): KafkaSource {
  if (!(server.source instanceof KafkaSource)) throw new Error('the server does not run on Kafka');
  return server.source;
}

/** The value of `edgepush_bad_records_total` on GET /metrics. */
export async function badRecordsTotal(baseUrl: string): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('edgepush_bad_records_total '));
  if (!line) throw new Error('edgepush_bad_records_total missing from /metrics');
  return Number(line.split(' ')[1]);
}

export async function history(baseUrl: string, channel: string, limit = 50): Promise<{ messages: ReceivedMessage[]; cursor: string }> {
  const response = await fetch(`${baseUrl}/v1/history?channel=${encodeURIComponent(channel)}&limit=${limit}`);
  if (response.status !== 200) throw new Error(`history answered ${response.status}: ${await response.text()}`);
  return (await response.json()) as { messages: ReceivedMessage[]; cursor: string };
}

/**
 * Waits until `condition` holds, checking it again every `intervalMs` (for state only reachable by
 * asking the server, such as its history). A failure bound, not a way to wait for time to pass.
 */
export async function eventually(condition: () => Promise<boolean>, what: string, timeoutMs = 30_000, intervalMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** Waits until the server's history of `channel` ends with the message `id`: it consumed that far. */
export function consumedUpTo(baseUrl: string, channel: string, id: string): Promise<void> {
  return eventually(async () => (await history(baseUrl, channel, 1)).messages.at(-1)?.id === id, `${channel} to reach ${id}`);
}

/**
 * The offsets a cursor covers, per partition (-1: nothing seen), from the format documented in
 * docs/protocol.md (`<epoch>.<part>_<part>`, base 36; `~item` for a split record seen in part).
 * Clients must not do this; tests do it to check that a cursor moved past skipped records.
 */
export function cursorOffsets(cursor: string): { epoch: string; offsets: number[]; items: (number | undefined)[] } {
  const dot = cursor.indexOf('.');
  const parts = cursor.slice(dot + 1).split('_');
  return {
    epoch: cursor.slice(0, dot),
    offsets: parts.map((part) => (part === '' ? -1 : parseInt(part.split('~')[0] as string, 36))),
    items: parts.map((part) => (part.includes('~') ? parseInt(part.split('~')[1] as string, 36) : undefined)),
  };
}

/** Ids of the messages a client received, in order. */
export function idsOf(messages: readonly ReceivedMessage[]): string[] {
  return messages.map((m) => m.id);
}

export type Transport = 'sse' | 'ws' | 'poll';
export const TRANSPORTS: readonly Transport[] = ['sse', 'ws', 'poll'];

/**
 * What a test started (edgepush servers, clients, plain producers). `cleanup()` (afterEach) drops
 * the clients and starts closing the rest without waiting: closing edgepush waits for the Kafka
 * consumer's fetch in flight (up to kafkajs's 5 s maxWaitTime), and the next test uses topics of its
 * own. `settle()` (afterAll, before the broker stops) waits for all of it.
 */
export class Resources {
  readonly #servers: RunningServer[] = [];
  readonly #clients: TestClient[] = [];
  readonly #closers: Array<() => Promise<void>> = [];
  readonly #closing: Promise<unknown>[] = [];

  async server(overrides: Partial<ServerOptions>): Promise<RunningServer> {
    const server = await startTestServer(overrides);
    this.#servers.push(server);
    return server;
  }

  open(transport: Transport, baseUrl: string, channels: string[], options: OpenOptions = {}): TestClient {
    const client = transport === 'sse' ? new SseTestClient(baseUrl, channels, options) : transport === 'ws' ? new WsTestClient(baseUrl, channels, options) : new PollTestClient(baseUrl, channels, options);
    this.#clients.push(client);
    return client;
  }

  producer(kafka: Kafka): PlainProducer {
    const producer = new PlainProducer(kafka);
    this.#closers.push(() => producer.close());
    return producer;
  }

  cleanup(): void {
    for (const client of this.#clients.splice(0)) client.drop();
    this.#closing.push(Promise.allSettled(this.#servers.splice(0).map((server) => server.close())));
    this.#closing.push(Promise.allSettled(this.#closers.splice(0).map((close) => close())));
  }

  async settle(): Promise<void> {
    this.cleanup();
    await Promise.allSettled(this.#closing.splice(0));
  }
}

/**
 * The hooks of a suite that runs against a broker of its own: started once for the describe block
 * (`started` receives it and a plain client), the test's servers and clients cleaned up after each
 * test, and everything settled before the broker stops. Call it inside the describe block.
 */
export function useKafkaBroker(version: string, res: Resources, started: (broker: KafkaBroker, kafka: Kafka) => void): void {
  let broker: KafkaBroker | undefined;
  beforeAll(async () => {
    broker = await startKafka({ version });
    started(broker, plainKafka(broker));
  }, BROKER_START_TIMEOUT_MS);
  afterEach(() => res.cleanup());
  afterAll(async () => {
    await res.settle();
    await broker?.stop();
  }, 60_000);
}
