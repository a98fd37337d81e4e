/**
 * Eliding (docs/protocol.md "Eliding"): a subscription with `maxRate=<ms>` gets at most one
 * message per channel per interval. The first goes at once; what arrives during the interval
 * replaces what is waiting, and the latest goes at its end with `elided: n` (how many it replaced).
 * The final value of a burst is never dropped.
 *
 * The work is done once per class, not per subscriber: every subscription of one channel (or
 * pattern) with one interval shares a class, its timers (one per channel with a window open) and
 * the bytes of what it sends. Cursors of elided messages never cover a message still waiting in
 * any class: a client that leaves mid-interval resumes before it, and gets that final value.
 */
import { WHOLE_RECORD, type Frontier } from '../log/position.js';
import type { Subscriber } from './channel.js';
import { computeDeltaFields, type DeltaBase, type PreparedMessage, type WireFormat } from './prepared-message.js';
import type { DeltaCodec } from '../delta/codec.js';

/** Time and timers, injectable so tests can drive intervals without waiting. */
export interface Scheduler {
  now(): number;
  schedule(ms: number, run: () => void): { cancel(): void };
}

export const REAL_SCHEDULER: Scheduler = {
  now: Date.now,
  schedule(ms, run) {
    const timer = setTimeout(run, ms);
    timer.unref();
    return { cancel: () => clearTimeout(timer) };
  },
};

/** One message sent on elided subscriptions: its `elided` count and the cursor it carries, encoded once per format. */
export class Emission {
  readonly #encodings = new Map<string, Buffer>();
  /** Per codec variant: the delta's envelope fields against `base`, null when the full message is smaller. */
  readonly #deltas: (string | null | undefined)[] = [];

  constructor(
    readonly message: PreparedMessage,
    /** Messages of its channel this one replaced (skipped) since the last one sent. */
    readonly elided: number,
    readonly cursor: Frontier,
    /** The class's previous message of this channel: what a delta is computed against (once per class). */
    readonly base?: DeltaBase,
  ) {}

  /** The envelope fields as a delta against `base` with `codec`, or undefined for the full message. */
  #deltaFields(codec: DeltaCodec): string | undefined {
    let fields = this.#deltas[codec.variant];
    if (fields === undefined) {
      fields = computeDeltaFields(this.message, this.base, codec);
      this.#deltas[codec.variant] = fields;
    }
    return fields ?? undefined;
  }

  fields(sub: string | undefined, codec: DeltaCodec | null = null): string {
    const prefix = sub === undefined ? '' : `"sub":${JSON.stringify(sub)},`;
    const body = (codec ? this.#deltaFields(codec) : undefined) ?? this.message.envelopeFields;
    return `${prefix}"elided":${this.elided},${body}`;
  }

  /**
   * Shared by every subscriber in `format` (and, for a pattern on a WebSocket, naming it); a delta
   * with `codec` when the caller checked the subscriber holds `base`.
   */
  encoded(format: WireFormat, sub?: string, codec: DeltaCodec | null = null): Buffer {
    const key = `${format.slot}\n${codec?.variant ?? 0}\n${sub ?? ''}`;
    let bytes = this.#encodings.get(key);
    if (bytes === undefined) {
      bytes = format.encode(this.fields(sub, codec), this.cursor.toString());
      this.#encodings.set(key, bytes);
    }
    return bytes;
  }

  /** With another cursor: a subscriber whose cursor is ahead of this node (see PreparedMessage.encodedWithCursor). */
  encodedWithCursor(format: WireFormat, cursor: Frontier, sub?: string, codec: DeltaCodec | null = null): Buffer {
    return format.encode(this.fields(sub, codec), this.cursor.max(cursor).toString());
  }
}

/** A subscription that takes elided messages. */
export interface ElisionMember {
  emit(emission: Emission): void;
}

/** One channel's interval within a class: open while messages come faster than the interval. */
interface Window {
  /** The latest message waiting for the interval's end: what will be sent. */
  pending: PreparedMessage | undefined;
  /**
   * The first message waiting since the last one sent: `pending` stands for it and every one after
   * it, so no cursor may cover it until `pending` is sent (Elider.capped).
   */
  firstWaiting: PreparedMessage | undefined;
  skipped: number;
  timer: { cancel(): void };
}

/** The subscriptions of one channel or pattern with one interval. */
/** Channels a class remembers its last sent message of (delta bases); past it, it starts again. */
const MAX_DELTA_BASES = 1024;

class ElisionClass implements Subscriber {
  readonly members = new Set<ElisionMember>();
  readonly #windows = new Map<string, Window>();
  /** Per channel, the last message this class sent: the base of its next delta. */
  readonly #sent = new Map<string, DeltaBase>();

  constructor(
    readonly key: string,
    readonly interval: number,
    private readonly elider: Elider,
  ) {}

  deliver(message: PreparedMessage): void {
    const window = this.#windows.get(message.channel);
    if (window === undefined) {
      // Nothing sent on this channel for an interval: at once, and a window opens.
      const opened: Window = { pending: undefined, firstWaiting: undefined, skipped: 0, timer: this.elider.scheduler.schedule(this.interval, () => this.#close(message.channel, opened)) };
      this.#windows.set(message.channel, opened);
      this.#emit(message, 0);
      return;
    }
    if (window.pending !== undefined) {
      window.skipped++;
      // Counted as it is replaced, not when its replacement goes out an interval later.
      this.elider.stats.elided++;
    } else {
      window.firstWaiting = message;
      this.elider.pend(message);
    }
    window.pending = message;
  }

  /** The interval is over: send what waited (and keep the window for another interval), or close it. */
  #close(channel: string, window: Window): void {
    const pending = window.pending;
    if (pending === undefined) {
      this.#windows.delete(channel);
      return;
    }
    const skipped = window.skipped;
    this.elider.unpend(window.firstWaiting as PreparedMessage);
    window.pending = undefined;
    window.firstWaiting = undefined;
    window.skipped = 0;
    window.timer = this.elider.scheduler.schedule(this.interval, () => this.#close(channel, window));
    this.#emit(pending, skipped);
  }

  #emit(message: PreparedMessage, elided: number): void {
    const emission = new Emission(message, elided, this.elider.capped(message.frontier), this.#sent.get(message.channel));
    if (this.#sent.size >= MAX_DELTA_BASES && !this.#sent.has(message.channel)) this.#sent.clear();
    this.#sent.set(message.channel, { id: message.id, payload: message.payload });
    this.elider.stats.sent++;
    for (const member of this.members) {
      try {
        member.emit(emission);
      } catch (error) {
        this.elider.onError(error, message.channel);
      }
    }
  }

  /** The last member left: no timers, and nothing waiting counts any more. */
  close(): void {
    for (const window of this.#windows.values()) {
      window.timer.cancel();
      if (window.firstWaiting !== undefined) this.elider.unpend(window.firstWaiting);
    }
    this.#windows.clear();
  }
}

/** Where a class registers for live messages: the engine. */
export interface ElisionSource {
  subscribe(channel: string, subscriber: Subscriber, from: { readonly kind: 'now' }): unknown;
  unsubscribe(channel: string, subscriber: Subscriber): void;
}

export class Elider {
  readonly stats = { sent: 0, elided: 0 };
  onError: (error: unknown, channel: string) => void = () => {};
  readonly #classes = new Map<string, ElisionClass>();
  /** Per waiting window of any class, the first message it stands for (Window.firstWaiting). */
  readonly #pending = new Set<PreparedMessage>();

  constructor(
    private readonly source: ElisionSource,
    readonly scheduler: Scheduler = REAL_SCHEDULER,
  ) {}

  get classCount(): number {
    return this.#classes.size;
  }

  /** `member` takes `key` (a channel or pattern) at most once per `interval` ms per channel. */
  join(key: string, interval: number, member: ElisionMember): void {
    const id = `${interval}\n${key}`;
    let cls = this.#classes.get(id);
    if (cls === undefined) {
      cls = new ElisionClass(key, interval, this);
      this.#classes.set(id, cls);
      this.source.subscribe(key, cls, { kind: 'now' });
    }
    cls.members.add(member);
  }

  leave(key: string, interval: number, member: ElisionMember): void {
    const id = `${interval}\n${key}`;
    const cls = this.#classes.get(id);
    if (cls === undefined || !cls.members.delete(member) || cls.members.size > 0) return;
    this.#classes.delete(id);
    this.source.unsubscribe(key, cls);
    cls.close();
  }

  pend(message: PreparedMessage): void {
    this.#pending.add(message);
  }

  unpend(message: PreparedMessage): void {
    this.#pending.delete(message);
  }

  /**
   * `frontier` lowered to just before every waiting message it covers, and every message a waiting
   * one replaced: the cursor of an elided message (or a heartbeat) must not claim a final value,
   * or a count of replaced messages, that the client has not been sent yet.
   */
  capped(frontier: Frontier): Frontier {
    if (this.#pending.size === 0) return frontier;
    let out = frontier;
    for (const waiting of this.#pending) {
      if (!out.includes(waiting.partition, waiting.offset, waiting.item)) continue;
      out = waiting.item > 0 ? out.withPosition(waiting.partition, waiting.offset, waiting.item - 1) : out.withPosition(waiting.partition, waiting.offset - 1, WHOLE_RECORD);
    }
    return out;
  }
}

/**
 * A backlog (read back from the log, then the rings', in order) reduced for an elided
 * subscription: the latest message per channel, with how many it stands for, each carrying the
 * furthest cursor of the messages up to it (so skipped ones are covered and no cursor goes back).
 */
export function elideBacklog(messages: readonly PreparedMessage[]): Emission[] {
  const last = new Map<string, number>();
  const counts = new Map<string, number>();
  messages.forEach((message, index) => {
    last.set(message.channel, index);
    counts.set(message.channel, (counts.get(message.channel) ?? 0) + 1);
  });
  const out: Emission[] = [];
  let cursor: Frontier | undefined;
  messages.forEach((message, index) => {
    cursor = cursor === undefined ? message.frontier : cursor.max(message.frontier);
    if (last.get(message.channel) === index) out.push(new Emission(message, (counts.get(message.channel) as number) - 1, cursor));
  });
  return out;
}
