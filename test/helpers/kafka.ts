/**
 * Helpers for integration tests against the real broker (test/kafka/broker.mjs): plain
 * @platformatic/kafka clients to create topics and produce records the way any backend would (not
 * through edgepush), a reader to check what edgepush wrote into Kafka (no consumer group), and
 * small probes of a running edgepush.
 */
import { randomBytes } from 'node:crypto';
import { Consumer, IS_CONTROL, ListOffsetTimestamps, ProduceAcks, type Producer } from '@platformatic/kafka';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { kafkaAvailability, startKafka, type KafkaBroker } from '../kafka/broker.mjs';
import { KafkaSource } from '../../src/kafka/kafka-source.js';
import type { ServerOptions } from '../../src/config.js';
import type { RunningServer } from '../../src/start.js';
import { clientOptions, createTopics as createTopicsAt, offsetsOf, partitionOf, plainProducer, withAdmin, type TopicSpec } from './kafka-backend.js';
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

export { partitionOf, startKafka, type KafkaBroker };

/** Where a plain client connects and the client id it shows the broker; each helper opens its own clients. */
export interface PlainKafka {
  readonly bootstrap: string;
  readonly clientId: string;
}

export function plainKafka(broker: KafkaBroker, clientId = 'plain-test-client'): PlainKafka {
  return { bootstrap: broker.bootstrap, clientId };
}

export async function createTopics(kafka: PlainKafka, topics: readonly TopicSpec[]): Promise<void> {
  await createTopicsAt(kafka.bootstrap, topics);
}

/** The ids of the consumer groups the broker knows (a plain admin's ListGroups). */
export async function listConsumerGroups(bootstrap: string): Promise<string[]> {
  return withAdmin(bootstrap, 'list-groups', async (admin) => [...(await admin.listGroups()).keys()].sort());
}

export interface Produced {
  readonly partition: number;
  readonly offset: number;
}

export interface PlainMessage {
  key?: string;
  value: string;
  partition?: number;
  headers?: Record<string, string>;
}

/**
 * A plain producer: produces `messages` in one batch (idempotent, acks=all) and says where each one
 * landed. Keyed messages go where Kafka's Java client would put them (set explicitly, so the
 * offsets in the reply can be matched to messages); unkeyed ones need an explicit partition.
 */
export class PlainProducer {
  readonly #producer: Producer<string, string, string, string>;

  constructor(kafka: PlainKafka) {
    this.#producer = plainProducer(kafka.bootstrap, kafka.clientId);
  }

  async send(topic: string, partitions: number, messages: readonly PlainMessage[]): Promise<Produced[]> {
    const routed = messages.map((m) => {
      if (m.partition !== undefined) return { ...m, topic, partition: m.partition };
      if (m.key === undefined) throw new Error('give a key or a partition');
      return { ...m, topic, partition: partitionOf(m.key, partitions) };
    });
    const result = await this.#producer.send({ messages: routed, acks: ProduceAcks.ALL });
    return offsetsOf(routed, result.offsets ?? []).map((offset, i) => ({ partition: routed[i]!.partition, offset }));
  }

  async close(): Promise<void> {
    await this.#producer.close();
  }
}

export interface KafkaRecord {
  partition: number;
  offset: number;
  key: string | null;
  value: string | null;
  headers: Record<string, string>;
}

/** Per partition of `topic`, its first offset still held and the offset the next record will get. */
export async function watermarks(kafka: PlainKafka, topic: string): Promise<Array<{ low: number; high: number }>> {
  return withAdmin(kafka.bootstrap, kafka.clientId, async (admin) => {
    const metadata = await admin.metadata({ topics: [topic] });
    const partitions = metadata.topics.get(topic)?.partitionsCount ?? 0;
    const at = async (timestamp: bigint): Promise<number[]> => {
      const [listed] = await admin.listOffsets({ topics: [{ name: topic, partitions: Array.from({ length: partitions }, (_, partitionIndex) => ({ partitionIndex, timestamp })) }] });
      const offsets: number[] = [];
      for (const p of listed?.partitions ?? []) offsets[p.partitionIndex] = Number(p.offset);
      return offsets;
    };
    const [low, high] = [await at(ListOffsetTimestamps.EARLIEST), await at(ListOffsetTimestamps.LATEST)];
    return Array.from({ length: partitions }, (_, p) => ({ low: low[p] ?? 0, high: high[p] ?? 0 }));
  });
}

/**
 * Every record of `topic` (up to the high watermarks taken at the call), fetched by offset: no
 * consumer group, so reading leaves no trace on the broker.
 */
export async function readTopic(kafka: PlainKafka, topic: string): Promise<KafkaRecord[]> {
  const ends = await watermarks(kafka, topic);
  const records: KafkaRecord[] = [];
  if (ends.every(({ low, high }) => high <= low)) return records;
  // Fetch needs a Consumer, and a Consumer needs a group id, but nothing here joins the group.
  const consumer = new Consumer({ ...clientOptions(kafka.bootstrap, kafka.clientId), groupId: `unused-${randomBytes(6).toString('hex')}` });
  try {
    const metadata = (await consumer.metadata({ topics: [topic] })).topics.get(topic);
    if (!metadata) throw new Error(`no metadata for ${topic}`);
    for (const [partition, { low, high }] of ends.entries()) {
      const deadline = Date.now() + 30_000;
      for (let next = low; next < high; ) {
        if (Date.now() > deadline) throw new Error(`reading ${topic}/${partition} took over 30 s (at ${next} of ${high})`);
        const response = await consumer.fetch({
          node: metadata.partitions[partition]!.leader,
          topics: [{ topicId: metadata.id, partitions: [{ partition, fetchOffset: BigInt(next), currentLeaderEpoch: -1, lastFetchedEpoch: -1, partitionMaxBytes: 8 << 20 }] }],
          maxWaitTime: 100,
        });
        const from = next;
        for (const batch of response.responses.flatMap((t) => t.partitions).flatMap((p) => p.records ?? [])) {
          // Transaction markers take offsets too, but are no records.
          if ((batch.attributes & IS_CONTROL) === 0) {
            for (const record of batch.records) {
              // A batch may start before the offset asked for.
              const offset = Number(batch.firstOffset) + record.offsetDelta;
              if (offset < from || offset >= high) continue;
              const headers: Record<string, string> = {};
              for (const [name, value] of record.headers) if (name) headers[name.toString()] = value?.toString() ?? '';
              records.push({ partition, offset, key: record.key?.toString() ?? null, value: record.value?.toString() ?? null, headers });
            }
          }
          next = Math.max(next, Number(batch.firstOffset) + batch.lastOffsetDelta + 1);
        }
      }
    }
  } finally {
    await consumer.close();
  }
  return records.sort((a, b) => a.partition - b.partition || a.offset - b.offset);
}

/** How many records `topic` holds (sum of high minus low watermarks). */
export async function recordCount(kafka: PlainKafka, topic: string): Promise<number> {
  return (await watermarks(kafka, topic)).reduce((sum, { low, high }) => sum + high - low, 0);
}

/** Deletes the records of `topic`/`partition` before `offset`, as retention would. */
export async function deleteRecordsBefore(kafka: PlainKafka, topic: string, partition: number, offset: number): Promise<void> {
  await withAdmin(kafka.bootstrap, kafka.clientId, (admin) => admin.deleteRecords({ topics: [{ name: topic, partitions: [{ partition, offset: BigInt(offset) }] }] }));
}

export function kafkaSourceOf(server: RunningServer): KafkaSource {
  if (!(server.source instanceof KafkaSource)) throw new Error('the server does not run on Kafka');
  return server.source;
}

/** The value of one sample on GET /metrics (`name` with its labels, as printed), or undefined when absent. */
export async function metricValue(baseUrl: string, sample: string): Promise<number | undefined> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  return line === undefined ? undefined : Number(line.slice(sample.length + 1));
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
 * the clients and starts closing the rest without waiting: closing edgepush may wait for the Kafka
 * consumer's fetch in flight (up to its maxWaitTime, seconds), and the next test uses topics of its
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

  producer(kafka: PlainKafka): PlainProducer {
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
 * (`started` receives it and where a plain client connects), the test's servers and clients cleaned up after each
 * test, and everything settled before the broker stops. Call it inside the describe block.
 * `properties` override the harness's broker properties.
 */
export function useKafkaBroker(version: string, res: Resources, started: (broker: KafkaBroker, kafka: PlainKafka) => void, properties?: Record<string, string>): void {
  let broker: KafkaBroker | undefined;
  beforeAll(async () => {
    broker = await startKafka({ version, ...(properties ? { properties } : {}) });
    started(broker, plainKafka(broker));
  }, BROKER_START_TIMEOUT_MS);
  afterEach(() => res.cleanup());
  afterAll(async () => {
    await res.settle();
    await broker?.stop();
  }, 60_000);
}
