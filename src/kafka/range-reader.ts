/**
 * Reads past ranges of partitions back from Kafka, for resumes older than the rings (deep resume).
 * One reader per node, long-lived, on a fetcher of its own: requests queue, at most `maxActive`
 * are read at once (one per partition per round, all of a round's partitions in one Fetch per
 * broker), and each is bounded by `maxRecords`. What retention has already deleted is reported,
 * so the caller can name the loss.
 */
import type { LogRecord } from '../log/source.js';
import type { PartitionFetcher } from './partition-fetcher.js';

export interface RangeResult {
  /** Records after `afterOffset` up to `upToOffset`, in order (fewer when some were deleted). */
  readonly records: LogRecord[];
  /** Set when retention deleted the start of the range: the first offset still held. */
  readonly firstAvailable?: number;
}

export interface RangeReaderOptions {
  /** Most records one range may hold (deepResumeMaxRecords). */
  readonly maxRecords: number;
  /** Ranges read at the same time; the rest wait their turn. Bounds the records held in memory. */
  readonly maxActive: number;
  /** Longest a range may take, waiting included, before it is abandoned (and answered with a reset). */
  readonly timeoutMs: number;
  /** Bytes asked of one partition per Fetch. */
  readonly partitionMaxBytes: number;
}

export class RangeTooLargeError extends Error {
  constructor(readonly size: number, readonly limit: number) {
    super(`the missing range holds ${size} records, over the deep-resume limit of ${limit}`);
  }
}

interface Request {
  readonly index: number;
  /** The next offset to read. */
  next: number;
  /** The last offset wanted (lowered to the high watermark once known). */
  to: number;
  sized: boolean;
  readonly records: LogRecord[];
  firstAvailable?: number;
  readonly deadline: number;
  readonly resolve: (result: RangeResult) => void;
  readonly reject: (error: Error) => void;
}

export class RangeReader {
  readonly #fetcher: PartitionFetcher;
  readonly #options: RangeReaderOptions;
  readonly #queue: Request[] = [];
  #pumping = false;
  #closed = false;
  /** Records read back since start, for the metrics. */
  recordsRead = 0;

  constructor(fetcher: PartitionFetcher, options: RangeReaderOptions) {
    this.#fetcher = fetcher;
    this.#options = options;
  }

  /** Records of partition `index` after `afterOffset` up to and including `upToOffset`. */
  read(index: number, afterOffset: number, upToOffset: number): Promise<RangeResult> {
    if (this.#closed) return Promise.reject(new Error('the Kafka range reader is closed'));
    if (upToOffset <= afterOffset) return Promise.resolve({ records: [] });
    // The size limit is checked after the first fetch: retention may have deleted most of the range.
    return new Promise((resolve, reject) => {
      this.#queue.push({ index, next: afterOffset + 1, to: upToOffset, sized: false, records: [], deadline: Date.now() + this.#options.timeoutMs, resolve, reject });
      void this.#pump();
    });
  }

  close(): void {
    this.#closed = true;
    for (const request of this.#queue.splice(0)) request.reject(new Error('the server is shutting down'));
  }

  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (this.#queue.length > 0 && !this.#closed) {
        const active = this.#round();
        const progress = active.map((r) => r.next);
        try {
          const results = await this.#fetcher.fetch(
            active.map((r) => ({ index: r.index, offset: r.next })),
            0,
            this.#options.partitionMaxBytes,
          );
          for (const result of results) {
            const request = active.find((r) => r.index === result.index);
            if (!request) continue;
            if (result.error === 'OFFSET_OUT_OF_RANGE') {
              const { low } = await this.#fetcher.bounds(result.index);
              if (request.next < low) {
                // Retention deleted the start of the range: report it, read what is left.
                request.firstAvailable = low;
                request.next = low;
                continue;
              }
            }
            if (result.error !== undefined) {
              this.#finish(request, new Error(`reading ${result.index} failed: ${result.error}`));
              continue;
            }
            if (!request.sized) {
              request.sized = true;
              request.to = Math.min(request.to, result.highWatermark - 1);
              const size = request.to - request.next + 1;
              if (size > this.#options.maxRecords) {
                this.#finish(request, new RangeTooLargeError(size, this.#options.maxRecords));
                continue;
              }
            }
            for (const record of result.records) if (record.offset <= request.to) request.records.push(record);
            request.next = Math.max(request.next, result.nextOffset);
            this.recordsRead += result.records.length;
            if (request.next > request.to) this.#finish(request);
          }
        } catch (error) {
          // The broker is unreachable: every request of the round fails alike (each becomes a reset).
          for (const request of active) this.#finish(request, error as Error);
        }
        const now = Date.now();
        for (const request of [...this.#queue]) {
          if (now > request.deadline) this.#finish(request, new Error(`reading the range took over ${this.#options.timeoutMs} ms`));
        }
        // A partition without a leader answers nothing: wait for the election rather than spin.
        if (active.every((r, i) => this.#queue.includes(r) && r.next === progress[i])) await new Promise((resolve) => setTimeout(resolve, 200));
      }
    } finally {
      this.#pumping = false;
    }
  }

  /** The requests read this round: the oldest per partition, at most maxActive of them. */
  #round(): Request[] {
    const chosen: Request[] = [];
    const partitions = new Set<number>();
    for (const request of this.#queue) {
      if (chosen.length >= this.#options.maxActive) break;
      if (partitions.has(request.index)) continue;
      partitions.add(request.index);
      chosen.push(request);
    }
    return chosen;
  }

  #finish(request: Request, error?: Error): void {
    const at = this.#queue.indexOf(request);
    if (at < 0) return;
    this.#queue.splice(at, 1);
    if (error) request.reject(error);
    else request.resolve(request.firstAvailable === undefined ? { records: request.records } : { records: request.records, firstAvailable: request.firstAvailable });
  }
}
