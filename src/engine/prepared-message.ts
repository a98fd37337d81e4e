/**
 * A channel message prepared for fan-out: every wire format's bytes are produced at most once and
 * the same Buffer is handed to every subscriber using that format.
 */
import { DELTA_VARIANTS, type DeltaCodec, type DeltaFormat } from '../delta/codec.js';
import { deltaEnvelopeFields, envelopeFields, type Payload } from '../protocol/envelope.js';
import type { Frontier } from '../log/position.js';

/**
 * A way of putting a message on the wire (an SSE block, a WebSocket frame, …). Transports define
 * their formats; the engine only memoises the bytes, so it never learns what SSE or WebSocket is.
 */
export interface WireFormat {
  readonly name: string;
  /** Index into each message's memo; assigned by {@link defineWireFormat}. */
  readonly slot: number;
  /**
   * Bytes for a message whose envelope fields (without braces, full or delta) are `fields`,
   * carrying `cursor`. Must be pure: the result is shared.
   */
  encode(fields: string, cursor: string): Buffer;
}

let nextSlot = 0;

/** Envelope fields that also name the pattern subscription a message came through. */
function withSub(sub: string, fields: string): string {
  return `"sub":${JSON.stringify(sub)},${fields}`;
}

export function defineWireFormat(name: string, encode: (fields: string, cursor: string) => Buffer): WireFormat {
  return { name, slot: nextSlot++, encode };
}

/** What a delta is computed against: the channel's previous message. */
export interface DeltaBase {
  readonly id: string;
  readonly payload: Payload;
}

export class PreparedMessage {
  #fields: string | undefined;
  readonly #encodings: (Buffer | undefined)[] = [];
  /** Encodings a transport builds from the message itself (MQTT PUBLISH templates), by the key it chose. */
  #memo: Map<object, unknown> | undefined;
  /** Bytes naming a pattern subscription (`sub`), by format, delta variant and pattern; rarely needed. */
  #byPattern: Map<string, Buffer> | undefined;
  /** Per codec variant: the delta's envelope fields, null when the full message is smaller. */
  readonly #deltas: (string | null | undefined)[] = [];
  /**
   * The channel's previous message, set once when the message joins its channel. Only its id and
   * payload are kept (not the message), so no chain of old messages is held alive.
   */
  deltaBase: DeltaBase | undefined;

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
    /** Where the bytes its deltas save are counted (the engine's stats); none for messages read back. */
    readonly deltaSavings?: Record<DeltaFormat, number>,
  ) {}

  /**
   * Something a transport derives from this message once and shares across its subscribers (an
   * MQTT PUBLISH), memoised under `key` (one object per kind of encoding).
   */
  memo<T>(key: object, build: () => T): T {
    this.#memo ??= new Map();
    let value = this.#memo.get(key) as T | undefined;
    if (value === undefined) {
      value = build();
      this.#memo.set(key, value);
    }
    return value;
  }

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

  /**
   * The envelope fields of this message as a delta against its base with `codec`, or undefined
   * when the full message is to be sent (no base, or the delta is not smaller). Computed at most
   * once per codec, on first need: channels nobody asked deltas for cost nothing.
   */
  deltaFields(codec: DeltaCodec): string | undefined {
    let fields = this.#deltas[codec.variant];
    if (fields === undefined) {
      fields = computeDeltaFields(this, this.deltaBase, codec);
      this.#deltas[codec.variant] = fields;
    }
    return fields ?? undefined;
  }

  /**
   * The shared bytes of this message in `format`: a delta with `codec` when one is worth sending
   * (the caller has checked the client holds the base), else the full message.
   */
  encoded(format: WireFormat, codec: DeltaCodec | null = null, sub?: string): Buffer {
    const delta = codec ? this.deltaFields(codec) : undefined;
    const index = format.slot * DELTA_VARIANTS + (delta === undefined ? 0 : (codec as DeltaCodec).variant);
    if (sub !== undefined) return this.#tagged(format, index, delta, sub);
    let bytes = this.#encodings[index];
    if (bytes === undefined) {
      bytes = format.encode(delta ?? this.envelopeFields, this.cursor);
      this.#encodings[index] = bytes;
    }
    return bytes;
  }

  /**
   * The bytes for subscribers of the pattern `sub` (which the envelope then names): shared by
   * every subscriber of that pattern, as the plain bytes are by a channel's.
   */
  #tagged(format: WireFormat, index: number, delta: string | undefined, sub: string): Buffer {
    this.#byPattern ??= new Map();
    const key = `${index}\n${sub}`;
    let bytes = this.#byPattern.get(key);
    if (bytes === undefined) {
      bytes = format.encode(withSub(sub, delta ?? this.envelopeFields), this.cursor);
      this.#byPattern.set(key, bytes);
    }
    return bytes;
  }

  /**
   * Bytes carrying another cursor than the message's own: only for a subscriber whose cursor is
   * ahead of this node on some partition (it came from a node that had read further), where the
   * shared cursor would move the client's cursor backwards.
   */
  encodedWithCursor(format: WireFormat, cursor: Frontier, codec: DeltaCodec | null = null, sub?: string): Buffer {
    const delta = codec ? this.deltaFields(codec) : undefined;
    const fields = delta ?? this.envelopeFields;
    return format.encode(sub === undefined ? fields : withSub(sub, fields), this.frontier.max(cursor).toString());
  }

  /**
   * A snapshot message (`snapshot=latest`): the newest of its channel, sent before live with the
   * subscription's start cursor (which covers it), flagged `"snapshot": true`. Built per
   * subscribe, not shared: it carries that subscribe's cursor.
   */
  encodedSnapshot(format: WireFormat, cursor: Frontier, sub?: string): Buffer {
    const fields = '"snapshot":true,' + this.envelopeFields;
    return format.encode(sub === undefined ? fields : withSub(sub, fields), cursor.toString());
  }

  /** True when this message is at or before `cursor` (the holder of `cursor` has it already). */
  isCoveredBy(cursor: Frontier): boolean {
    return cursor.includes(this.partition, this.offset, this.item);
  }
}

/**
 * The envelope fields of `message` as a delta against `base` with `codec`, or null when there is no
 * base or the delta is not smaller than the data. Callers memoise the answer per codec (a message
 * against its channel's previous one; an elided emission against its class's), so the saving is
 * counted once per delta computed.
 */
export function computeDeltaFields(message: PreparedMessage, base: DeltaBase | undefined, codec: DeltaCodec): string | null {
  if (!base) return null;
  const data = codec.diff(base.payload, message.payload);
  if (data === undefined || Buffer.byteLength(data) >= Buffer.byteLength(message.payload.json)) return null;
  const fields = deltaEnvelopeFields(message.channel, message.id, message.ts, message.payload, codec.format, base.id, data);
  countSaving(message, codec, fields);
  return fields;
}

/**
 * Counts what a delta of `message` just computed with `codec` saves on the wire: its full envelope
 * fields minus the delta's (every wire format wraps both alike).
 */
function countSaving(message: PreparedMessage, codec: DeltaCodec, deltaFields: string): void {
  const savings = message.deltaSavings;
  if (savings === undefined) return;
  const saved = Buffer.byteLength(message.envelopeFields) - Buffer.byteLength(deltaFields);
  // The delta's own fields (format, base) can outweigh a tiny saving on the data.
  if (saved > 0) savings[codec.format] += saved;
}
