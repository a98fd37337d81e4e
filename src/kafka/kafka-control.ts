/**
 * The control log on Kafka (src/log/control.ts): server-API commands go to one control topic that
 * every node reads, so every node of the cluster acts on them. It is edgepush's own topic, the only
 * one edgepush creates: one partition (commands keep their order), short retention (a command is
 * for the nodes running now; one written before a node started is never replayed to it).
 *
 * Reading is the tail's (tail-reader.ts): by offset, from the end the topic had when this node
 * connected, with a Consumer of its own and no consumer group. Writing goes through the node's
 * producer (idempotent, acks=all), bounded by publishTimeout like a publish.
 */
import { Admin, Consumer, ListOffsetTimestamps, ProduceAcks } from '@platformatic/kafka';
import { PushError } from '../errors.js';
import type { Logger } from '../logger.js';
import { decodeCommand, encodeCommand, type ControlCommand, type ControlLog } from '../log/control.js';
import type { LogRecord } from '../log/source.js';
import { rateLimitedLog } from '../logger.js';
import { acknowledged, clientOptions, describeKafkaError, failureKind, kafkaErrorIds, type SharedProducer } from './kafka-client.js';
import type { KafkaOptions } from './kafka-options.js';
import { PartitionFetcher, type PartitionRef } from './partition-fetcher.js';
import { TailReader, type TailState } from './tail-reader.js';

/** How long the control topic keeps commands: longer than any node takes to read them, short enough to stay small. */
export const CONTROL_RETENTION_MS = 3_600_000;
/** Longest wait for the control topic's end (a topic just created has no leader for a moment). */
const OFFSETS_WAIT_MS = 15_000;
/** Longest wait for this node to read the control topic up to its end. */
const CAUGHT_UP_WAIT_MS = 3_000;
/** Commands are read from partition 0 and written to it (a topic made by hand with more partitions still works). */
const PARTITION = 0;

type Handler = (command: ControlCommand) => void;

/**
 * Which of edgepush's own topics a log is: the control topic (commands for the nodes running now:
 * read from its end, short retention), or the sessions topic (MQTT persistent sessions: compacted,
 * keyed by client id, read from its start so a node that starts later knows every session).
 */
export interface LogTopicSpec {
  readonly topic: string;
  /** Topic configs when edgepush creates it. */
  readonly configs: readonly { name: string; value: string }[];
  readonly readFrom: 'end' | 'start';
  /** For log lines: "kafka control topic". */
  readonly what: string;
  /** What is lost while it is unavailable, for the warning. */
  readonly unavailable: string;
}

export function controlTopicSpec(options: KafkaOptions): LogTopicSpec {
  return {
    topic: options.controlTopic,
    configs: [
      { name: 'retention.ms', value: String(CONTROL_RETENTION_MS) },
      { name: 'cleanup.policy', value: 'delete' },
    ],
    readFrom: 'end',
    what: 'kafka control topic',
    unavailable: 'server API commands (subscribe, unsubscribe, disconnect) are unavailable on this node',
  };
}

export function sessionTopicSpec(options: KafkaOptions): LogTopicSpec {
  return {
    topic: options.sessionTopic,
    configs: [{ name: 'cleanup.policy', value: 'compact' }],
    readFrom: 'start',
    what: 'kafka sessions topic',
    unavailable: 'MQTT persistent sessions are unavailable on this node: every session starts clean (sessionPresent=0)',
  };
}

export class KafkaControlLog implements ControlLog {
  /** False when the control topic is missing and could not be created (or cannot be read): `send` rejects. */
  readonly available: boolean;
  readonly topic: string;
  readonly #log: Logger;
  readonly #producer: SharedProducer;
  readonly #publishTimeout: number;
  readonly #consumer: Consumer | undefined;
  readonly #tail: TailReader | undefined;
  readonly #handlers: Handler[] = [];
  readonly #logUndecodable: (line: string, details?: object) => void;
  #undecodable = 0;
  #received = 0;

  readonly #what: string;

  private constructor(options: KafkaOptions, spec: LogTopicSpec, log: Logger, producer: SharedProducer, reading?: { consumer: Consumer; next: number }) {
    this.topic = spec.topic;
    this.#what = spec.what;
    this.#log = log;
    this.#producer = producer;
    this.#publishTimeout = options.publishTimeout;
    this.available = reading !== undefined;
    if (reading) {
      const refs: PartitionRef[] = [{ topic: this.topic, partition: PARTITION, index: 0 }];
      this.#consumer = reading.consumer;
      // The tail's positions are the last offset handled: one before the first command to read.
      this.#tail = new TailReader(new PartitionFetcher(reading.consumer, refs), refs, [reading.next - 1], log, spec.what);
    }
    this.#logUndecodable = rateLimitedLog(10, (line, details) => log.warn(details ?? {}, line));
  }

  /**
   * Finds the control topic (creating it when missing) and fixes where reading starts: the topic's
   * end now. Never fails for the topic itself (missing and not creatable, or not readable: one
   * warning, and `available` is false); rejects only when the cluster cannot be used at all.
   */
  static async connect(options: KafkaOptions, log: Logger, producer: SharedProducer, spec: LogTopicSpec = controlTopicSpec(options)): Promise<KafkaControlLog> {
    const consumer = new Consumer({ ...clientOptions(options, spec.readFrom === 'end' ? 'control' : 'sessions', 2), groupId: `${options.clientId}-unused`, maxWaitTime: 1000 });
    try {
      const found = await findOrCreate(consumer, options, spec, log);
      const next = found === undefined ? undefined : await startOffset(consumer, spec, found.created, log);
      if (next === undefined) {
        await consumer.close(true);
        return new KafkaControlLog(options, spec, log, producer);
      }
      log.info({ topic: spec.topic, offset: next }, `${spec.what}: reading from its ${spec.readFrom}`);
      return new KafkaControlLog(options, spec, log, producer, { consumer, next });
    } catch (error) {
      await consumer.close(true).catch(() => {});
      throw error;
    }
  }

  /** Records of the control topic that were no command (skipped). */
  get undecodable(): number {
    return this.#undecodable;
  }

  /** Commands read since start. */
  get received(): number {
    return this.#received;
  }

  /** How reading the control topic goes (positions, failures), undefined when unavailable. */
  get state(): Readonly<TailState> | undefined {
    return this.#tail?.state;
  }

  /** Begins reading commands (KafkaSource.open). */
  start(): void {
    this.#tail?.start((records) => this.#take(records));
  }

  async send(command: ControlCommand): Promise<void> {
    if (!this.available) {
      throw new PushError('unavailable', `the ${this.#what} ${this.topic} is missing and edgepush could not create it (see docs/kafka.md for the ACLs it needs)`);
    }
    // Session states are keyed by client id: compaction keeps the latest of each.
    const key = command.type === 'mqtt-session' ? command.clientId : undefined;
    try {
      await acknowledged(
        this.#producer.get().send({ messages: [{ topic: this.topic, partition: PARTITION, ...(key ? { key } : {}), value: encodeCommand(command) }], acks: ProduceAcks.ALL }),
        this.#publishTimeout,
        `Kafka did not acknowledge the command within ${this.#publishTimeout} ms; retry later`,
      );
    } catch (error) {
      if (error instanceof PushError) throw error;
      this.#log.warn({ err: error, topic: this.topic }, `${this.#what}: a write failed`);
      throw new PushError('unavailable', `Kafka is not reachable: ${describeKafkaError(error)}; retry later`);
    }
  }

  onCommand(handler: Handler): void {
    this.#handlers.push(handler);
  }

  /**
   * Waits until this node has read every command written before now (a reconnecting MQTT client's
   * session may have been saved by another node a moment ago). Bounded: after CAUGHT_UP_WAIT_MS it
   * goes on with what it has.
   */
  async caughtUp(): Promise<void> {
    if (!this.#consumer || !this.#tail) return;
    const deadline = Date.now() + CAUGHT_UP_WAIT_MS;
    try {
      const offsets = await this.#consumer.listOffsets({ topics: [this.topic], partitions: { [this.topic]: [PARTITION] }, timestamp: ListOffsetTimestamps.LATEST });
      const end = Number(offsets.get(this.topic)?.[PARTITION] ?? 0n);
      for (let delay = 5; (this.#tail.state.positions[0] ?? -1) < end - 1 && Date.now() < deadline; delay = Math.min(100, delay * 2)) {
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    } catch (error) {
      this.#log.debug({ err: error }, `${this.#what}: could not read its end`);
    }
  }

  async close(): Promise<void> {
    await this.#tail?.stop();
    await this.#consumer?.close(true).catch(() => {});
  }

  /** Hands each command to every handler; skips what is no command. Never throws: the tail would read the records again. */
  #take(records: readonly LogRecord[]): void {
    for (const record of records) {
      const command = decodeCommand(record.value);
      if (command === undefined) {
        this.#undecodable++;
        this.#logUndecodable(`${this.#what}: skipped a record that is no command`, { topic: this.topic, partition: PARTITION, offset: record.offset });
        continue;
      }
      this.#received++;
      for (const handler of this.#handlers) {
        try {
          handler(command);
        } catch (error) {
          this.#log.error({ err: error, offset: record.offset }, `${this.#what}: a handler failed`);
        }
      }
    }
  }
}

/** `{created}` once the control topic exists; undefined (after one warning) when it is missing and cannot be created. */
async function findOrCreate(consumer: Consumer, options: KafkaOptions, spec: LogTopicSpec, log: Logger): Promise<{ created: boolean } | undefined> {
  const topic = spec.topic;
  try {
    await consumer.metadata({ topics: [topic] });
    return { created: false };
  } catch (error) {
    const kind = failureKind(error);
    if (kind === 'authentication') return unusable(log, spec, `cannot describe it: ${describeKafkaError(error)}`);
    if (kind !== 'missing_topic') throw error;
  }
  const brokers = (await consumer.metadata({ topics: [] })).brokers.size;
  const admin = new Admin(clientOptions(options, 'admin', 2));
  try {
    await admin.createTopics({
      topics: [topic],
      partitions: 1,
      replicas: Math.max(1, Math.min(3, brokers)),
      configs: [...spec.configs],
    });
    log.info({ topic }, `${spec.what}: created ${topic}`);
    return { created: true };
  } catch (error) {
    // Another node, starting at the same time, was first.
    if (kafkaErrorIds(error).has('TOPIC_ALREADY_EXISTS')) return { created: false };
    return unusable(log, spec, `it is missing and could not be created: ${describeKafkaError(error)}`);
  } finally {
    await admin.close().catch(() => {});
  }
}

/**
 * The offset of the first record this node reads: the topic's end now (the control topic), or its
 * start (the sessions topic), or 0 for a topic this node just created (all of it is newer than
 * this node). Waits for a new topic's leader.
 */
async function startOffset(consumer: Consumer, spec: LogTopicSpec, created: boolean, log: Logger): Promise<number | undefined> {
  const topic = spec.topic;
  const deadline = Date.now() + OFFSETS_WAIT_MS;
  for (let delay = 100; ; delay = Math.min(1000, delay * 2)) {
    try {
      const timestamp = spec.readFrom === 'end' ? ListOffsetTimestamps.LATEST : ListOffsetTimestamps.EARLIEST;
      const offsets = await consumer.listOffsets({ topics: [topic], partitions: { [topic]: [PARTITION] }, timestamp });
      return created ? 0 : Number(offsets.get(topic)?.[PARTITION] ?? 0n);
    } catch (error) {
      const kind = failureKind(error);
      if (kind === 'authentication') return unusable(log, spec, `cannot read it: ${describeKafkaError(error)}`);
      // A topic just created (here or by another node) has no leader for a moment.
      if (Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, delay));
        consumer.clearMetadata();
        continue;
      }
      if (kind === 'missing_topic') return unusable(log, spec, `cannot read it: ${describeKafkaError(error)}`);
      throw error;
    }
  }
}

function unusable(log: Logger, spec: LogTopicSpec, why: string): undefined {
  log.warn({ topic: spec.topic }, `${spec.what} ${spec.topic}: ${why}; ${spec.unavailable}`);
  return undefined;
}
