/**
 * One client connection's subscriptions on a streaming transport (SSE, WebSocket).
 *
 * The session decides what to send and when to give up; the sink (the transport) only writes bytes.
 * The sink's own buffer is the outbox: it is counted, and a client that lets it grow past the limit
 * is disconnected with a "slow" code, to come back and resume from its cursor. Nothing is dropped
 * silently and nothing grows without bound.
 */
import type { DeltaCodec } from '../delta/codec.js';
import type { Disconnect } from '../errors.js';
import { DISCONNECTS } from '../errors.js';
import type { Subscriber } from './channel.js';
import type { ChannelEngine, Recovery, ResumePoint } from './engine.js';
import type { Frontier } from '../log/position.js';
import type { PreparedMessage, WireFormat } from './prepared-message.js';
import { compileFilter, isPattern, matches, type CompiledFilter } from '../protocol/channel-filter.js';
import { Emission, type ElisionMember } from './elision.js';

/** What a transport gives a session: a place to write shared bytes, and a way to hang up. */
export interface SessionSink {
  readonly format: WireFormat;
  /**
   * True when each subscription is its own stream (WebSocket: per-subscription cursors): a message
   * matching two subscriptions is sent through each, and one sent through a pattern names it in
   * `sub`. False (SSE): the session is one stream, and a message is sent once however many of its
   * subscriptions match it.
   */
  readonly streamPerSubscription: boolean;
  /** Bytes accepted by write() and not yet handed to the network. */
  readonly bufferedAmount: number;
  write(bytes: Buffer): void;
  /**
   * For a protocol that frames messages itself and per subscription (MQTT: QoS, packet ids,
   * RETAIN): the session decides what to send, in order and once, and hands the message over
   * instead of encoding it. `snapshot`: the newest held message sent at subscribe (retained).
   */
  writeMessage?(subscription: Subscription, message: PreparedMessage, snapshot: boolean): void;
  /** Ends the connection telling the client why; the transport then calls session.close(). */
  disconnect(reason: Disconnect): void;
}

export interface SessionLimits {
  /** Most bytes the outbox may hold before the client counts as slow. */
  readonly maxBufferedBytes: number;
}

/** What a subscription asks for when its client cannot keep up. */
export type OnSlow = 'disconnect' | 'conflate';

/** Channels a pattern subscription remembers a delta base for. */
const MAX_DELTA_BASES = 1024;

export class Subscription implements Subscriber, ElisionMember {
  /**
   * The client's cursor while it is ahead of this node on some partition (it came from a node that
   * had read further): messages at or before it are skipped, and the cursors sent are raised to it
   * so the client's cursor never moves backwards. Cleared once the node has caught up.
   */
  floor: Frontier | null;
  /**
   * The id of the last message sent on this subscription: a delta is sent only when its base is
   * exactly that message, so a delta never crosses a gap, a skip or a (re)subscribe.
   */
  lastSentId: string | undefined;
  /**
   * Live messages that arrived while the subscription was being resumed (a read from the log in
   * flight): sent, in order, once the backlog is out (Session.release). Null once released.
   */
  held: PreparedMessage[] | null = null;
  heldBytes = 0;
  /** An elided subscription's emissions while held: the latest per channel is all that matters. */
  heldEmissions: Map<string, Emission> | null = null;
  /** For a pattern (`a/+`, `a/#`): its levels, for routing; null for a single channel. */
  readonly filter: CompiledFilter | null;
  /**
   * A pattern subscription's last sent id per channel (a delta's base is per channel). Bounded:
   * when full it starts again, which only costs full messages until each channel's next one.
   */
  #lastSentIds: Map<string, string> | null = null;

  constructor(
    readonly session: Session,
    /** The channel, or the pattern, subscribed. */
    readonly channel: string,
    floor: Frontier | null,
    /** The delta codec the client asked for, or null for full messages. */
    readonly delta: DeltaCodec | null,
    /** Eliding: at most one message per channel per this many ms; 0 for every message. */
    readonly maxRate = 0,
    /** When the client cannot keep up: disconnect it (4008, it resumes), or keep the latest per channel. */
    readonly onSlow: OnSlow = 'disconnect',
  ) {
    this.floor = floor;
    this.filter = isPattern(channel) ? compileFilter(channel) : null;
  }

  emit(emission: Emission): void {
    if (this.held === null) this.session.sendEmission(this, emission);
    else (this.heldEmissions ??= new Map()).set(emission.message.channel, emission);
  }

  /** Does a message of `channel` belong to this subscription? */
  covers(channel: string): boolean {
    return this.filter === null ? channel === this.channel : matches(this.filter, channel);
  }

  lastSentOn(channel: string): string | undefined {
    return this.filter === null ? this.lastSentId : this.#lastSentIds?.get(channel);
  }

  sentOn(channel: string, id: string): void {
    if (this.filter === null) {
      this.lastSentId = id;
      return;
    }
    // Kept for a delta's base, and on elided subscriptions to skip what the backlog already sent.
    if (this.delta === null && this.maxRate === 0) return;
    this.#lastSentIds ??= new Map();
    if (this.#lastSentIds.size >= MAX_DELTA_BASES && !this.#lastSentIds.has(channel)) this.#lastSentIds.clear();
    this.#lastSentIds.set(channel, id);
  }

  deliver(message: PreparedMessage): void {
    if (this.held === null) this.session.send(this, message);
    else this.session.hold(this, message);
  }
}

export class Session {
  readonly #subscriptions = new Map<string, Subscription>();
  #closed = false;
  #replaying = false;
  /**
   * Extra outbox room granted to a replayed backlog (bounded by the rings it came from), so a
   * resume is not mistaken for a slow client. Spent once the outbox drains below the limit: from
   * then on the client may fall behind the live stream by at most maxBufferedBytes.
   */
  #allowance = 0;
  /**
   * Conflating (the outbox is over its limit and every subscription asked onSlow=conflate): what
   * would have been written, the latest per (subscription, channel) with how many it replaced.
   * Written when the sink drains (drained()). Null while the client keeps up.
   */
  #conflated: Map<string, { subscription: Subscription; message: PreparedMessage; skipped: number }> | null = null;
  /** The last message sent on a one-stream session: a message matching several subscriptions goes once. */
  #lastSeq = 0;
  /** Messages written, for the metrics. */
  delivered = 0;

  constructor(
    readonly engine: ChannelEngine,
    readonly sink: SessionSink,
    private readonly limits: SessionLimits,
  ) {}

  get closed(): boolean {
    return this.#closed;
  }

  get channelCount(): number {
    return this.#subscriptions.size;
  }

  has(channel: string): boolean {
    return this.#subscriptions.has(channel);
  }

  /** The channels subscribed, as a copy (safe to unsubscribe while iterating). */
  channels(): string[] {
    return [...this.#subscriptions.keys()];
  }

  /**
   * Subscribes (or re-subscribes, replacing the old cursor) and returns the recovery. The caller
   * writes any reset notice and then passes the backlog to {@link replay}, before returning to the
   * event loop, so that no live message can come between the backlog and the live stream; or, with
   * `held`, live messages wait in the subscription until {@link release} (src/resume/ does this
   * while it reads the log).
   */
  subscribe(channel: string, from: ResumePoint, delta: DeltaCodec | null = null, options: { held?: boolean; maxRate?: number; onSlow?: OnSlow } = {}): Recovery {
    this.unsubscribe(channel);
    // The client's cursor is the floor until a message's own cursor covers it: a cursor sent never
    // moves backwards, even when it came from a node that had read further. In the common case the
    // first message clears it.
    const floor = from.kind === 'cursor' ? from.cursor : null;
    const maxRate = options.maxRate ?? 0;
    const subscription = new Subscription(this, channel, floor, delta, maxRate, options.onSlow);
    if (options.held) subscription.held = [];
    this.#subscriptions.set(channel, subscription);
    if (maxRate === 0) return this.engine.subscribe(channel, subscription, from);
    // Elided: live through the (channel, interval) class; the backlog read in the same step.
    this.engine.elider.join(channel, maxRate, subscription);
    return this.engine.recover(channel, from);
  }

  /** Keeps a live message of a held subscription for release(); bounded like the outbox. */
  hold(subscription: Subscription, message: PreparedMessage): void {
    if (this.#closed || subscription.held === null) return;
    subscription.held.push(message);
    subscription.heldBytes += message.size;
    // A resume that takes so long that the live stream outgrows the outbox: the client is as
    // slow as one that stopped reading, and resumes the same way.
    if (subscription.heldBytes > this.limits.maxBufferedBytes) this.disconnect(DISCONNECTS.slow);
  }

  /** Sends what held subscriptions kept meanwhile, and from now on live messages as they come. */
  release(): void {
    const pending: { subscription: Subscription; message: PreparedMessage; emission?: Emission }[] = [];
    for (const subscription of this.#subscriptions.values()) {
      if (subscription.held === null) continue;
      for (const message of subscription.held) pending.push({ subscription, message });
      for (const emission of subscription.heldEmissions?.values() ?? []) pending.push({ subscription, message: emission.message, emission });
      subscription.held = null;
      subscription.heldEmissions = null;
      subscription.heldBytes = 0;
    }
    if (pending.length === 0) return;
    if (pending.length > 1) pending.sort((a, b) => a.message.seq - b.message.seq);
    this.#asReplay(() => {
      for (const { subscription, message, emission } of pending) {
        if (emission) this.sendEmission(subscription, emission);
        else this.send(subscription, message);
      }
    });
  }

  unsubscribe(channel: string): boolean {
    const subscription = this.#subscriptions.get(channel);
    if (!subscription) return false;
    this.#subscriptions.delete(channel);
    if (subscription.maxRate > 0) this.engine.elider.leave(channel, subscription.maxRate, subscription);
    else this.engine.unsubscribe(channel, subscription);
    return true;
  }

  /**
   * Sends an elided subscription's backlog (the latest per channel, see elideBacklog) through the
   * subscriptions `among` names. Later messages never carry a cursor behind the last of these.
   */
  replayEmissions(emissions: readonly Emission[], among?: readonly string[]): void {
    this.#asReplay(() => {
      for (const emission of emissions) {
        const subscription = this.#route(emission.message.channel, among);
        if (subscription) this.sendEmission(subscription, emission);
      }
    });
    const last = emissions[emissions.length - 1];
    if (last) this.#raiseHeldFloors(last.cursor, (subscription) => subscription.maxRate > 0);
  }

  /** Sends one elided message (its bytes shared by the class), unless this subscription has it already. */
  sendEmission(subscription: Subscription, emission: Emission): void {
    if (this.#closed) return;
    const message = emission.message;
    if (this.#conflated !== null && !this.#replaying) return this.#conflate(subscription, message, emission.elided);
    if (subscription.lastSentOn(message.channel) === message.id) return; // the backlog sent it
    if (this.#skips(subscription, message)) return;
    if (this.sink.writeMessage) return this.#handOver(subscription, message, false);
    const format = this.sink.format;
    const tag = this.#tag(subscription);
    // A delta against the class's previous message of the channel, when that is what this client has.
    const base = emission.base;
    const codec = subscription.delta !== null && base !== undefined && base.id === subscription.lastSentOn(message.channel) ? subscription.delta : null;
    const floor = this.#floorAgainst(subscription, emission.cursor);
    this.#write(subscription, message, floor === null ? emission.encoded(format, tag, codec) : emission.encodedWithCursor(format, floor, tag, codec));
  }

  /**
   * Sends a backlog (possibly merged from several channels, oldest first) through the
   * subscriptions `among` names (by default all): a pattern's backlog goes through the pattern.
   */
  replay(messages: readonly PreparedMessage[], among?: readonly string[]): void {
    this.#asReplay(() => {
      for (const message of messages) {
        const subscription = this.#route(message.channel, among);
        if (subscription) this.send(subscription, message);
      }
    });
  }

  /**
   * Sends messages read back from the log for a deep resume. They lie after the client's cursor
   * and at or before the cursor the subscriptions were made with (their floor), so they bypass
   * the floor check; each carries its own cursor, advancing record by record.
   */
  replayFromLog(messages: readonly PreparedMessage[], among?: readonly string[]): void {
    this.#writeEach(messages, among, false, (message, tag) => message.encoded(this.sink.format, null, tag));
    // The read-back moved the resumed subscriptions' cursors past the client's own: the rings'
    // messages that follow must not carry a cursor behind it (their own may lie behind it on the
    // partitions read back), so it becomes their floor.
    const last = messages[messages.length - 1];
    if (last) this.#raiseHeldFloors(last.frontier, () => true);
  }

  /**
   * Sends a subscribe's snapshot (the newest message of each channel, `snapshot=latest`) with the
   * subscription's start cursor: a fresh subscribe starts there, and these lie at or before it.
   */
  replaySnapshot(messages: readonly PreparedMessage[], cursor: Frontier, among?: readonly string[]): void {
    this.#writeEach(messages, among, true, (message, tag) => message.encodedSnapshot(this.sink.format, cursor, tag));
  }

  /**
   * Writes each message, through its subscription, in `bytesOf`'s encoding, bypassing the floor
   * and dedupe checks (read-back messages and snapshots are the caller's to choose).
   */
  #writeEach(messages: readonly PreparedMessage[], among: readonly string[] | undefined, snapshot: boolean, bytesOf: (message: PreparedMessage, tag: string | undefined) => Buffer): void {
    this.#asReplay(() => {
      for (const message of messages) {
        const subscription = this.#route(message.channel, among);
        if (!subscription || this.#closed) continue;
        if (this.sink.writeMessage) this.#handOver(subscription, message, snapshot);
        else this.#write(subscription, message, bytesOf(message, this.#tag(subscription)));
      }
    });
  }

  /**
   * Runs a replay: the outbox check waits until it is done, and the extra room the replay took
   * (bounded by the rings it came from) is granted, so a resume is not mistaken for a slow client.
   */
  #asReplay(run: () => void): void {
    this.#replaying = true;
    try {
      run();
    } finally {
      this.#replaying = false;
    }
    this.#allowance = Math.max(this.#allowance, this.sink.bufferedAmount - this.limits.maxBufferedBytes);
  }

  /** Raises the floor of held subscriptions (`which`) to `to`: what follows must not carry a cursor behind it. */
  #raiseHeldFloors(to: Frontier, which: (subscription: Subscription) => boolean): void {
    for (const subscription of this.#subscriptions.values()) {
      if (subscription.held !== null && which(subscription)) subscription.floor = subscription.floor ? subscription.floor.max(to) : to;
    }
  }

  /** The cursor to report when nothing else is being sent (heartbeats, pongs). */
  idleCursor(): Frontier | undefined {
    // Conflating: the frontier would claim messages still waiting to be written.
    if (this.#conflated !== null) return undefined;
    let frontier = this.engine.frontier();
    let elided = 0;
    for (const subscription of this.#subscriptions.values()) if (subscription.maxRate > 0) elided++;
    if (elided > 0) {
      // A heartbeat's cursor must not claim a final value still waiting for its interval's end;
      // lowered for elided subscriptions, it would make the others' resumes repeat messages.
      if (elided < this.#subscriptions.size) return undefined;
      frontier = this.engine.elider.capped(frontier);
    }
    let shared: Frontier | null | undefined;
    for (const subscription of this.#subscriptions.values()) {
      // Mid-resume, the frontier is ahead of what the client has been sent: no cursor to give yet.
      if (subscription.held !== null) return undefined;
      if (subscription.floor !== null && frontier.covers(subscription.floor)) subscription.floor = null;
      if (shared === undefined) shared = subscription.floor;
      // One subscription ahead of this node and another not (WebSocket, per-channel cursors): a
      // cursor raised to the first would claim, for the second, messages it never got.
      else if (shared !== subscription.floor) return undefined;
    }
    return shared ? frontier.max(shared) : frontier;
  }

  send(subscription: Subscription, message: PreparedMessage): void {
    if (this.#closed) return;
    if (this.#conflated !== null && !this.#replaying) return this.#conflate(subscription, message);
    if (this.#skips(subscription, message)) return;
    if (this.sink.writeMessage) return this.#handOver(subscription, message, false);
    const format = this.sink.format;
    const base = message.deltaBase;
    const codec = subscription.delta !== null && base !== undefined && base.id === subscription.lastSentOn(message.channel) ? subscription.delta : null;
    const tag = this.#tag(subscription);
    const floor = this.#floorAgainst(subscription, message.frontier);
    this.#write(subscription, message, floor === null ? message.encoded(format, codec, tag) : message.encodedWithCursor(format, floor, codec, tag));
  }

  /**
   * True when `message` is not to be sent: on one stream, it came a moment ago through another
   * subscription matching it (a channel and a pattern, one right after the other, live, held or
   * merged); or the client's cursor covers it already.
   */
  #skips(subscription: Subscription, message: PreparedMessage): boolean {
    if (!this.sink.streamPerSubscription) {
      if (message.seq !== 0 && message.seq === this.#lastSeq) return true;
      this.#lastSeq = message.seq;
    }
    const floor = subscription.floor;
    return floor !== null && message.isCoveredBy(floor);
  }

  /**
   * The floor a message carrying `cursor` must raise its cursor to, or null when its own will do
   * (no floor, or `cursor` reaches it: the floor is then spent).
   */
  #floorAgainst(subscription: Subscription, cursor: Frontier): Frontier | null {
    const floor = subscription.floor;
    if (floor === null || !cursor.covers(floor)) return floor;
    subscription.floor = null;
    return null;
  }

  /** Writes a message's bytes and does the bookkeeping of every delivery. */
  #write(subscription: Subscription, message: PreparedMessage, bytes: Buffer): void {
    subscription.sentOn(message.channel, message.id);
    this.sink.write(bytes);
    this.delivered++;
    this.#checkOutbox();
  }

  /** A message for a sink that frames it itself (writeMessage), with the same bookkeeping as a write. */
  #handOver(subscription: Subscription, message: PreparedMessage, snapshot: boolean): void {
    subscription.sentOn(message.channel, message.id);
    (this.sink.writeMessage as NonNullable<SessionSink['writeMessage']>)(subscription, message, snapshot);
    this.delivered++;
    this.#checkOutbox();
  }

  /** The pattern a message names in `sub`: only through a pattern, on a stream per subscription. */
  #tag(subscription: Subscription): string | undefined {
    return subscription.filter !== null && this.sink.streamPerSubscription ? subscription.channel : undefined;
  }

  /** The subscription a replayed message goes through: its channel's own, else the first pattern matching it. */
  #route(channel: string, among: readonly string[] | undefined): Subscription | undefined {
    if (among === undefined) {
      const exact = this.#subscriptions.get(channel);
      if (exact) return exact;
      for (const subscription of this.#subscriptions.values()) if (subscription.covers(channel)) return subscription;
      return undefined;
    }
    for (const key of among) {
      const subscription = this.#subscriptions.get(key);
      if (subscription?.covers(channel)) return subscription;
    }
    return undefined;
  }

  /** Writes bytes that are not channel messages (replies, notices), with the same outbox limit. */
  writeControl(bytes: Buffer): void {
    if (this.#closed) return;
    this.sink.write(bytes);
    this.#checkOutbox();
  }

  #checkOutbox(): void {
    if (this.#replaying) return;
    const buffered = this.sink.bufferedAmount;
    if (buffered <= this.limits.maxBufferedBytes) this.#allowance = 0;
    else if (buffered > this.limits.maxBufferedBytes + this.#allowance) {
      // A client that asked for it keeps its connection: from now on only the latest per channel.
      if (this.#subscriptions.size > 0 && [...this.#subscriptions.values()].every((s) => s.onSlow === 'conflate')) this.#conflated ??= new Map();
      else this.disconnect(DISCONNECTS.slow);
    }
  }

  #conflate(subscription: Subscription, message: PreparedMessage, alreadyElided = 0): void {
    const key = `${subscription.channel}\n${message.channel}`;
    const waiting = (this.#conflated as Map<string, { subscription: Subscription; message: PreparedMessage; skipped: number }>).get(key);
    if (waiting?.message === message) return; // the same message through another path (a channel and a pattern)
    // Counted when it replaces one: the message that waits is still written at the drain.
    if (waiting) this.engine.stats.conflatedMessages++;
    this.#conflated!.set(key, { subscription, message, skipped: (waiting ? waiting.skipped + 1 : 0) + alreadyElided });
  }

  /**
   * The sink wrote out what it held (its 'drain'): a conflating session catches its client up
   * with the latest message per channel, each saying how many it replaced, in log order.
   */
  drained(): void {
    const waiting = this.#conflated;
    if (waiting === null || this.#closed || this.sink.bufferedAmount > this.limits.maxBufferedBytes) return;
    this.#conflated = null;
    const latest = [...waiting.values()].sort((a, b) => a.message.seq - b.message.seq);
    for (const { subscription, message, skipped } of latest) {
      // If these fill the outbox again, the rest are conflated again until the next drain.
      this.sendEmission(subscription, new Emission(message, skipped, message.frontier));
    }
  }

  disconnect(reason: Disconnect): void {
    if (this.#closed) return;
    this.close();
    this.sink.disconnect(reason);
  }

  /** Unsubscribes everything; idempotent. Transports call it when the connection ends. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const channel of [...this.#subscriptions.keys()]) this.unsubscribe(channel);
  }
}
