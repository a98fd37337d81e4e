/**
 * A channel message prepared for fan-out: every wire format's bytes are produced at most once and
 * the same Buffer is handed to every subscriber using that format.
 */
import { envelopeFields, type Payload } from '../protocol/envelope.js';
import type { Frontier } from './position.js';

/**
 * A way of putting a message on the wire (an SSE block, a WebSocket frame, …). Transports define
 * their formats; the engine only memoises the bytes, so it never learns what SSE or WebSocket is.
 */
export interface WireFormat {
  readonly name: string;
  /** Index into each message's memo; assigned by {@link defineWireFormat}. */
  readonly slot: number;
  /** Bytes for `message` carrying `cursor`; must be pure (the result is shared). */
  encode(message: PreparedMessage, cursor: string): Buffer;
}

let nextSlot = 0;

export function defineWireFormat(name: string, encode: (message: PreparedMessage, cursor: string) => Buffer): WireFormat {
  return { name, slot: nextSlot++, encode };
}

export class PreparedMessage {
  #fields: string | undefined;
  readonly #encodings: (Buffer | undefined)[] = [];

  constructor(
    readonly channel: string,
    readonly partition: number,
    readonly offset: number,
    /** Item index within the record (0 for records that were not split). */
    readonly item: number,
    readonly id: string,
    /** Source timestamp in ms (Kafka record time, or publish time). */
    readonly ts: number,
    readonly payload: Payload,
    /** The node's frontier right after this message: what its cursor says. */
    readonly frontier: Frontier,
    /** Node-local dispatch order, for merging several channels' backlogs. */
    readonly seq: number,
    /** Node-local arrival time in ms, for age-bounded rings. */
    readonly receivedAt: number,
  ) {}

  /** Approximate memory this message holds, for ring byte limits. */
  get size(): number {
    return this.payload.json.length + this.channel.length + 64;
  }

  get cursor(): string {
    return this.frontier.toString();
  }

  /** Envelope JSON fields without braces, shared by every format that embeds the envelope. */
  get envelopeFields(): string {
    this.#fields ??= envelopeFields(this.channel, this.id, this.ts, this.payload);
    return this.#fields;
  }

  get envelope(): string {
    return '{' + this.envelopeFields + '}';
  }

  /** The shared bytes of this message in `format`. */
  encoded(format: WireFormat): Buffer {
    let bytes = this.#encodings[format.slot];
    if (bytes === undefined) {
      bytes = format.encode(this, this.cursor);
      this.#encodings[format.slot] = bytes;
    }
    return bytes;
  }

  /**
   * Bytes carrying another cursor than the message's own: only for a subscriber whose cursor is
   * ahead of this node on some partition (it came from a node that had read further), where the
   * shared cursor would move the client's cursor backwards.
   */
  encodedWithCursor(format: WireFormat, cursor: Frontier): Buffer {
    return format.encode(this, this.frontier.max(cursor).toString());
  }

  /** True when this message is at or before `cursor` (the holder of `cursor` has it already). */
  isCoveredBy(cursor: Frontier): boolean {
    return cursor.includes(this.partition, this.offset, this.item);
  }
}
