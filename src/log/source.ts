/**
 * A source is a log of records with positions: the embedded in-process log, or Kafka. The engine
 * never sees which one; both hand over records in order per partition and take publishes.
 */
import type { Frontier } from './position.js';
import type { Payload } from '../protocol/envelope.js';
import type { ControlLog } from './control.js';

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
  /** True once the start-up read-back is done and live records flow (GET /readyz). */
  readonly ready: boolean;
  /** Carries server-API commands to every node (docs/protocol.md "Server API"). */
  readonly control: ControlLog;
  /** MQTT persistent session states, known to every node (docs/mqtt.md "Persistent sessions"). */
  readonly sessions: ControlLog;
  /** How reading the log goes, for the metrics; sources with nothing to report leave it out. */
  health?(): SourceHealth;
  close(): Promise<void>;
}

export interface PartitionStatus {
  readonly topic: string;
  readonly partition: number;
  /** The partition's end (next offset to be written) as last seen; -1 before the first read. */
  readonly highWatermark: number;
  /** The next offset this node reads. */
  readonly position: number;
  /** Records written but not yet read by this node; -1 before the first read. */
  readonly lag: number;
  /** Age of the newest record ingested (its timestamp to now); -1 before the first. */
  readonly newestRecordAgeSeconds: number;
}

export interface SourceHealth {
  /** False while the log cannot be read (broker down, topic deleted, credentials refused). */
  readonly reachable: boolean;
  /** Read failures since start, by kind. */
  readonly failures: Readonly<Record<string, number>>;
  /** Records deleted by retention before this node could read them. */
  readonly skippedRecords: number;
  /** Records read back for deep resumes. */
  readonly recordsReadBack: number;
  readonly partitions: readonly PartitionStatus[];
}
