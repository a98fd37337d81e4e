/**
 * The channel engine: turns routed log records into prepared messages, keeps each channel's ring,
 * fans messages out to subscribers and answers "what did this cursor miss?".
 *
 * It knows nothing about HTTP, sockets or Kafka. Dispatch and subscribe are synchronous, which is
 * what makes resume gap-free: a subscriber is registered and its backlog read in one step, so no
 * live message can slip between the two.
 */
import { LruMap } from './lru-map.js';
import { Channel, type Subscriber } from './channel.js';
import { Frontier, MutableFrontier, WHOLE_RECORD, messageId, parseCursor } from '../log/position.js';
import { PreparedMessage } from './prepared-message.js';
import { PatternIndex } from './pattern-index.js';
import { Elider, type Scheduler } from './elision.js';
import { compileFilter, isPattern, matches, type CompiledFilter } from '../protocol/channel-filter.js';
import type { RingLimits } from './ring.js';
import type { MessageSink, RoutedMessage } from '../log/routed-message.js';
import type { DeltaFormat } from '../delta/codec.js';
import { LatencyHistogram } from './latency-histogram.js';

export interface EngineOptions {
  /** Names the log; cursors from another epoch are answered with a reset. */
  readonly epoch: string;
  readonly partitions: number;
  readonly ring: RingLimits;
  /** Most channels kept without subscribers (their rings stay replayable until evicted). */
  readonly maxIdleChannels: number;
  /** Most ring bytes kept by channels without subscribers. */
  readonly maxIdleBytes: number;
  /** The node has seen every record after this frontier (its read-back start). Default: all. */
  readonly start?: Frontier;
  readonly now?: () => number;
  /** Timers for eliding (tests drive them by hand). */
  readonly scheduler?: Scheduler;
}

export type ResetReason = 'cursor_expired' | 'unknown_epoch' | 'bad_cursor';

/** Tells a client that its cursor could not be honoured exactly, and what may be missing. */
export interface ResetNotice {
  readonly reason: ResetReason;
  readonly channel: string;
  readonly message: string;
  /** The cursor the client asked to resume from, when it could be read. */
  readonly from?: string;
  /** Messages after `from` up to this cursor may be missing; what follows is complete. */
  readonly to?: string;
}

export interface Recovery {
  /** Messages to send before live ones, oldest first. */
  readonly backlog: PreparedMessage[];
  readonly reset?: ResetNotice;
}

/** A client's cursor read against this log: where to start, or why it cannot be used. */
export type ResumePoint =
  | { readonly kind: 'now' }
  | { readonly kind: 'cursor'; readonly cursor: Frontier }
  | { readonly kind: 'reset'; readonly reason: ResetReason; readonly message: string; readonly text: string };

const FROM_NOW: ResumePoint = Object.freeze({ kind: 'now' });

/** Cursors read lately, remembered (cursors and frontiers are immutable); the memo's bounds. */
const CURSOR_MEMO_COUNT = 1024;
const CURSOR_MEMO_MAX_LENGTH = 512;

export interface EngineStats {
  records: number;
  duplicateRecords: number;
  messages: number;
  deliveries: number;
  deliveryErrors: number;
  resets: Record<ResetReason, number>;
  evictedChannels: number;
  /** Messages a conflating session replaced with a newer one of the same channel before writing. */
  conflatedMessages: number;
  /** Bytes deltas saved, per codec: full envelope minus delta envelope, once per delta computed. */
  deltaSavedBytes: Record<DeltaFormat, number>;
}

/** A channel's traffic since the previous sample (see ChannelEngine.busiestChannels). */
export interface ChannelActivity {
  readonly channel: string;
  readonly messages: number;
  /** Its own subscribers (pattern subscribers matching it are not counted). */
  readonly subscribers: number;
}

export class ChannelEngine implements MessageSink {
  readonly epoch: string;
  readonly partitions: number;
  readonly stats: EngineStats = {
    records: 0,
    duplicateRecords: 0,
    messages: 0,
    deliveries: 0,
    deliveryErrors: 0,
    resets: { cursor_expired: 0, unknown_epoch: 0, bad_cursor: 0 },
    evictedChannels: 0,
    conflatedMessages: 0,
    deltaSavedBytes: { 'json-patch': 0, vcdiff: 0 },
  };
  /**
   * Seconds from a message's log timestamp to the end of its fan-out, observed once per message
   * that reached a subscriber (never per subscriber).
   */
  readonly deliveryLatency = new LatencyHistogram();
  /** Subscriptions with maxRate: shared per (channel or pattern, interval). */
  readonly elider: Elider;
  /** Called when a subscriber throws; fan-out to the others goes on. */
  onDeliveryError: (error: unknown, channel: string) => void = () => {};

  readonly #options: EngineOptions;
  readonly #now: () => number;
  readonly #frontier: MutableFrontier;
  readonly #start: Frontier;
  #seq = 0;
  readonly #active = new Map<string, Channel>();
  /** Live pattern subscriptions (`a/+`, `a/#`), matched against every message's channel. */
  readonly #patterns = new PatternIndex();
  readonly #idle: LruMap<string, Channel>;
  /** Where evicted channels stopped being replayable; consulted when a name comes back. */
  readonly #tombstones: LruMap<string, Frontier>;
  /** The oldest read goes first when full: the cursors pollers come back with are the newest. */
  readonly #cursorsRead = new LruMap<string, ResumePoint>({ maxCount: CURSOR_MEMO_COUNT });
  /** Past this frontier, any channel not in the maps or tombstones may have lost messages. */
  #forgottenThrough: Frontier;

  constructor(options: EngineOptions) {
    this.#options = options;
    this.epoch = options.epoch;
    this.partitions = options.partitions;
    this.#now = options.now ?? Date.now;
    this.#start = options.start ?? Frontier.empty(options.epoch, options.partitions);
    this.#frontier = new MutableFrontier(options.epoch, this.#start);
    this.#forgottenThrough = this.#start;
    this.elider = new Elider(this, options.scheduler);
    this.elider.onError = (error, channel) => {
      this.stats.deliveryErrors++;
      this.onDeliveryError(error, channel);
    };
    this.#tombstones = new LruMap<string, Frontier>({
      maxCount: options.maxIdleChannels,
      onEvict: (lost) => {
        this.#forgottenThrough = this.#forgottenThrough.max(lost);
      },
    });
    this.#idle = new LruMap<string, Channel>({
      maxCount: options.maxIdleChannels,
      maxSize: options.maxIdleBytes,
      sizeOf: (channel) => channel.ring.bytes + channel.name.length + 128,
      // Only our own delete() (a channel becoming active) keeps its history; a channel pushed out
      // loses it, and must leave a tombstone so a resume there gets a reset.
      onEvict: (_channel, name) => this.#forget(name),
    });
  }

  /** The last dispatched position of every partition. */
  frontier(): Frontier {
    return this.#frontier.snapshot();
  }

  get channelCounts(): { active: number; idle: number } {
    return { active: this.#active.size, idle: this.#idle.count };
  }

  /** Distinct live pattern subscriptions (`a/+`, `a/#`). */
  get patternCount(): number {
    return this.#patterns.size;
  }

  /**
   * The `limit` channels that took the most messages since the previous call, busiest first. For
   * the status page, about once a second: one pass over the channels held, reading the counter
   * each keeps, so dispatch pays one increment per message and fan-out nothing.
   */
  busiestChannels(limit: number): ChannelActivity[] {
    const top: ChannelActivity[] = [];
    const visit = (target: Channel): void => {
      const messages = target.takeMessageCount();
      if (messages === 0 || (top.length === limit && messages <= (top[limit - 1] as ChannelActivity).messages)) return;
      let at = top.length;
      while (at > 0 && (top[at - 1] as ChannelActivity).messages < messages) at--;
      top.splice(at, 0, { channel: target.name, messages, subscribers: target.subscribers.size });
      if (top.length > limit) top.pop();
    };
    for (const target of this.#active.values()) visit(target);
    // values() leaves the LRU's order alone: sampling is not a use.
    for (const target of this.#idle.values()) visit(target);
    return top;
  }

  /**
   * Takes one log record's channel messages (possibly none) and fans them out. Records at or
   * before the frontier were seen already (a re-delivery after a reconnect) and are skipped, so a
   * source may replay overlapping ranges without causing duplicates.
   */
  dispatchRecord(partition: number, offset: number, messages: readonly RoutedMessage[]): void {
    if (partition < 0 || partition >= this.partitions) throw new RangeError(`partition ${partition} is not in 0..${this.partitions - 1}`);
    if (offset <= (this.#frontier.offsets[partition] as number)) {
      this.stats.duplicateRecords++;
      return;
    }
    this.stats.records++;
    if (messages.length === 0) {
      this.#frontier.advance(partition, offset, WHOLE_RECORD);
      return;
    }
    const now = this.#now();
    for (let i = 0; i < messages.length; i++) {
      const routed = messages[i] as RoutedMessage;
      const item = routed.item ?? 0;
      this.#frontier.advance(partition, offset, i === messages.length - 1 ? WHOLE_RECORD : item);
      const message = new PreparedMessage(
        routed.channel,
        partition,
        offset,
        item,
        messageId(partition, offset, routed.item),
        routed.ts,
        routed.payload,
        this.#frontier.snapshot(),
        ++this.#seq,
        now,
        this.stats.deltaSavedBytes,
      );
      this.#append(message, now);
    }
  }

  /** Reads a client's cursor text (undefined or empty: start from now). */
  resumePoint(text: string | undefined): ResumePoint {
    if (text === undefined || text === '') return FROM_NOW;
    const known = this.#cursorsRead.peek(text);
    if (known !== undefined) return known;
    const parsed = parseCursor(text, this.epoch, this.partitions);
    if (!parsed.ok) return { kind: 'reset', reason: parsed.reason, message: parsed.message, text };
    const point: ResumePoint = { kind: 'cursor', cursor: parsed.frontier };
    // Pollers woken by the same message come back with the same cursor: each would read it again.
    if (text.length <= CURSOR_MEMO_MAX_LENGTH) this.#cursorsRead.set(text, point);
    return point;
  }

  /**
   * Registers `subscriber` on `channel` and returns what it missed since `from`, in one synchronous
   * step. Rules (architecture.md, "Positions"): nothing at or before the cursor; the ring's backlog
   * when it reaches back far enough; otherwise a reset notice and whatever the ring still holds.
   */
  subscribe(channel: string, subscriber: Subscriber, from: ResumePoint): Recovery {
    if (isPattern(channel)) {
      this.#patterns.add(channel, subscriber);
      return this.#recoverPattern(channel, from);
    }
    const target = this.#activate(channel);
    target.subscribers.add(subscriber);
    return this.#recover(target, from);
  }

  unsubscribe(channel: string, subscriber: Subscriber): void {
    if (isPattern(channel)) {
      this.#patterns.remove(channel, subscriber);
      return;
    }
    const target = this.#active.get(channel);
    if (!target || !target.subscribers.delete(subscriber)) return;
    if (target.subscribers.size === 0) {
      this.#active.delete(channel);
      this.#putIdle(target);
    }
  }

  /**
   * A cursor the client may store as soon as a subscription starts, before its backlog arrives:
   * just before the first backlog message, or the current frontier when there is no backlog. Never
   * behind the client's own cursor.
   */
  startCursor(from: ResumePoint, backlog: readonly PreparedMessage[]): Frontier {
    const first = backlog[0];
    let start = this.#frontier.snapshot();
    if (first) {
      start = first.item > 0
        ? first.frontier.withPosition(first.partition, first.offset, first.item - 1)
        : first.frontier.withPosition(first.partition, first.offset - 1, WHOLE_RECORD);
    }
    return from.kind === 'cursor' ? start.max(from.cursor) : start;
  }

  /**
   * Where `cursor` falls short of what the rings of `channels` can replay: per partition, the
   * position up to which messages would have to come from the log itself (deep resume).
   */
  gaps(channels: readonly string[], cursor: Frontier): Map<number, { offset: number; item: number }> {
    const gaps = new Map<number, { offset: number; item: number }>();
    for (const name of channels) {
      const existing = this.#active.get(name) ?? this.#idle.peek(name);
      const replayable = isPattern(name) ? this.#patternReplayableAfter(compileFilter(name), this.#held(name)) : existing ? existing.replayableAfter : this.#replayableAfterForNew(name, false);
      for (let p = 0; p < replayable.partitions; p++) {
        const offset = replayable.offsets[p] as number;
        const item = replayable.items[p] as number;
        if (cursor.includes(p, offset, item)) continue;
        const known = gaps.get(p);
        if (!known || offset > known.offset || (offset === known.offset && item > known.item)) gaps.set(p, { offset, item });
      }
    }
    return gaps;
  }

  /**
   * The dispatch number of the newest message the rings hold on `channels` (0 for none): it
   * changes whenever one of them gets a message, so an answer read from these rings is still the
   * answer while it stays the same. Exact channels only (a pattern's rings are not looked up).
   */
  newestSeq(channels: readonly string[]): number {
    let newest = 0;
    for (const name of channels) {
      const seq = (this.#active.get(name) ?? this.#idle.peek(name))?.ring.newest?.seq ?? 0;
      if (seq > newest) newest = seq;
    }
    return newest;
  }

  /** What a cursor missed on `channel`, without subscribing (long-poll, history). */
  recover(channel: string, from: ResumePoint): Recovery {
    if (isPattern(channel)) return this.#recoverPattern(channel, from);
    const existing = this.#active.get(channel) ?? this.#idle.get(channel);
    if (existing) return this.#recover(existing, from);
    // No ring at all: a throwaway empty channel answers with the same rules, without keeping state.
    return this.#recover(new Channel(channel, this.#options.ring, this.#replayableAfterForNew(channel, false)), from);
  }

  /**
   * The newest held message of `channel`, or of each held channel a pattern matches (oldest
   * first): what `snapshot=latest` sends before live, like an MQTT retained message.
   */
  latest(channel: string): PreparedMessage[] {
    const now = this.#now();
    const newest = (target: Channel): PreparedMessage[] => {
      target.ring.expire(now);
      const message = target.ring.newest;
      return message ? [message] : [];
    };
    if (isPattern(channel)) return mergeBacklogs(this.#held(channel).map((target) => ({ backlog: newest(target) })));
    const target = this.#active.get(channel) ?? this.#idle.peek(channel);
    return target ? newest(target) : [];
  }

  /** The newest `limit` messages of a channel, oldest first. */
  history(channel: string, limit: number): PreparedMessage[] {
    if (isPattern(channel)) {
      const now = this.#now();
      const newest = mergeBacklogs(this.#held(channel).map((target) => (target.ring.expire(now), { backlog: target.ring.latest(limit) })));
      return newest.slice(Math.max(0, newest.length - limit));
    }
    const target = this.#active.get(channel) ?? this.#idle.get(channel);
    if (!target) return [];
    target.ring.expire(this.#now());
    return target.ring.latest(limit);
  }

  /**
   * A pattern's recovery: the rings of every held channel it matches, merged in dispatch order.
   * Exact when the cursor covers what every one of those rings can vouch for, and also what the
   * channels it matches but the node no longer holds (forgotten by the idle LRU, or from before
   * the node started) may have carried: else a reset names the pattern and the range.
   */
  #recoverPattern(pattern: string, from: ResumePoint): Recovery {
    if (from.kind === 'now') return { backlog: [] };
    const now = this.#now();
    const held = this.#held(pattern);
    for (const target of held) target.ring.expire(now);
    if (from.kind === 'reset') {
      this.stats.resets[from.reason]++;
      const backlog = from.reason === 'unknown_epoch' ? mergeBacklogs(held.map((target) => ({ backlog: target.ring.latest(target.ring.count) }))) : [];
      return { backlog, reset: { reason: from.reason, channel: pattern, message: from.message } };
    }
    const backlog = mergeBacklogs(held.map((target) => ({ backlog: target.ring.since(from.cursor) })));
    const replayableAfter = this.#patternReplayableAfter(compileFilter(pattern), held);
    if (from.cursor.covers(replayableAfter)) return { backlog };
    this.stats.resets.cursor_expired++;
    return {
      backlog,
      reset: {
        reason: 'cursor_expired',
        channel: pattern,
        message: 'messages after the cursor on channels of this pattern are no longer held; some may be missing',
        from: from.cursor.toString(),
        to: replayableAfter.max(from.cursor).toString(),
      },
    };
  }

  /** The channels the node holds a ring for (subscribed or idle) that `pattern` matches. */
  #held(pattern: string): Channel[] {
    const filter = compileFilter(pattern);
    const found: Channel[] = [];
    for (const target of this.#active.values()) if (matches(filter, target.name)) found.push(target);
    for (const target of this.#idle.values()) if (matches(filter, target.name)) found.push(target);
    return found;
  }

  /**
   * After which frontier the rings hold every message of every channel `filter` matches: the
   * matching rings' own limits, the tombstones of matching channels the idle LRU dropped, and for
   * channels the node knows nothing of, where it stopped knowing (its start, or an evicted tombstone).
   */
  #patternReplayableAfter(filter: CompiledFilter, held: readonly Channel[]): Frontier {
    let after = this.#forgottenThrough;
    for (const target of held) after = after.max(target.replayableAfter);
    for (const [name, lost] of this.#tombstones.entries()) {
      if (matches(filter, name)) after = after.max(lost);
    }
    return after;
  }

  #recover(target: Channel, from: ResumePoint): Recovery {
    target.ring.expire(this.#now());
    if (from.kind === 'now') return { backlog: [] };
    if (from.kind === 'reset') {
      this.stats.resets[from.reason]++;
      const reset: ResetNotice = { reason: from.reason, channel: target.name, message: from.message };
      // A cursor of another epoch comes from a log that was replaced (the embedded log restarted):
      // everything this log holds is new to the client, so it gets all that is still replayable.
      // An unreadable cursor says nothing of what the client has, so it starts from now.
      const backlog = from.reason === 'unknown_epoch' ? target.ring.latest(target.ring.count) : [];
      return { backlog, reset };
    }
    const backlog = target.ring.since(from.cursor);
    if (target.canReplayFrom(from.cursor)) return { backlog };
    this.stats.resets.cursor_expired++;
    return {
      backlog,
      reset: {
        reason: 'cursor_expired',
        channel: target.name,
        message: 'messages after the cursor are no longer held; some may be missing',
        from: from.cursor.toString(),
        to: target.replayableAfter.max(from.cursor).toString(),
      },
    };
  }

  #append(message: PreparedMessage, now: number): void {
    this.stats.messages++;
    const deliveries = this.stats.deliveries;
    let target = this.#active.get(message.channel);
    if (target) {
      target.append(message, now);
      this.#deliver(target.subscribers, message);
    } else {
      target = this.#idle.get(message.channel) ?? new Channel(message.channel, this.#options.ring, this.#replayableAfterForNew(message.channel, true));
      target.append(message, now);
      this.#putIdle(target);
    }
    if (this.#patterns.size > 0) {
      for (const entry of target.patternMatches(this.#patterns)) this.#deliver(entry.subscribers, message);
    }
    // Fan-out is synchronous: every live subscriber has been handed the message by now.
    if (this.stats.deliveries !== deliveries) this.deliveryLatency.observe((this.#now() - message.ts) / 1000);
  }

  #deliver(subscribers: ReadonlySet<Subscriber>, message: PreparedMessage): void {
    for (const subscriber of subscribers) {
      try {
        subscriber.deliver(message);
        this.stats.deliveries++;
      } catch (error) {
        this.stats.deliveryErrors++;
        this.onDeliveryError(error, message.channel);
      }
    }
  }

  /** (Re)inserts an idle channel so the LRU counts its current size and evicts to stay in budget. */
  #putIdle(channel: Channel): void {
    // An entry over the whole budget is not kept: it is gone all the same.
    if (!this.#idle.set(channel.name, channel)) this.#forget(channel.name);
  }

  /** An idle channel's history is dropped: remember from where it can no longer be replayed. */
  #forget(name: string): void {
    this.stats.evictedChannels++;
    this.#tombstones.set(name, this.#frontier.snapshot());
  }

  #activate(name: string): Channel {
    let target = this.#active.get(name);
    if (target) return target;
    target = this.#idle.delete(name) ?? new Channel(name, this.#options.ring, this.#replayableAfterForNew(name, true));
    this.#active.set(name, target);
    return target;
  }

  /**
   * A channel the engine holds no ring for may have had messages before: when it was evicted, or
   * when the node started. Its ring can only vouch for what comes after all of those points.
   */
  #replayableAfterForNew(name: string, creating: boolean): Frontier {
    const tombstone = this.#tombstones.get(name);
    // Once the channel exists again its own replayableAfter carries the tombstone forward.
    if (tombstone && creating) this.#tombstones.delete(name);
    const base = this.#forgottenThrough;
    return tombstone ? base.max(tombstone) : base;
  }
}

/** Several channels' backlogs as one stream in dispatch order, which every cursor on it relies on. */
export function mergeBacklogs(recoveries: readonly Pick<Recovery, 'backlog'>[]): PreparedMessage[] {
  // Nearly always none or one (a poll that finds nothing, one channel): no arrays for those.
  let only: PreparedMessage[] | undefined;
  let count = 0;
  for (const recovery of recoveries) {
    if (recovery.backlog.length === 0) continue;
    only = recovery.backlog;
    count++;
  }
  if (count === 0) return [];
  if (count === 1) return only as PreparedMessage[];
  const withBacklog = recoveries.filter((recovery) => recovery.backlog.length > 0);
  const merged = withBacklog.flatMap((recovery) => recovery.backlog).sort((a, b) => a.seq - b.seq);
  // A channel and a pattern (or two patterns) matching it share its ring: each message once.
  return merged.filter((message, index) => index === 0 || merged[index - 1] !== message);
}
