// The deep-resume reader on a stand-in fetcher (a partition log in memory that answers like Kafka's
// Fetch: whole batches from the one holding the wanted offset, OFFSET_OUT_OF_RANGE below the log
// start): ranges come back exact, concurrent ranges are bounded, limits and retention are reported.
import { describe, expect, it } from 'vitest';
import type { PartitionFetch, PartitionFetcher } from '../../../src/kafka/partition-fetcher.js';
import { RangeReader, RangeTooLargeError } from '../../../src/kafka/range-reader.js';
import type { LogRecord } from '../../../src/log/source.js';

/** Partitions of `length` records each, in batches of `batch`; `low` plays retention. */
class FakeFetcher {
  readonly low: number[];
  /** Most partitions asked in one fetch, and how many fetches there were. */
  widest = 0;
  fetches = 0;
  constructor(readonly length: number[], readonly batch: number, low?: number[]) {
    this.low = low ?? length.map(() => 0);
  }

  async fetch(wants: ReadonlyArray<{ index: number; offset: number }>): Promise<PartitionFetch[]> {
    this.fetches++;
    this.widest = Math.max(this.widest, wants.length);
    await Promise.resolve();
    return wants.map(({ index, offset }) => {
      const high = this.length[index] as number;
      const low = this.low[index] as number;
      if (offset < low || offset > high) return { index, records: [], nextOffset: offset, highWatermark: -1, logStartOffset: -1, error: 'OFFSET_OUT_OF_RANGE' };
      // From the start of the batch that holds `offset`, like Kafka; at most two batches per fetch.
      const first = Math.max(low, offset - (offset % this.batch));
      const last = Math.min(high, first + 2 * this.batch);
      const records: LogRecord[] = [];
      for (let o = first; o < last; o++) if (o >= offset) records.push({ partition: index, offset: o, key: 'k', value: null, headers: {}, timestamp: 0 });
      return { index, records, nextOffset: last, highWatermark: high, logStartOffset: low };
    });
  }

  async bounds(index: number): Promise<{ low: number; high: number }> {
    return { low: this.low[index] as number, high: this.length[index] as number };
  }
}

function reader(fetcher: FakeFetcher, maxRecords = 1000, maxActive = 2): RangeReader {
  return new RangeReader(fetcher as unknown as PartitionFetcher, { maxRecords, maxActive, timeoutMs: 10_000, partitionMaxBytes: 1 << 20 });
}

const offsets = (records: readonly LogRecord[]): number[] => records.map((r) => r.offset);
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('RangeReader', () => {
  it('reads exactly (after, upTo] of a partition, whatever batch the fetch starts at', async () => {
    const ranges = reader(new FakeFetcher([500], 7));
    expect(offsets((await ranges.read(0, 12, 200)).records)).toEqual(range(13, 200));
    expect(offsets((await ranges.read(0, -1, 3)).records)).toEqual(range(0, 3));
    expect((await ranges.read(0, 50, 50)).records).toEqual([]);
  });

  it('serves many concurrent ranges over several partitions, at most maxActive partitions per fetch', async () => {
    const fetcher = new FakeFetcher([300, 300, 300, 300], 10);
    const ranges = reader(fetcher, 1000, 2);
    const asked = Array.from({ length: 12 }, (_, i) => ({ index: i % 4, after: i * 10 - 1, upTo: 100 + i * 15 }));
    const results = await Promise.all(asked.map((a) => ranges.read(a.index, a.after, a.upTo)));
    results.forEach((result, i) => expect(offsets(result.records)).toEqual(range(asked[i]!.after + 1, asked[i]!.upTo)));
    expect(fetcher.widest).toBeLessThanOrEqual(2);
    expect(ranges.recordsRead).toBeGreaterThan(0);
  });

  it('a range past the high watermark ends at it', async () => {
    const ranges = reader(new FakeFetcher([40], 8));
    expect(offsets((await ranges.read(0, 30, 1000)).records)).toEqual(range(31, 39));
  });

  it('retention: firstAvailable names the first offset still held, and the rest is read', async () => {
    const ranges = reader(new FakeFetcher([100], 10, [45]));
    const result = await ranges.read(0, 9, 80);
    expect(result.firstAvailable).toBe(45);
    expect(offsets(result.records)).toEqual(range(45, 80));
  });

  it('a range over maxRecords is refused with its size; one that retention shortened below it is read', async () => {
    await expect(reader(new FakeFetcher([1000], 10), 100).read(0, -1, 500)).rejects.toEqual(new RangeTooLargeError(501, 100));
    const shortened = await reader(new FakeFetcher([1000], 10, [450]), 100).read(0, -1, 500);
    expect(offsets(shortened.records)).toEqual(range(450, 500));
  });

  it('closing answers every queued range with an error', async () => {
    const ranges = reader(new FakeFetcher([1000], 10));
    const pending = ranges.read(0, -1, 900);
    ranges.close();
    await expect(pending).rejects.toThrow(/shutting down/);
  });
});
