/**
 * Reads partitions by offset straight from their leaders (Kafka's Fetch request), with no consumer
 * group: nothing to join, nothing to commit, no wait on `group.initial.rebalance.delay.ms`. Every
 * node reads every partition itself, so a group would only add a coordinator in the way.
 *
 * One fetcher serves one reader at a time (the tail, or the range reader): the client keeps one
 * incremental fetch session per broker, and two requests in flight on one session would race.
 */
import { IS_CONTROL, ListOffsetTimestamps, type Consumer, type RecordsBatch } from '@platformatic/kafka';
import type { LogRecord } from '../log/source.js';

/** A partition of a configured topic, with its global index (the topic's base + the partition number). */
export interface PartitionRef {
  readonly topic: string;
  readonly partition: number;
  readonly index: number;
}

export interface FetchWant {
  readonly index: number;
  /** The next offset to read. */
  readonly offset: number;
}

export interface PartitionFetch {
  readonly index: number;
  /** Records at or after the wanted offset, in order (control records left out). */
  readonly records: LogRecord[];
  /** Where the next read of this partition starts (past control batches too). */
  readonly nextOffset: number;
  /** -1 when the broker did not say (the partition failed: see bounds()). */
  readonly highWatermark: number;
  readonly logStartOffset: number;
  /** Kafka's name of the partition's error, e.g. OFFSET_OUT_OF_RANGE. */
  readonly error?: string;
}

type FetchRequestTopic = Parameters<Consumer['fetch']>[0]['topics'][number];
type FetchResponse = Awaited<ReturnType<Consumer['fetch']>>;

/** Set on timestamps written by the broker (LogAppendTime): every record of the batch has maxTimestamp. */
const LOG_APPEND_TIME = 1 << 3;

export class PartitionFetcher {
  readonly #consumer: Consumer;
  readonly #refs: readonly PartitionRef[];
  readonly #topics: string[];

  constructor(consumer: Consumer, refs: readonly PartitionRef[]) {
    this.#consumer = consumer;
    this.#refs = refs;
    this.#topics = [...new Set(refs.map((r) => r.topic))];
    // The client resolves topic ids and leaders from the topics it tracks.
    consumer.topics.trackAll(...this.#topics);
  }

  /**
   * One Fetch per leader broker for `wants`, answered when any has data or after `maxWaitMs`.
   * Partition errors come back per partition; a broker that cannot be reached rejects the whole call.
   */
  async fetch(wants: readonly FetchWant[], maxWaitMs: number, partitionMaxBytes: number): Promise<PartitionFetch[]> {
    const metadata = await this.#consumer.metadata({ topics: this.#topics });
    const byNode = new Map<number, Map<string, FetchRequestTopic>>();
    const refOf = new Map<string, PartitionRef>();
    const wantOf = new Map<number, number>();
    for (const want of wants) {
      const ref = this.#refs[want.index] as PartitionRef;
      const topic = metadata.topics.get(ref.topic);
      const leader = topic?.partitions[ref.partition]?.leader;
      if (topic === undefined || leader === undefined || leader < 0) continue;
      let topics = byNode.get(leader);
      if (!topics) byNode.set(leader, (topics = new Map()));
      let entry = topics.get(topic.id);
      if (!entry) topics.set(topic.id, (entry = { topicId: topic.id, partitions: [] }));
      entry.partitions.push({ partition: ref.partition, fetchOffset: BigInt(want.offset), currentLeaderEpoch: -1, lastFetchedEpoch: -1, partitionMaxBytes });
      refOf.set(`${topic.id}:${ref.partition}`, ref);
      wantOf.set(want.index, want.offset);
    }
    const responses = await Promise.all(
      [...byNode].map(async ([node, topics]) => {
        try {
          return await this.#consumer.fetch({ node, topics: [...topics.values()], maxWaitTime: maxWaitMs, maxBytes: partitionMaxBytes * 4 });
        } catch (error) {
          // A partition's error (e.g. an offset retention deleted) fails the request, but the
          // response with every partition's data rides along on the error.
          const response = (error as { response?: FetchResponse }).response;
          if (response?.responses) return response;
          throw error;
        }
      }),
    );
    const results: PartitionFetch[] = [];
    for (const response of responses) {
      for (const topic of response.responses) {
        for (const part of topic.partitions) {
          const ref = refOf.get(`${topic.topicId}:${part.partitionIndex}`);
          if (!ref) continue;
          const from = wantOf.get(ref.index) as number;
          const decoded = decode(ref.index, from, part.records ?? []);
          const error = part.errorCode === 0 ? undefined : errorName(part.errorCode);
          results.push({
            index: ref.index,
            records: decoded.records,
            nextOffset: decoded.nextOffset,
            highWatermark: Number(part.highWatermark),
            logStartOffset: Number(part.logStartOffset),
            ...(error !== undefined ? { error } : {}),
          });
        }
      }
    }
    return results;
  }

  /**
   * The first offset still held and the end of a partition. A Fetch out of range does not say
   * (the broker answers -1 for both), so a reader asks here before it moves.
   */
  async bounds(index: number): Promise<{ low: number; high: number }> {
    const ref = this.#refs[index] as PartitionRef;
    const ask = async (timestamp: bigint): Promise<number> => {
      const offsets = await this.#consumer.listOffsets({ topics: [ref.topic], partitions: { [ref.topic]: [ref.partition] }, timestamp });
      return Number(offsets.get(ref.topic)?.[ref.partition] ?? -1n);
    };
    const [low, high] = await Promise.all([ask(ListOffsetTimestamps.EARLIEST), ask(ListOffsetTimestamps.LATEST)]);
    return { low, high };
  }
}

function decode(index: number, from: number, batches: readonly RecordsBatch[]): { records: LogRecord[]; nextOffset: number } {
  const records: LogRecord[] = [];
  let nextOffset = from;
  for (const batch of batches) {
    const first = Number(batch.firstOffset);
    nextOffset = Math.max(nextOffset, first + batch.lastOffsetDelta + 1);
    if (batch.attributes & IS_CONTROL) continue;
    const appendTime = (batch.attributes & LOG_APPEND_TIME) !== 0;
    for (const record of batch.records) {
      const offset = first + record.offsetDelta;
      // A fetch starts at the batch holding the wanted offset, so earlier records come along.
      if (offset < from) continue;
      const headers: Record<string, string> = {};
      for (const [name, value] of record.headers) {
        // The first value of a repeated header wins, as it did for every client before.
        if (name !== null && value !== null && !(name.toString() in headers)) headers[name.toString()] = value.toString();
      }
      records.push({
        partition: index,
        offset,
        key: record.key === null ? null : record.key.toString('utf8'),
        value: record.value,
        headers,
        timestamp: Number(appendTime ? batch.maxTimestamp : batch.firstTimestamp + record.timestampDelta),
      });
    }
  }
  return { records, nextOffset };
}

/** Kafka's protocol names for the partition errors a reader acts on; others keep their number. */
const ERROR_NAMES: Record<number, string> = {
  1: 'OFFSET_OUT_OF_RANGE',
  3: 'UNKNOWN_TOPIC_OR_PARTITION',
  5: 'LEADER_NOT_AVAILABLE',
  6: 'NOT_LEADER_OR_FOLLOWER',
  29: 'TOPIC_AUTHORIZATION_FAILED',
  74: 'FENCED_LEADER_EPOCH',
  75: 'UNKNOWN_LEADER_EPOCH',
  100: 'UNKNOWN_TOPIC_ID',
};

function errorName(code: number): string {
  return ERROR_NAMES[code] ?? `KAFKA_ERROR_${code}`;
}
