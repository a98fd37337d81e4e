/**
 * What routing makes of a log record (zero or more channel messages) and what takes them: the
 * vocabulary shared by routing, which produces them, and the engine, which fans them out.
 */
import type { Payload } from '../protocol/envelope.js';

/** One channel message routed out of a log record. */
export interface RoutedMessage {
  readonly channel: string;
  readonly payload: Payload;
  /** Source timestamp in ms. */
  readonly ts: number;
  /** Index within a split record; undefined when the record was not split. */
  readonly item?: number;
}

/** Takes one log record's channel messages, in log order per partition (the channel engine). */
export interface MessageSink {
  dispatchRecord(partition: number, offset: number, messages: readonly RoutedMessage[]): void;
}
