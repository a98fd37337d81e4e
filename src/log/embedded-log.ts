/**
 * The embedded log: the default source when no Kafka is configured, so the server runs on a fresh
 * machine with nothing else installed. One partition, offsets from 0, held in memory only; a new
 * epoch at every start, so cursors from a previous run are recognised and answered with a reset.
 */
import { randomBytes } from 'node:crypto';
import { InProcessControlLog } from './control.js';
import { Frontier, messageId } from './position.js';
import type { LogRecord, PublishMessage, RecordHandler, Source } from './source.js';

export class EmbeddedLog implements Source {
  readonly kind = 'embedded';
  readonly epoch: string;
  readonly partitions = 1;
  readonly start: Frontier;
  readonly writable = true;
  /** Nothing to read back at start: ready as soon as it exists. */
  readonly ready = true;
  readonly control = new InProcessControlLog();
  readonly sessions = new InProcessControlLog();
  #nextOffset = 0;
  #handler: RecordHandler | undefined;

  constructor(epoch: string = newEpoch()) {
    this.epoch = epoch;
    this.start = Frontier.empty(epoch, 1);
  }

  async open(handler: RecordHandler): Promise<void> {
    this.#handler = handler;
  }

  /** Appends and delivers synchronously: by the time the ids return, subscribers have the messages. */
  async publish(messages: readonly PublishMessage[]): Promise<string[]> {
    if (!this.#handler) throw new Error('embedded log is not open');
    const now = Date.now();
    const records: LogRecord[] = messages.map((message) => ({
      partition: 0,
      offset: this.#nextOffset++,
      key: message.channel,
      value: null,
      headers: {},
      timestamp: now,
      payload: message.payload,
    }));
    this.#handler(records);
    return records.map((record) => messageId(0, record.offset, undefined));
  }

  async close(): Promise<void> {
    this.#handler = undefined;
  }
}

/** 10 base-36 characters of randomness: unique per start for all practical purposes. */
function newEpoch(): string {
  const bytes = randomBytes(8);
  return (bytes.readBigUInt64BE() % 36n ** 10n).toString(36).padStart(10, '0');
}
