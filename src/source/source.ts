/**
 * A source is a log of records with positions: the embedded in-process log, or Kafka. The engine
 * never sees which one; both hand over records in order per partition and take publishes.
 */
import type { Frontier } from '../engine/position.js';
import type { Payload } from '../protocol/envelope.js';

export interface LogRecord {
  /** Partition index across all configured topics (stable across nodes). */
  readonly partition: number;
  readonly offset: number;
  readonly key: string | null;
  readonly value: Uint8Array | null;
  readonly headers: Readonly<Record<string, string>>;
  /** Record timestamp in ms. */
  readonly timestamp: number;
  /** Set by sources that already hold the parsed payload (the embedded log), to skip re-parsing. */
  readonly payload?: Payload;
}

/** Receives records in order per partition. Must not throw for a bad record: count it and go on. */
export type RecordHandler = (records: readonly LogRecord[]) => void;

export interface PublishMessage {
  readonly channel: string;
  readonly payload: Payload;
}

export interface Source {
  readonly kind: string;
  /** Names the log: cursors from another epoch are answered with a reset. */
  readonly epoch: string;
  readonly partitions: number;
  /** The source delivers every record after this frontier (its read-back start). */
  readonly start: Frontier;
  /** Begins delivering records to `handler`. */
  open(handler: RecordHandler): Promise<void>;
  /** Appends messages to the log; resolves with their message ids, in order. */
  publish(messages: readonly PublishMessage[]): Promise<string[]>;
  /** False while the log cannot take publishes (the broker is unreachable). */
  readonly writable: boolean;
  close(): Promise<void>;
}
