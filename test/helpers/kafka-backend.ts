/**
 * "A backend that knows only Kafka": a plain @platformatic/kafka producer writing JSON records keyed
 * by channel (edgepush's key routing), which also works out each record's edgepush message id from
 * the broker's reply, so tests can check that every node gives a message the id Kafka gave it. Also
 * the plain-client basics the other Kafka helpers share: options, topic creation, partitioning.
 */
import { javaPartition } from '../../src/kafka/kafka-client.js';
import { Admin, ListOffsetTimestamps, ProduceAcks, Producer, stringSerializers, type BaseOptions, type CreatedTopic } from '@platformatic/kafka';

/**
 * Options of a plain client. Retries back off from 100 ms to 5 s (about half a minute in all), so a
 * client rides out a broker that is starting or restarting, and still fails a test that is stuck.
 */
export function clientOptions(bootstrap: string, clientId: string): BaseOptions {
  return { clientId, bootstrapBrokers: [bootstrap], retries: 10, retryDelay: (_client, _operation, attempt) => Math.min(5000, 100 * 2 ** (attempt - 1)) };
}

/** Runs `use` with an admin client, closed afterwards whatever happens. */
export async function withAdmin<T>(bootstrap: string, clientId: string, use: (admin: Admin) => Promise<T>): Promise<T> {
  const admin = new Admin(clientOptions(bootstrap, clientId));
  try {
    return await use(admin);
  } finally {
    await admin.close();
  }
}

export interface TopicSpec {
  readonly topic: string;
  readonly numPartitions?: number;
}

/**
 * Creates the topics and waits until every partition answers a list-offsets request: a new
 * partition has no leader for a moment, and a loaded broker may still answer "not the leader" just
 * after electing one (edgepush lists offsets at start, without retrying). Resolves to the broker's
 * description of the new topics.
 */
export async function createTopics(bootstrap: string, topics: readonly TopicSpec[]): Promise<CreatedTopic[]> {
  return withAdmin(bootstrap, `create-${topics.map((t) => t.topic).join(',')}`, async (admin) => {
    const created = await admin.createTopics({ topics: topics.map((t) => ({ topic: t.topic, partitions: t.numPartitions ?? 1, replicas: 1 })) });
    const request = topics.map((t) => ({ name: t.topic, partitions: Array.from({ length: t.numPartitions ?? 1 }, (_, partitionIndex) => ({ partitionIndex, timestamp: ListOffsetTimestamps.LATEST })) }));
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        await admin.listOffsets({ topics: request });
        return created;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  });
}

export async function createTopic(bootstrap: string, topic: string, numPartitions: number): Promise<void> {
  await createTopics(bootstrap, [{ topic, numPartitions }]);
}

/** The partition Kafka's Java client (and edgepush's publish) picks for `key`. */
export const partitionOf = javaPartition;

/**
 * An idempotent producer (acks=all) of string keys, values and headers: a send the client retries
 * around a broker or node restart (the first attempt may have been written already) must not leave
 * a duplicate record that a test would then, rightly, see delivered twice.
 */
export function plainProducer(bootstrap: string, clientId: string): Producer<string, string, string, string> {
  return new Producer({ ...clientOptions(bootstrap, clientId), idempotent: true, acks: ProduceAcks.ALL, autocreateTopics: false, serializers: stringSerializers });
}

export interface Placed {
  readonly partition: number;
}

/**
 * Where each of `messages` (all of one topic, in one send) landed: the broker answers with the
 * first offset of each partition's batch, and a batch keeps the order of the messages in it.
 */
export function offsetsOf<M extends Placed>(messages: readonly M[], baseOffsets: ReadonlyArray<{ partition: number; offset: bigint }>): number[] {
  const next = new Map(baseOffsets.map((r) => [r.partition, Number(r.offset)]));
  return messages.map((m) => {
    const offset = next.get(m.partition);
    if (offset === undefined) throw new Error(`no offset for partition ${m.partition} in the broker's reply`);
    next.set(m.partition, offset + 1);
    return offset;
  });
}

/**
 * Deterministic channel names `${prefix}${n}` such that the first `spread` of them land on
 * `spread` different partitions (so a cursor really spans several partitions).
 */
export function spreadChannels(prefix: string, count: number, partitions: number, spread = Math.min(count, partitions)): string[] {
  const chosen: string[] = [];
  const used = new Set<number>();
  for (let n = 0; chosen.length < count && n < 10_000; n++) {
    const name = `${prefix}${n}`;
    const partition = partitionOf(name, partitions);
    if (chosen.length < spread && used.has(partition)) continue;
    used.add(partition);
    chosen.push(name);
  }
  if (chosen.length < count) throw new Error(`could not spread ${count} channels over ${partitions} partitions`);
  return chosen;
}

export interface Record {
  readonly channel: string;
  readonly data: unknown;
}

export class KafkaBackend {
  private constructor(
    private readonly producer: Producer<string, string, string, string>,
    readonly topic: string,
    readonly partitions: number,
    /** Global partition index of this topic's partition 0 in edgepush's numbering. */
    readonly base: number,
  ) {}

  static async connect(bootstrap: string, topic: string, partitions: number, base = 0): Promise<KafkaBackend> {
    const producer = plainProducer(bootstrap, `backend-${topic}`);
    // Fails here, not at the first send, if the broker or the topic is not there.
    await producer.metadata({ topics: [topic] }).catch(async (error: unknown) => {
      await producer.close();
      throw error;
    });
    return new KafkaBackend(producer, topic, partitions, base);
  }

  /** Writes records in order (key = channel, value = JSON) and returns their edgepush ids. */
  async send(records: readonly Record[]): Promise<string[]> {
    const routed = records.map((r) => ({ topic: this.topic, key: r.channel, value: JSON.stringify(r.data), partition: partitionOf(r.channel, this.partitions) }));
    const result = await this.producer.send({ messages: routed, acks: ProduceAcks.ALL });
    return offsetsOf(routed, result.offsets ?? []).map((offset, i) => `${this.base + routed[i]!.partition}-${offset}`);
  }

  async disconnect(): Promise<void> {
    await this.producer.close();
  }
}
