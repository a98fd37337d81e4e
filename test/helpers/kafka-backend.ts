/**
 * "A backend that knows only Kafka": a plain kafkajs producer writing JSON records keyed by channel
 * (edgepush's key routing), which also works out each record's edgepush message id from the
 * broker's reply, so tests can check that every node gives a message the id Kafka gave it.
 */
import { Kafka, Partitioners, logLevel, type Producer } from 'kafkajs';

export function kafkaClient(bootstrap: string, clientId: string): Kafka {
  return new Kafka({ clientId, brokers: [bootstrap], logLevel: logLevel.NOTHING, retry: { initialRetryTime: 100, retries: 10 } });
}

export async function createTopic(bootstrap: string, topic: string, numPartitions: number): Promise<void> {
  const admin = kafkaClient(bootstrap, `create-${topic}`).admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions }], waitForLeaders: true });
  } finally {
    await admin.disconnect();
  }
}

/** The partition Kafka's default (murmur2) partitioner picks for `key`, as Java clients and edgepush do. */
export function partitionOf(key: string, partitions: number): number {
  const partitioner = Partitioners.DefaultPartitioner();
  const partitionMetadata = Array.from({ length: partitions }, (_, partitionId) => ({ partitionId, leader: 1, replicas: [1], isr: [1], offlineReplicas: [], partitionErrorCode: 0 }));
  return partitioner({ topic: 't', partitionMetadata, message: { key, value: null } });
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
    private readonly producer: Producer,
    readonly topic: string,
    readonly partitions: number,
    /** Global partition index of this topic's partition 0 in edgepush's numbering. */
    readonly base: number,
  ) {}

  static async connect(bootstrap: string, topic: string, partitions: number, base = 0): Promise<KafkaBackend> {
    // Idempotent: retried sends around a node or broker restart must not duplicate records.
    const producer = kafkaClient(bootstrap, `backend-${topic}`).producer({ createPartitioner: Partitioners.DefaultPartitioner, allowAutoTopicCreation: false, idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    return new KafkaBackend(producer, topic, partitions, base);
  }

  /** Writes records in order (key = channel, value = JSON) and returns their edgepush ids. */
  async send(records: readonly Record[]): Promise<string[]> {
    const routed = records.map((r) => ({ key: r.channel, value: JSON.stringify(r.data), partition: partitionOf(r.channel, this.partitions) }));
    const results = await this.producer.send({ topic: this.topic, acks: -1, messages: routed });
    const next = new Map(results.map((r) => [r.partition, Number(r.baseOffset)]));
    return routed.map((m) => {
      const offset = next.get(m.partition) as number;
      next.set(m.partition, offset + 1);
      return `${this.base + m.partition}-${offset}`;
    });
  }

  async disconnect(): Promise<void> {
    await this.producer.disconnect();
  }
}
