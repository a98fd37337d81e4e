/**
 * Turns log records into channel messages. This first router takes the channel from the record key
 * and the payload from the value; a record it cannot route is reported and skipped, never fatal.
 */
import type { RoutedMessage } from '../log/routed-message.js';
import { publishedChannelProblem } from '../protocol/channel-filter.js';
import { payloadFromBytes } from '../protocol/envelope.js';
import type { LogRecord } from '../log/source.js';

export interface BadRecord {
  readonly record: LogRecord;
  readonly problem: string;
}

export type RouteResult =
  | { ok: true; messages: RoutedMessage[]; /** Items of a split record that could not be routed. */ skipped?: string[] }
  | { ok: false; problem: string };

export interface RecordRouter {
  route(record: LogRecord): RouteResult;
}

export class KeyRouter implements RecordRouter {
  constructor(private readonly maxMessageBytes: number) {}

  route(record: LogRecord): RouteResult {
    const channel = record.key;
    if (channel === null) return { ok: false, problem: 'record has no key to name its channel' };
    const problem = publishedChannelProblem(channel);
    if (problem) return { ok: false, problem: `record key is not a valid channel name: ${problem}` };
    const payload = record.payload ?? payloadFromBytes(record.value ?? new Uint8Array(0));
    if (payload.bytes > this.maxMessageBytes) {
      return { ok: false, problem: `record value is ${payload.bytes} bytes, over the ${this.maxMessageBytes}-byte message limit` };
    }
    return { ok: true, messages: [{ channel, payload, ts: record.timestamp }] };
  }
}
