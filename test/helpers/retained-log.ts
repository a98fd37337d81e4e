import { InProcessControlLog } from '../../src/log/control.js';
/**
 * A log for tests that keeps every record and can read a past range back: a stand-in for Kafka's
 * log that lets deep resume run in fast tests. Like Kafka it may have several partitions (a channel
 * always lands on the same one); `forget(offset)` plays retention on every partition.
 */
import { randomBytes } from 'node:crypto';
import { Frontier, messageId } from '../../src/log/position.js';
import type { LogRecord, PublishMessage, RecordHandler, Source } from '../../src/log/source.js';

export class RetainedLog implements Source {
  readonly kind = 'retained';
  readonly control = new InProcessControlLog();
  readonly sessions = new InProcessControlLog();
  readonly epoch = randomBytes(5).toString('hex').replace(/[^0-9a-z]/g, '0');
  readonly start: Frontier;
  readonly writable = true;
  /** False plays a source still reading back at start (GET /readyz answers 503). */
  ready = true;
  readonly records: LogRecord[] = [];
  /** Range reads served, for tests that check the log was consulted. */
  reads = 0;
  /** When set, range reads wait for it: a slow log, for tests of what happens meanwhile. */
  gate: Promise<void> | undefined;
  /** Called as each range read starts. */
  onRead: () => void = () => {};
  readonly #next: number[];
  #firstKept = 0;
  #handler: RecordHandler | undefined;

  constructor(
    readonly partitions = 1,
    /** Which partition a channel lands on (Kafka hashes the key; tests may choose). */
    private readonly partitionOf: (channel: string) => number = () => 0,
  ) {
    this.start = Frontier.empty(this.epoch, partitions);
    this.#next = new Array<number>(partitions).fill(0);
  }

  async open(handler: RecordHandler): Promise<void> {
    this.#handler = handler;
  }

  async publish(messages: readonly PublishMessage[]): Promise<string[]> {
    const records = messages.map((message): LogRecord => {
      const partition = this.partitionOf(message.channel);
      const offset = (this.#next[partition] as number)++;
      return { partition, offset, key: message.channel, value: null, headers: {}, timestamp: Date.now(), payload: message.payload };
    });
    this.records.push(...records);
    this.#handler?.(records);
    return records.map((r) => messageId(r.partition, r.offset, undefined));
  }

  async readRange(partition: number, afterOffset: number, upToOffset: number): Promise<{ records: LogRecord[]; firstAvailable?: number }> {
    this.reads++;
    this.onRead();
    await this.gate;
    const records = this.records.filter((r) => r.partition === partition && r.offset > afterOffset && r.offset <= upToOffset && r.offset >= this.#firstKept);
    return afterOffset + 1 < this.#firstKept ? { records, firstAvailable: this.#firstKept } : { records };
  }

  /** Drops every record before `offset` on every partition, as retention would. */
  forget(offset: number): void {
    this.#firstKept = offset;
  }

  async close(): Promise<void> {
    this.#handler = undefined;
  }
}
