/**
 * Reads a past range of one partition back from Kafka, for a resume older than the rings (deep
 * resume). A short-lived consumer of its own seeks the partition, reads up to the end of the range
 * and leaves. What retention has already deleted is reported, so the caller can name the loss.
 */
import { randomBytes } from 'node:crypto';
import type { Admin, Kafka } from 'kafkajs';
import type { LogRecord } from '../source/source.js';
import { fetchOffsets } from './topic-offsets.js';

export interface RangeResult {
  /** Records after `afterOffset` up to `upToOffset`, in order (fewer when some were deleted). */
  readonly records: LogRecord[];
  /** Set when retention deleted the start of the range: the first offset still held. */
  readonly firstAvailable?: number;
}

/** Longest a range read may take before it is abandoned (and answered with a reset). */
const READ_TIMEOUT_MS = 30_000;

export async function readPartitionRange(
  kafka: Kafka,
  admin: Admin,
  target: { topic: string; partition: number; index: number },
  afterOffset: number,
  upToOffset: number,
  maxRecords: number,
  clientId: string,
): Promise<RangeResult> {
  const offsets = await fetchOffsets(admin, target.topic);
  const bounds = offsets.find((o) => o.partition === target.partition);
  const low = Number(bounds?.low ?? 0);
  const high = Number(bounds?.high ?? 0);
  const from = Math.max(afterOffset + 1, low);
  const to = Math.min(upToOffset, high - 1);
  const firstAvailable = afterOffset + 1 < low ? low : undefined;
  const result = (records: LogRecord[]): RangeResult => (firstAvailable === undefined ? { records } : { records, firstAvailable });
  if (from > to) return result([]);
  if (to - from + 1 > maxRecords) throw new RangeTooLargeError(to - from + 1, maxRecords);

  const consumer = kafka.consumer({ groupId: `edgepush-${clientId}-range-${randomBytes(6).toString('hex')}`, allowAutoTopicCreation: false, sessionTimeout: 30_000 });
  const records: LogRecord[] = [];
  try {
    await consumer.connect();
    await consumer.subscribe({ topics: [target.topic], fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`reading ${target.topic}/${target.partition} ${from}..${to} took over ${READ_TIMEOUT_MS} ms`)), READ_TIMEOUT_MS);
      // Only the target partition is read; the group assigns the whole topic, so pause the rest.
      const others = offsets.map((o) => o.partition).filter((p) => p !== target.partition);
      consumer.on(consumer.events.GROUP_JOIN, () => {
        if (others.length > 0) consumer.pause([{ topic: target.topic, partitions: others }]);
        consumer.seek({ topic: target.topic, partition: target.partition, offset: String(from) });
      });
      consumer
        .run({
          autoCommit: false,
          eachBatch: async ({ batch, resolveOffset }) => {
            if (batch.partition !== target.partition) return;
            for (const message of batch.messages) {
              const offset = Number(message.offset);
              resolveOffset(message.offset);
              if (offset < from || offset > to) continue;
              const headers: Record<string, string> = {};
              for (const [name, value] of Object.entries(message.headers ?? {})) {
                const first = Array.isArray(value) ? value[0] : value;
                if (first !== undefined) headers[name] = first.toString();
              }
              records.push({ partition: target.index, offset, key: message.key?.toString('utf8') ?? null, value: message.value, headers, timestamp: Number(message.timestamp) });
            }
            const last = batch.messages[batch.messages.length - 1];
            if (last && Number(last.offset) >= to) {
              clearTimeout(timer);
              resolve();
            }
          },
        })
        .catch(reject);
    });
  } finally {
    await consumer.disconnect().catch(() => {});
  }
  return result(records);
}

export class RangeTooLargeError extends Error {
  constructor(readonly size: number, readonly limit: number) {
    super(`the missing range holds ${size} records, over the deep-resume limit of ${limit}`);
  }
}
