/**
 * Kafka as the source: every node reads every partition of the configured topics ("everybody reads
 * everything"), so any node can serve any client and cursors mean the same on all of them.
 *
 * kafkajs has no manual partition assignment, so each process uses a consumer group of its own,
 * never commits, and seeks every partition itself on each group join: to the read-back start at
 * first, to the next record after the last one handed over after any rejoin (a broker outage, a
 * session timeout). `fromBeginning` covers a partition a seek has not reached yet: re-reading is
 * harmless (the engine skips records it has seen), skipping ahead would not be.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Kafka, Partitioners, logLevel, type Admin, type Consumer, type KafkaMessage, type Producer } from 'kafkajs';
import { Frontier, WHOLE_RECORD, messageId } from '../engine/position.js';
import { PushError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { LogRecord, PublishMessage, RecordHandler, Source } from '../source/source.js';
import type { KafkaOptions } from './kafka-options.js';
import { kafkajsLogger } from './kafkajs-logger.js';
import { fetchOffsets } from './topic-offsets.js';
import { readPartitionRange, type RangeResult } from './range-reader.js';

interface PartitionInfo {
  readonly topic: string;
  readonly partition: number;
}

export class KafkaSource implements Source {
  readonly kind = 'kafka';
  readonly #kafka: Kafka;
  readonly #options: KafkaOptions;
  readonly #log: Logger;
  readonly #partitions: PartitionInfo[];
  /** Global partition index of (topic, partition): the topic's base plus the partition number. */
  readonly #base: Map<string, number>;
  /** The last offset handed to the handler per partition: where a rejoin resumes. */
  readonly #delivered: number[];
  /** High watermarks at start: the read-back is complete when every partition reaches its own. */
  readonly #startHigh: number[];
  #consumer: Consumer | undefined;
  #producer: Producer | undefined;
  #admin: Admin;
  #healthy = true;
  #caughtUp: () => void = () => {};
  readonly caughtUp: Promise<void>;

  private constructor(
    kafka: Kafka,
    admin: Admin,
    options: KafkaOptions,
    log: Logger,
    readonly epoch: string,
    partitions: PartitionInfo[],
    base: Map<string, number>,
    readonly start: Frontier,
    startHigh: number[],
  ) {
    this.#kafka = kafka;
    this.#admin = admin;
    this.#options = options;
    this.#log = log;
    this.#partitions = partitions;
    this.#base = base;
    this.#delivered = start.offsets.slice();
    this.#startHigh = startHigh;
    this.caughtUp = new Promise((resolve) => (this.#caughtUp = resolve));
    this.#checkCaughtUp();
  }

  /** Connects, learns the cluster and the topics' partitions, and fixes the read-back start. */
  static async connect(options: KafkaOptions, log: Logger): Promise<KafkaSource> {
    const kafka = new Kafka({
      clientId: options.clientId,
      brokers: options.brokers,
      ...(options.ssl !== undefined ? { ssl: options.ssl as never } : {}),
      ...(options.sasl !== undefined ? { sasl: options.sasl as never } : {}),
      logLevel: logLevel.WARN,
      logCreator: kafkajsLogger(log),
      retry: { retries: 8, initialRetryTime: 200, maxRetryTime: 5000 },
    });
    const admin = kafka.admin();
    await admin.connect();
    const cluster = await admin.describeCluster();
    const names = options.topics.map((t) => t.topic);
    const existing = new Set(await admin.listTopics());
    const missing = names.filter((name) => !existing.has(name));
    if (missing.length > 0) throw new Error(`Kafka topic${missing.length > 1 ? 's' : ''} ${missing.join(', ')} not found on the cluster (edgepush does not create topics)`);
    const partitions: PartitionInfo[] = [];
    const base = new Map<string, number>();
    const low: number[] = [];
    const high: number[] = [];
    for (const topic of names) {
      base.set(topic, partitions.length);
      const offsets = (await fetchOffsets(admin, topic)).sort((a, b) => a.partition - b.partition);
      for (const entry of offsets) {
        partitions.push({ topic, partition: entry.partition });
        low.push(Number(entry.low));
        high.push(Number(entry.high));
      }
    }
    // The epoch names this log: the cluster and the topics with their partition counts, so a
    // cursor from another cluster or another topic layout is recognised, never misread.
    const layout = names.map((topic) => `${topic}:${partitions.filter((p) => p.topic === topic).length}`).join(',');
    const epoch = BigInt('0x' + createHash('sha256').update(`${cluster.clusterId}|${layout}`).digest('hex').slice(0, 15)).toString(36);
    const startOffsets = high.map((h, p) => Math.max(low[p] as number, h - options.readBack) - 1);
    const start = Frontier.of(epoch, startOffsets, startOffsets.map(() => WHOLE_RECORD));
    log.info({ clusterId: cluster.clusterId, epoch, layout }, 'kafka source connected');
    return new KafkaSource(kafka, admin, options, log, epoch, partitions, base, start, high);
  }

  get partitions(): number {
    return this.#partitions.length;
  }

  /** The topic of each global partition index, for routing rules. */
  get partitionTopics(): string[] {
    return this.#partitions.map((p) => p.topic);
  }

  /** False after a publish failed to reach the cluster, until one succeeds. */
  get writable(): boolean {
    return this.#healthy;
  }

  async open(handler: RecordHandler): Promise<void> {
    const consumer = this.#kafka.consumer({
      groupId: `edgepush-${this.#options.clientId}-${randomBytes(6).toString('hex')}`,
      sessionTimeout: 30_000,
      heartbeatInterval: 3_000,
      // How long the broker holds an empty fetch: records arrive at once either way; a short wait
      // only costs an idle fetch a second, and lets a shutdown finish in about that time.
      maxWaitTimeInMs: 1_000,
      allowAutoTopicCreation: false,
      retry: { retries: Number.MAX_SAFE_INTEGER, initialRetryTime: 300, maxRetryTime: 5_000 },
    });
    this.#consumer = consumer;
    consumer.on(consumer.events.GROUP_JOIN, () => this.#seekAll(consumer));
    consumer.on(consumer.events.CRASH, (event) => this.#log.warn({ err: event.payload.error, restart: event.payload.restart }, 'kafka consumer crashed'));
    await consumer.connect();
    await consumer.subscribe({ topics: this.#options.topics.map((t) => t.topic), fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: true,
      eachBatch: async ({ batch }) => {
        const index = (this.#base.get(batch.topic) as number) + batch.partition;
        const records = batch.messages.map((message) => toRecord(index, message));
        handler(records);
        const last = records[records.length - 1];
        if (last && last.offset > (this.#delivered[index] as number)) this.#delivered[index] = last.offset;
        this.#checkCaughtUp();
      },
    });
  }

  async publish(messages: readonly PublishMessage[]): Promise<string[]> {
    const topic = this.#options.publishTopic;
    const base = this.#base.get(topic) as number;
    const count = this.#partitions.filter((p) => p.topic === topic).length;
    const partitionMetadata = Array.from({ length: count }, (_, partitionId) => ({ partitionId, leader: 0, replicas: [0], isr: [0], offlineReplicas: [], partitionErrorCode: 0 }));
    const partitioner = Partitioners.DefaultPartitioner();
    // The partition is chosen here, as Java clients do (murmur2 of the key), so each message's
    // offset can be read from the reply: one channel always lands on one partition, in order.
    const routed = messages.map((message) => ({
      key: message.channel,
      value: message.payload.json,
      headers: { 'content-type': 'application/json' },
      partition: partitioner({ topic, partitionMetadata, message: { key: message.channel, value: null } }),
    }));
    // Idempotent with kafkajs's own retries (limiting them would void the broker-side dedupe); the
    // client-facing wait is bounded by publishTimeout instead.
    this.#producer ??= this.#kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false, createPartitioner: Partitioners.DefaultPartitioner });
    const producer = this.#producer;
    let timer: NodeJS.Timeout | undefined;
    try {
      const sent = producer.connect().then(() => producer.send({ topic, acks: -1, messages: routed }));
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new PushError('unavailable', `Kafka did not acknowledge the publish within ${this.#options.publishTimeout} ms; retry later`)), this.#options.publishTimeout);
      });
      const results = await Promise.race([sent, timeout]);
      this.#healthy = true;
      const nextOffset = new Map(results.map((r) => [r.partition, Number(r.baseOffset)]));
      return routed.map((message) => {
        const offset = nextOffset.get(message.partition) as number;
        nextOffset.set(message.partition, offset + 1);
        return messageId(base + message.partition, offset, undefined);
      });
    } catch (error) {
      this.#healthy = false;
      if (error instanceof PushError) throw error;
      this.#log.warn({ err: error }, 'kafka publish failed');
      throw new PushError('unavailable', `Kafka is not reachable: ${(error as Error).message}; retry later`);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Reads a past range of one partition (deep resume), bounded by deepResumeMaxRecords. */
  readRange(partition: number, afterOffset: number, upToOffset: number): Promise<RangeResult> {
    const info = this.#partitions[partition];
    if (!info) throw new RangeError(`no partition index ${partition}`);
    return readPartitionRange(this.#kafka, this.#admin, { ...info, index: partition }, afterOffset, upToOffset, this.#options.deepResumeMaxRecords, this.#options.clientId);
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.#consumer?.disconnect(), this.#producer?.disconnect(), this.#admin.disconnect()]);
  }

  #seekAll(consumer: Consumer): void {
    for (let index = 0; index < this.#partitions.length; index++) {
      const { topic, partition } = this.#partitions[index] as PartitionInfo;
      consumer.seek({ topic, partition, offset: String((this.#delivered[index] as number) + 1) });
    }
  }

  #checkCaughtUp(): void {
    if (this.#startHigh.every((high, p) => (this.#delivered[p] as number) >= high - 1)) this.#caughtUp();
  }
}

function toRecord(partition: number, message: KafkaMessage): LogRecord {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(message.headers ?? {})) {
    const first = Array.isArray(value) ? value[0] : value;
    if (first !== undefined) headers[name] = first.toString();
  }
  return {
    partition,
    offset: Number(message.offset),
    key: message.key === null ? null : message.key.toString('utf8'),
    value: message.value,
    headers,
    timestamp: Number(message.timestamp),
  };
}
