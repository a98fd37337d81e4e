/**
 * Reads back from the log what the rings no longer hold (rule 3 of architecture.md): for each
 * partition, the records after the client's cursor up to where the rings take over, routed like
 * live records and filtered to the wanted channels. Each message gets its own cursor, the client's
 * cursor advanced record by record, so a client that drops halfway resumes exactly. What the log no
 * longer holds (retention), or a range over the limit, becomes a reset notice naming the loss.
 */
import type { ResetNotice } from '../engine/engine.js';
import { WHOLE_RECORD, messageId, type Frontier } from '../log/position.js';
import { PreparedMessage } from '../engine/prepared-message.js';
import { rateLimitedLog, type Logger } from '../logger.js';
import type { RecordRouter } from '../routing/record-router.js';
import type { LogRecord } from '../log/source.js';
import { compileFilter, isPattern, matches } from '../protocol/channel-filter.js';

/** A log that can read a past range of one partition. */
export interface RangeSource {
  readRange(partition: number, afterOffset: number, upToOffset: number): Promise<{ records: LogRecord[]; firstAvailable?: number }>;
}

/** Whether `source` can read its past (Kafka can; the embedded log keeps none). */
export function isRangeSource(source: object): source is RangeSource {
  return typeof (source as Partial<RangeSource>).readRange === 'function';
}

/** Per partition, the position up to which messages must come from the log. */
export type Gaps = ReadonlyMap<number, { readonly offset: number; readonly item: number }>;

export interface ReadBack {
  /** Read back, in log order per partition, each with its own cursor. */
  readonly messages: PreparedMessage[];
  /** What the log could not give: retention, the record limit, a failed read. */
  readonly resets: ResetNotice[];
  /** Records read from the log (all channels), for the metrics. */
  readonly records: number;
}

export class LogReadBack {
  /** Resumes come at request rate, and so would this line while Kafka is down: a few a second. */
  readonly #warn: (line: string, details?: object) => void;

  constructor(
    private readonly source: RangeSource,
    private readonly router: RecordRouter,
    log: Logger,
  ) {
    this.#warn = rateLimitedLog(5, (line, details) => log.warn(details ?? {}, line));
  }

  /** The messages of `channels` after `cursor` up to `gaps` (inclusive), one range per partition. */
  async read(channels: readonly string[], cursor: Frontier, gaps: Gaps): Promise<ReadBack> {
    const messages: PreparedMessage[] = [];
    const resets: ResetNotice[] = [];
    const wanted = channelMatcher(channels);
    let records = 0;
    let at = cursor;
    for (const [partition, upTo] of gaps) {
      const end = at.withPosition(partition, upTo.offset, upTo.item);
      const seenOffset = at.offsets[partition] as number;
      const seenItem = at.items[partition] as number;
      try {
        // A split record seen only in part is read again; its items up to the cursor are skipped.
        const after = seenItem === WHOLE_RECORD ? seenOffset : seenOffset - 1;
        const range = await this.source.readRange(partition, after, upTo.offset);
        records += range.records.length;
        if (range.firstAvailable !== undefined) {
          const lostTo = at.withPosition(partition, range.firstAvailable - 1, WHOLE_RECORD);
          for (const channel of channels) resets.push(lostNotice(channel, cursor, lostTo, 'the log no longer holds these messages (retention)'));
        }
        at = this.#replay(range.records, wanted, at, end, messages);
      } catch (error) {
        this.#warn('resume could not read the log', { err: error, partition });
        for (const channel of channels) resets.push(lostNotice(channel, cursor, end, `messages could not be read back from the log: ${(error as Error).message}`));
      }
      at = at.max(end);
    }
    return { messages, resets, records };
  }

  /** Routes records like live ones and keeps the messages of `wanted` channels after `start`, up to `end`. */
  #replay(records: readonly LogRecord[], wanted: (channel: string) => boolean, start: Frontier, end: Frontier, out: PreparedMessage[]): Frontier {
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
        if (!wanted(message.channel)) return;
        out.push(new PreparedMessage(message.channel, record.partition, record.offset, item, messageId(record.partition, record.offset, message.item), message.ts, message.payload, cursor, 0, now));
      });
      if (last < 0) cursor = cursor.max(cursor.withPosition(record.partition, record.offset, WHOLE_RECORD));
    }
    return cursor;
  }
}

/** Does a channel belong to a request of channels and patterns? */
function channelMatcher(channels: readonly string[]): (channel: string) => boolean {
  const exact = new Set(channels.filter((channel) => !isPattern(channel)));
  const patterns = channels.filter(isPattern).map(compileFilter);
  if (patterns.length === 0) return (channel) => exact.has(channel);
  return (channel) => exact.has(channel) || patterns.some((pattern) => matches(pattern, channel));
}

/** `from` is the client's own cursor, as protocol.md promises; `to` where what follows is complete. */
function lostNotice(channel: string, from: Frontier, to: Frontier, message: string): ResetNotice {
  return { reason: 'cursor_expired', channel, message, from: from.toString(), to: to.toString() };
}
