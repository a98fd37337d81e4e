/**
 * The live tail: every partition of the configured topics, read in order from where this node
 * stopped, with no consumer group (every node reads everything; a group would split the partitions
 * among nodes, which is not wanted, and would only add a coordinator). A broker outage, a deleted
 * topic or refused credentials stop nothing: the tail retries with backoff, says so once per change
 * of state, and the server goes on serving what it holds.
 */
import type { Logger } from '../logger.js';
import type { LogRecord, RecordHandler } from '../log/source.js';
import { describeKafkaError, failureKind, type KafkaFailureKind } from './kafka-client.js';
import type { PartitionFetcher, PartitionFetch, PartitionRef } from './partition-fetcher.js';

/** How long the broker holds a fetch with nothing new: records arrive at once either way; this bounds a shutdown. */
const MAX_WAIT_MS = 1000;
const PARTITION_MAX_BYTES = 1 << 20;
const MAX_BACKOFF_MS = 5000;

export interface TailState {
  /** Last offset handed to the handler (or skipped past) per partition index. */
  readonly positions: number[];
  /** High watermark per partition index as of the last fetch; -1 before the first. */
  readonly highWatermarks: number[];
  /** Timestamp (ms) of the newest record ingested per partition index; 0 before the first. */
  readonly newestTimestamps: number[];
  /** Failures by kind since start. */
  readonly failures: Record<KafkaFailureKind, number>;
  /** Records retention deleted before this node could read them. */
  skippedRecords: number;
  /** The current failure, while the tail cannot read. */
  failing: { kind: KafkaFailureKind; message: string } | undefined;
}

export class TailReader {
  readonly state: TailState;
  readonly #fetcher: PartitionFetcher;
  readonly #refs: readonly PartitionRef[];
  readonly #log: Logger;
  /** Starts every log line: `kafka`, or what else this tail reads (the control topic's). */
  readonly #label: string;
  #stopped = false;
  #loop: Promise<void> | undefined;
  /** Called after every fetch round (the source checks whether its start-up read-back is done). */
  onProgress: () => void = () => {};

  constructor(fetcher: PartitionFetcher, refs: readonly PartitionRef[], start: readonly number[], log: Logger, label = 'kafka') {
    this.#fetcher = fetcher;
    this.#refs = refs;
    this.#log = log;
    this.#label = label;
    this.state = {
      positions: start.slice(),
      highWatermarks: start.map(() => -1),
      newestTimestamps: start.map(() => 0),
      failures: { unreachable: 0, authentication: 0, missing_topic: 0, other: 0 },
      skippedRecords: 0,
      failing: undefined,
    };
  }

  start(handler: RecordHandler): void {
    this.#loop ??= this.#run(handler);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#loop;
  }

  async #run(handler: RecordHandler): Promise<void> {
    let backoff = 200;
    while (!this.#stopped) {
      let failure: unknown;
      try {
        const wants = this.state.positions.map((position, index) => ({ index, offset: position + 1 }));
        const results = await this.#fetcher.fetch(wants, MAX_WAIT_MS, PARTITION_MAX_BYTES);
        for (const result of results) {
          if (result.error === 'OFFSET_OUT_OF_RANGE') await this.#skipMissing(result.index);
          else failure = this.#take(result, handler) ?? failure;
        }
      } catch (error) {
        failure = error;
      }
      if (failure === undefined) {
        this.#recovered();
        backoff = 200;
      } else {
        this.#failed(failure);
        await new Promise((resolve) => setTimeout(resolve, backoff));
        backoff = Math.min(MAX_BACKOFF_MS, backoff * 2);
      }
      this.onProgress();
    }
  }

  /** Hands one partition's records over; returns its failure, if any. */
  #take(result: PartitionFetch, handler: RecordHandler): Error | undefined {
    const { index } = result;
    const ref = this.#refs[index] as PartitionRef;
    if (result.error !== undefined) {
      const error = new Error(`${ref.topic}/${ref.partition}: ${result.error}`) as Error & { apiId: string };
      error.apiId = result.error;
      return error;
    }
    this.state.highWatermarks[index] = result.highWatermark;
    if (result.records.length > 0) {
      handler(result.records);
      this.state.newestTimestamps[index] = (result.records[result.records.length - 1] as LogRecord).timestamp;
    }
    if (result.nextOffset - 1 > (this.state.positions[index] as number)) this.state.positions[index] = result.nextOffset - 1;
    return undefined;
  }

  /**
   * Retention deleted records this node had not read yet (it was down, or far behind): they are
   * gone for everyone, so go on from the first record still held, and say how many were skipped.
   * (An offset past the end means the partition was truncated: go on from its new end.)
   */
  async #skipMissing(index: number): Promise<void> {
    const ref = this.#refs[index] as PartitionRef;
    const next = (this.state.positions[index] as number) + 1;
    const { low, high } = await this.#fetcher.bounds(index);
    const target = next < low ? low : Math.min(next, high);
    if (target === next) return;
    if (target > next) this.state.skippedRecords += target - next;
    this.#log.warn({ topic: ref.topic, partition: ref.partition, from: next, to: target }, `${this.#label}: ${ref.topic}/${ref.partition} does not hold offset ${next}; continuing at ${target}`);
    this.state.positions[index] = target - 1;
  }

  #failed(error: unknown): void {
    const kind = failureKind(error);
    const message = describeKafkaError(error);
    this.state.failures[kind]++;
    const previous = this.state.failing;
    this.state.failing = { kind, message };
    // One line per change of state, not one per retry.
    if (previous?.kind !== kind) this.#log.error({ kind }, `${this.#label}: cannot read (${kind.replace('_', ' ')}): ${message}; retrying, still serving what this node holds`);
  }

  #recovered(): void {
    if (this.state.failing === undefined) return;
    this.#log.info(`${this.#label}: reading again after: ${this.state.failing.message}`);
    this.state.failing = undefined;
  }
}
