/**
 * Deep resume (rule 3 of architecture.md): a cursor older than what the rings hold is served from
 * the log itself. The missing range of each partition is read once for all channels of the
 * request, routed like live records, filtered to those channels, and sent with cursors that advance
 * record by record; the client's cursor then continues from the end of that range, and the
 * ordinary synchronous subscribe serves the rest from the rings. What the log no longer holds
 * (retention), or a range over the limit, becomes a reset notice naming the loss.
 */
import type { Logger } from '../logger.js';
import type { RecordRouter } from '../routing/record-router.js';
import type { LogRecord } from '../source/source.js';
import type { ChannelEngine, ResetNotice, ResumePoint } from './engine.js';
import { WHOLE_RECORD, messageId, type Frontier } from './position.js';
import { PreparedMessage } from './prepared-message.js';

/** A log that can read a past range of one partition. */
export interface RangeSource {
  readRange(partition: number, afterOffset: number, upToOffset: number): Promise<{ records: LogRecord[]; firstAvailable?: number }>;
}

/** Whether `source` can serve deep resume (Kafka can; the embedded log keeps no past). */
export function isRangeSource(source: object): source is RangeSource {
  return typeof (source as Partial<RangeSource>).readRange === 'function';
}

export interface DeepResumeResult {
  /** Where the subscription continues after `messages`. */
  readonly from: ResumePoint;
  /** Messages read from the log, in log order per partition, each with its own cursor. */
  readonly messages: PreparedMessage[];
  readonly resets: ResetNotice[];
}

/** Rings may evict while the log is read; a few rounds catch up with that, then resets take over. */
const MAX_ROUNDS = 3;

export class DeepResume {
  constructor(
    private readonly engine: ChannelEngine,
    private readonly source: RangeSource,
    private readonly router: RecordRouter,
    private readonly log: Logger,
  ) {}

  /** Needs the log only when the cursor is older than the rings of `channels`. */
  async resolve(channels: readonly string[], from: ResumePoint): Promise<DeepResumeResult> {
    if (from.kind !== 'cursor') return { from, messages: [], resets: [] };
    let cursor = from.cursor;
    const messages: PreparedMessage[] = [];
    const resets: ResetNotice[] = [];
    const wanted = new Set(channels);
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const gaps = this.engine.gaps(channels, cursor);
      if (gaps.size === 0) break;
      for (const [partition, upTo] of gaps) {
        const end = cursor.withPosition(partition, upTo.offset, upTo.item);
        const seenOffset = cursor.offsets[partition] as number;
        const seenItem = cursor.items[partition] as number;
        try {
          // A split record seen only in part is read again; its items up to the cursor are skipped.
          const after = seenItem === WHOLE_RECORD ? seenOffset : seenOffset - 1;
          const range = await this.source.readRange(partition, after, upTo.offset);
          if (range.firstAvailable !== undefined) {
            const lostTo = cursor.withPosition(partition, range.firstAvailable - 1, WHOLE_RECORD);
            for (const channel of channels) resets.push(lostNotice(channel, cursor, lostTo, 'the log no longer holds these messages (retention)'));
          }
          cursor = this.#replay(range.records, wanted, cursor, end, messages);
        } catch (error) {
          this.log.warn({ err: error, partition }, 'deep resume could not read the log');
          for (const channel of channels) resets.push(lostNotice(channel, cursor, end, `messages could not be read back from the log: ${(error as Error).message}`));
        }
        cursor = cursor.max(end);
      }
    }
    return { from: { kind: 'cursor', cursor }, messages, resets };
  }

  /** Routes records like live ones and keeps the messages of `wanted` channels after `cursor`. */
  #replay(records: readonly LogRecord[], wanted: ReadonlySet<string>, start: Frontier, end: Frontier, out: PreparedMessage[]): Frontier {
    let cursor = start;
    const now = Date.now();
    for (const record of records) {
      const routed = this.router.route(record);
      if (!routed.ok) continue;
      const last = routed.messages.length - 1;
      routed.messages.forEach((message, i) => {
        const item = message.item ?? 0;
        if (record.offset > (end.offsets[record.partition] as number) || !end.includes(record.partition, record.offset, item)) return;
        if (cursor.includes(record.partition, record.offset, item)) return;
        cursor = cursor.withPosition(record.partition, record.offset, i === last ? WHOLE_RECORD : item);
        if (!wanted.has(message.channel)) return;
        out.push(new PreparedMessage(message.channel, record.partition, record.offset, item, messageId(record.partition, record.offset, message.item), message.ts, message.payload, cursor, 0, now));
      });
      if (last < 0) cursor = cursor.max(cursor.withPosition(record.partition, record.offset, WHOLE_RECORD));
    }
    return cursor;
  }
}

function lostNotice(channel: string, from: Frontier, to: Frontier, message: string): ResetNotice {
  return { reason: 'cursor_expired', channel, message, from: from.toString(), to: to.toString() };
}
