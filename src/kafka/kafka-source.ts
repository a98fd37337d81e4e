/**
 * Kafka as the source: every node reads every partition of the configured topics ("everybody reads
 * everything"), so any node can serve any client and cursors mean the same on all of them.
 *
 * Four clients, none in a consumer group: the tail (live records, from the read-back start on),
 * the range reader (deep resume: past ranges by offset), the control log's reader (server-API
 * commands, kafka-control.ts) and the producer (publishes and commands, idempotent, acks=all).
 * Positions come from Kafka itself, so nothing is ever committed.
 */
import { createHash } from 'node:crypto';
import { Consumer, ListOffsetTimestamps, ProduceAcks } from '@platformatic/kafka';
import { Frontier, WHOLE_RECORD, messageId } from '../log/position.js';
import { PushError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { PartitionStatus, PublishMessage, RecordHandler, Source, SourceHealth } from '../log/source.js';
import { acknowledged, clientOptions, describeKafkaError, javaPartition, SharedProducer } from './kafka-client.js';
import { KafkaControlLog, sessionTopicSpec } from './kafka-control.js';
import type { KafkaOptions } from './kafka-options.js';
import { PartitionFetcher, type PartitionRef } from './partition-fetcher.js';
import { RangeReader, type RangeResult } from './range-reader.js';
import { TailReader } from './tail-reader.js';

/** Ranges read back at the same time for deep resumes; the rest queue (bounds memory to this × deepResumeMaxRecords). */
const RANGE_READS_ACTIVE = 4;
/** Longest a deep resume may wait for its range, queueing included, before it is answered with a reset. */
const RANGE_TIMEOUT_MS = 30_000;

/** Kafka could not be used at start: the CLI prints this one line and exits 2. */
export class KafkaStartError extends Error {}

export class KafkaSource implements Source {
  readonly kind = 'kafka';
  readonly #options: KafkaOptions;
  readonly #log: Logger;
  readonly #refs: PartitionRef[];
  /** Global partition index of the publish topic's partition 0. */
  readonly #publishBase: number;
  readonly #publishPartitions: number;
  readonly #tailConsumer: Consumer;
  readonly #rangeConsumer: Consumer;
  readonly #tail: TailReader;
  readonly #ranges: RangeReader;
  /** High watermarks at start: the read-back is complete when every partition reaches its own. */
  readonly #startHigh: number[];
  readonly #producer: SharedProducer;
  /** Server-API commands to and from every node (the control topic). */
  readonly control: KafkaControlLog;
  /** MQTT persistent sessions, read from the start of the compacted sessions topic. */
  readonly sessions: KafkaControlLog;
  #healthy = true;
  #ready = false;
  #caughtUp: () => void = () => {};
  readonly caughtUp: Promise<void>;

  private constructor(
    options: KafkaOptions,
    log: Logger,
    readonly epoch: string,
    refs: PartitionRef[],
    readonly start: Frontier,
    startHigh: number[],
    tailConsumer: Consumer,
    producer: SharedProducer,
    control: KafkaControlLog,
    sessions: KafkaControlLog,
  ) {
    this.#options = options;
    this.#producer = producer;
    this.control = control;
    this.sessions = sessions;
    this.#log = log;
    this.#refs = refs;
    this.#startHigh = startHigh;
    this.#publishBase = refs.findIndex((r) => r.topic === options.publishTopic);
    this.#publishPartitions = refs.filter((r) => r.topic === options.publishTopic).length;
    this.#tailConsumer = tailConsumer;
    this.#rangeConsumer = new Consumer({ ...clientOptions(options, 'range', 2), groupId: `${options.clientId}-unused` });
    this.#tail = new TailReader(new PartitionFetcher(tailConsumer, refs), refs, start.offsets, log);
    this.#ranges = new RangeReader(new PartitionFetcher(this.#rangeConsumer, refs), {
      maxRecords: options.deepResumeMaxRecords,
      maxActive: RANGE_READS_ACTIVE,
      timeoutMs: RANGE_TIMEOUT_MS,
      partitionMaxBytes: 1 << 20,
    });
    this.caughtUp = new Promise((resolve) => (this.#caughtUp = resolve));
    this.#tail.onProgress = () => this.#checkCaughtUp();
  }

  /**
   * Connects, learns the cluster and the topics' partitions, and fixes the read-back start.
   * Rejects with a one-line KafkaStartError when the cluster cannot be reached or a topic is missing.
   */
  static async connect(options: KafkaOptions, log: Logger): Promise<KafkaSource> {
    // The groupId is never used: the client's constructor wants one, but no group is ever joined.
    const consumer = new Consumer({ ...clientOptions(options, 'tail', 2), groupId: `${options.clientId}-unused`, maxWaitTime: 1000 });
    const names = options.topics.map((t) => t.topic);
    // The client sorts the topic lists it is given in place; the configured order is part of every position.
    const copy = (): string[] => [...names];
    try {
      const cluster = await consumer.metadata({ topics: [] });
      const metadata = await consumer.metadata({ topics: copy() }).catch(async (error: unknown) => {
        if (!/unknown topic/i.test(describeKafkaError(error))) throw error;
        // The client's error does not reliably name the topic: ask for each one.
        const missing: string[] = [];
        for (const name of names) await consumer.metadata({ topics: [name] }).catch(() => missing.push(name));
        throw new KafkaStartError(`Kafka topic${missing.length > 1 ? 's' : ''} ${missing.join(', ')} not found on the cluster (edgepush does not create data topics)`);
      });
      const refs: PartitionRef[] = [];
      for (const topic of names) {
        const count = metadata.topics.get(topic)?.partitionsCount ?? 0;
        for (let partition = 0; partition < count; partition++) refs.push({ topic, partition, index: refs.length });
      }
      const [earliest, latest] = await Promise.all([
        consumer.listOffsets({ topics: copy(), timestamp: ListOffsetTimestamps.EARLIEST }),
        consumer.listOffsets({ topics: copy(), timestamp: ListOffsetTimestamps.LATEST }),
      ]);
      const low = refs.map((r) => Number(earliest.get(r.topic)?.[r.partition] ?? 0n));
      const high = refs.map((r) => Number(latest.get(r.topic)?.[r.partition] ?? 0n));
      // The epoch names this log: the cluster and the topics with their partition counts, so a
      // cursor from another cluster or another topic layout is recognised, never misread.
      const layout = names.map((topic) => `${topic}:${refs.filter((r) => r.topic === topic).length}`).join(',');
      const epoch = BigInt('0x' + createHash('sha256').update(`${cluster.id}|${layout}`).digest('hex').slice(0, 15)).toString(36);
      const startOffsets = high.map((h, p) => Math.max(low[p] as number, h - options.readBack) - 1);
      const start = Frontier.of(epoch, startOffsets, startOffsets.map(() => WHOLE_RECORD));
      log.info({ clusterId: cluster.id, epoch, layout }, 'kafka source connected');
      const producer = new SharedProducer(options);
      const control = await KafkaControlLog.connect(options, log, producer);
      const sessions = await KafkaControlLog.connect(options, log, producer, sessionTopicSpec(options));
      return new KafkaSource(options, log, epoch, refs, start, high, consumer, producer, control, sessions);
    } catch (error) {
      await consumer.close(true).catch(() => {});
      if (error instanceof KafkaStartError) throw error;
      throw new KafkaStartError(`cannot use Kafka at ${options.brokers.join(',')}: ${describeKafkaError(error)}`);
    }
  }

  get partitions(): number {
    return this.#refs.length;
  }

  /** The topic of each global partition index, for routing rules. */
  get partitionTopics(): string[] {
    return this.#refs.map((r) => r.topic);
  }

  /** False after a publish failed to reach the cluster, until one succeeds. */
  get writable(): boolean {
    return this.#healthy;
  }

  /** The start-up read-back is done and the tail is live. */
  get ready(): boolean {
    return this.#ready;
  }

  health(): SourceHealth {
    const state = this.#tail.state;
    const now = Date.now();
    const partitions: PartitionStatus[] = this.#refs.map((ref) => {
      const high = state.highWatermarks[ref.index] as number;
      const position = (state.positions[ref.index] as number) + 1;
      const newest = state.newestTimestamps[ref.index] as number;
      return {
        topic: ref.topic,
        partition: ref.partition,
        highWatermark: high,
        position,
        lag: high < 0 ? -1 : Math.max(0, high - position),
        newestRecordAgeSeconds: newest === 0 ? -1 : Math.max(0, (now - newest) / 1000),
      };
    });
    return {
      reachable: state.failing === undefined,
      failures: { ...state.failures },
      skippedRecords: state.skippedRecords,
      recordsReadBack: this.#ranges.recordsRead,
      partitions,
    };
  }

  async open(handler: RecordHandler): Promise<void> {
    this.#tail.start(handler);
    this.control.start();
    this.sessions.start();
  }

  async publish(messages: readonly PublishMessage[]): Promise<string[]> {
    const topic = this.#options.publishTopic;
    // The partition is chosen here, as Java clients do (murmur2 of the key), so each message's
    // offset can be read from the reply: one channel always lands on one partition, in order.
    const routed = messages.map((message) => ({
      topic,
      key: message.channel,
      value: Buffer.from(message.payload.json),
      headers: { 'content-type': 'application/json' },
      partition: javaPartition(message.channel, this.#publishPartitions),
    }));
    try {
      const result = await acknowledged(
        this.#producer.get().send({ messages: routed, acks: ProduceAcks.ALL }),
        this.#options.publishTimeout,
        `Kafka did not acknowledge the publish within ${this.#options.publishTimeout} ms; retry later`,
      );
      if (!this.#healthy) this.#log.info('kafka publish works again');
      this.#healthy = true;
      const nextOffset = new Map((result.offsets ?? []).map((r) => [r.partition, Number(r.offset)]));
      return routed.map((message) => {
        const offset = nextOffset.get(message.partition) as number;
        nextOffset.set(message.partition, offset + 1);
        return messageId(this.#publishBase + message.partition, offset, undefined);
      });
    } catch (error) {
      // Logged once per change of state: publishes come at request rate, and so would the lines.
      const wasHealthy = this.#healthy;
      this.#healthy = false;
      if (error instanceof PushError) throw error;
      if (wasHealthy) this.#log.warn({ err: error }, 'kafka publish failed; further failures are not logged until a publish succeeds (503 unavailable to clients meanwhile)');
      throw new PushError('unavailable', `Kafka is not reachable: ${describeKafkaError(error)}; retry later`);
    }
  }

  /** Reads a past range of one partition (deep resume), bounded by deepResumeMaxRecords. */
  readRange(partition: number, afterOffset: number, upToOffset: number): Promise<RangeResult> {
    if (!this.#refs[partition]) throw new RangeError(`no partition index ${partition}`);
    return this.#ranges.read(partition, afterOffset, upToOffset);
  }

  async close(): Promise<void> {
    this.#ready = false;
    this.#ranges.close();
    await Promise.all([this.#tail.stop(), this.control.close(), this.sessions.close()]);
    await Promise.allSettled([this.#tailConsumer.close(true), this.#rangeConsumer.close(true), this.#producer.close()]);
  }

  #checkCaughtUp(): void {
    if (this.#ready) return;
    const positions = this.#tail.state.positions;
    if (this.#startHigh.every((high, p) => (positions[p] as number) >= high - 1) && this.#tail.state.failing === undefined) {
      this.#ready = true;
      this.#caughtUp();
    }
  }
}
