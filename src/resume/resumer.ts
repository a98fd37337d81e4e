/**
 * Where a resumed stream starts: the one owner of subscribe-and-resume for every transport.
 *
 * A request (channels, the client's cursor) becomes one plan: the resets, the messages read back
 * from the log, the rings' backlog, the start cursor, and the live registration, with no gap and
 * no overlap between any two of them. The order of the steps is what makes that hold under load:
 *
 * 1. Register the live subscriptions first, held (live messages are buffered, not sent), and in
 *    the same synchronous step take each ring's backlog and note where the rings stop vouching
 *    for the past (the gaps). From here on nothing can fall between rings and live.
 * 2. Only then read the gaps back from the log (async). However many messages arrive meanwhile,
 *    they are in the held buffer, not lost to an overrun ring.
 * 3. The transport writes: resets, the read-back messages, the ring backlog, then releases the
 *    held live messages. The three are disjoint by construction (the rings' backlog is cut where
 *    the range read back ends; it was taken at registration, before anything was held), so
 *    nothing is sent twice and everything goes in log order.
 *
 * A reset is sent only when the data is really gone: the log no longer has it (retention), it is
 * over deepResumeMaxRecords, the cursor names another epoch, or there is no log to read.
 */
import { authorize, isAllowed } from '../auth/entitlements.js';
import { PushError } from '../errors.js';
import { isPattern } from '../protocol/channel-filter.js';
import type { Identity } from '../auth/identity.js';
import type { DeltaCodec } from '../delta/codec.js';
import { mergeBacklogs, type ChannelEngine, type Recovery, type ResetNotice, type ResumePoint } from '../engine/engine.js';
import type { Frontier } from '../log/position.js';
import type { PreparedMessage } from '../engine/prepared-message.js';
import type { OnSlow, Session } from '../engine/session.js';
import type { Gaps, LogReadBack } from './log-read-back.js';
import { elideBacklog, type Emission } from '../engine/elision.js';

/** How resumes were served, for the metrics. */
export interface ResumeStats {
  /** Resumes answered from the rings alone. */
  ring: number;
  /** Resumes that read from the log. */
  log: number;
  /** Resumes that sent a reset, by reason. */
  reset: Record<string, number>;
  /** Records read back from the log for resumes. */
  recordsReadBack: number;
}

/** A streaming subscription's plan (SSE, WebSocket). */
export interface StreamPlan {
  readonly resets: readonly ResetNotice[];
  /** Read back from the log, each with its own cursor: send with session.replayFromLog(). */
  readonly fromLog: readonly PreparedMessage[];
  /** The rings' backlog at registration: send with session.replay(). */
  readonly backlog: readonly PreparedMessage[];
  /** A cursor the client may store before the backlog arrives (never behind its own). */
  readonly startCursor: Frontier;
  /** True when the client resumed from a cursor and nothing is missing. */
  readonly resumed: boolean;
  /**
   * `snapshot=latest` on a fresh subscribe: the newest held message of each channel, taken at
   * registration. Send with session.replaySnapshot() before the rest, with startCursor.
   */
  readonly snapshot: readonly PreparedMessage[];
  /**
   * Elided subscriptions (maxRate): the read-back and ring backlog reduced to the latest message
   * per channel (fromLog and backlog are then empty). Send with session.replayEmissions().
   */
  readonly elided: readonly Emission[];
  /** The interval in force (the request's maxRate, raised to the token's `rate`); 0: none. */
  readonly maxRate: number;
}

/** What a subscribe asks for besides its channels and cursor. */
export interface SubscribeOptions {
  /** `latest`: first the newest held message of each channel (only when starting without a cursor). */
  readonly snapshot?: 'latest';
  /** Eliding: at most one message per channel per this many ms (the token's `rate` can only raise it). */
  readonly maxRate?: number;
  /** A client that cannot keep up: disconnected (the default) or conflated (latest per channel). */
  readonly onSlow?: OnSlow;
}

/** The eliding interval in force: what was asked, raised to the token's `rate` cap. */
export function effectiveMaxRate(identity: Identity, asked: number | undefined): number {
  return Math.max(asked ?? 0, identity.rate ?? 0);
}

/** A long-poll answer: what follows the cursor, at most `max`, and the cursor to continue from. */
export interface PollAnswer {
  readonly messages: readonly PreparedMessage[];
  /** The messages are a snapshot (`snapshot=latest` on a poll without a cursor). */
  readonly snapshot?: boolean;
  /** With eliding: `messages` reduced to the latest per channel, with their counts. */
  readonly elided?: readonly Emission[];
  readonly resets: readonly ResetNotice[];
  readonly cursor: Frontier;
}

/** What one connection may ask of the pattern index (every pattern costs each published message a little). */
export interface PatternLimits {
  readonly maxPatternsPerConnection: number;
  readonly maxPatternLevels: number;
}

const DEFAULT_PATTERN_LIMITS: PatternLimits = { maxPatternsPerConnection: 20, maxPatternLevels: 16 };

export class Resumer {
  readonly stats: ResumeStats = { ring: 0, log: 0, reset: {}, recordsReadBack: 0 };

  constructor(
    private readonly engine: ChannelEngine,
    /** Absent when the source keeps no past (the embedded log): the rings are all there is. */
    private readonly readBack?: LogReadBack,
    private readonly patternLimits: PatternLimits = DEFAULT_PATTERN_LIMITS,
  ) {}

  /** Reads a client's cursor text (undefined or empty: from now). */
  resumePoint(text: string | undefined): ResumePoint {
    return this.engine.resumePoint(text);
  }

  /**
   * Subscribes `session` to `channels` from `from` (steps 1 and 2 above). The subscriptions stay
   * held until the caller has written the plan and calls session.release(). Resolves with
   * undefined when the session closed meanwhile. Rejects (before subscribing anything) with
   * 401/403 when `identity` may not subscribe to one of the channels.
   */
  async subscribe(identity: Identity, session: Session, channels: readonly string[], from: ResumePoint, delta: DeltaCodec | null, options: SubscribeOptions = {}): Promise<StreamPlan | undefined> {
    this.checkSubscribe(identity, channels, session.channels().filter((held) => !channels.includes(held)));
    const maxRate = effectiveMaxRate(identity, options.maxRate);
    const onSlow = options.onSlow ?? 'disconnect';
    const recoveries = channels.map((channel) => session.subscribe(channel, from, delta, { held: true, maxRate, onSlow }));
    // In the registration step: everything live comes after it.
    const snapshot = this.#snapshot(channels, from, options);
    // Held live messages all come after this point.
    const registeredAt = this.engine.frontier();
    const { resets, fromLog, backlog } = await this.#complete(recoveries, channels, from);
    if (session.closed) return undefined;
    const startCursor = this.#startCursor(from, fromLog, backlog, resets, registeredAt);
    const resumed = from.kind === 'cursor' && resets.length === 0;
    if (maxRate > 0) return { resets, fromLog: [], backlog: [], startCursor, resumed, snapshot, elided: elideBacklog([...fromLog, ...backlog]), maxRate };
    return { resets, fromLog, backlog, startCursor, resumed, snapshot, elided: [], maxRate };
  }

  /**
   * The newest held message of each channel, for a subscribe without a cursor. A resume gets what
   * it missed instead (which ends with the newest anyway).
   */
  #snapshot(channels: readonly string[], from: ResumePoint, options: SubscribeOptions): PreparedMessage[] {
    if (options.snapshot !== 'latest' || from.kind !== 'now') return [];
    return mergeBacklogs(channels.map((channel) => ({ backlog: this.engine.latest(channel) })));
  }

  /**
   * What follows `from` on `channels` (long-poll), at most `max` messages. The rings are read and
   * the gaps noted in one synchronous step, before any read from the log, so messages arriving
   * during the read cannot push the needed ones out of a ring. Answered at once (no promise) when
   * the rings are enough, which is nearly every poll: a poll's cost is mostly per request.
   */
  collect(identity: Identity, channels: readonly string[], from: ResumePoint, max: number, options: SubscribeOptions = {}): PollAnswer | Promise<PollAnswer> {
    this.checkSubscribe(identity, channels);
    const snapshot = this.#snapshot(channels, from, options);
    if (snapshot.length > 0) return { messages: snapshot.slice(-max), snapshot: true, resets: [], cursor: this.engine.frontier() };
    const recoveries = channels.map((channel) => this.engine.recover(channel, from));
    const frontier = this.engine.frontier();
    const maxRate = effectiveMaxRate(identity, options.maxRate);
    const completed = this.#complete(recoveries, channels, from);
    if (completed instanceof Promise) return completed.then((plan) => pollAnswer(plan, from, frontier, max, maxRate));
    return pollAnswer(completed, from, frontier, max, maxRate);
  }

  /**
   * Throws 401/403 unless `identity` may subscribe to every one of `channels`. subscribe() and
   * collect() check by themselves; a transport calls this too when it must refuse before it
   * commits to a response (an SSE stream's status line).
   */
  checkSubscribe(identity: Identity, channels: readonly string[], alsoHeld: readonly string[] = []): void {
    if (channels.some(isPattern)) {
      const patterns = channels.filter(isPattern);
      const { maxPatternsPerConnection, maxPatternLevels } = this.patternLimits;
      const total = patterns.length + alsoHeld.filter(isPattern).length;
      if (total > maxPatternsPerConnection) throw new PushError('too_many_channels', `at most ${maxPatternsPerConnection} pattern subscriptions per connection`);
      for (const pattern of patterns) {
        if (pattern.split('/').length > maxPatternLevels) throw new PushError('bad_channel', `a pattern may have at most ${maxPatternLevels} levels`, { channel: pattern });
      }
    }
    for (const channel of channels) authorize(identity, 'sub', channel);
  }

  /**
   * Of `channels` (a connection's live subscriptions), those `identity` may no longer subscribe to:
   * after a token refresh they must end.
   */
  revoked(identity: Identity, channels: readonly string[]): string[] {
    return channels.filter((channel) => !isAllowed(identity, 'sub', channel));
  }

  /** The newest `limit` messages of `channel` held in its ring (`GET /v1/history`), and the current cursor. */
  history(identity: Identity, channel: string, limit: number): { messages: readonly PreparedMessage[]; cursor: Frontier } {
    authorize(identity, 'hst', channel);
    return { messages: this.engine.history(channel, limit), cursor: this.engine.frontier() };
  }

  /**
   * Completes the rings' recoveries (taken in the caller's synchronous step) from the log: reads
   * the gaps back, replaces the rings' "expired" notices with what the log could not give, and
   * cuts the rings' backlog where the range read back ends. Synchronous when there is nothing to
   * read back.
   */
  #complete(recoveries: readonly Recovery[], channels: readonly string[], from: ResumePoint): Completed | Promise<Completed> {
    const gaps = this.#gapsToRead(recoveries, channels, from);
    if (gaps === undefined || !this.readBack || from.kind !== 'cursor') {
      const resets = resetsOf(recoveries);
      this.#count(from, false, resets);
      return { resets, fromLog: NOTHING, backlog: mergeBacklogs(recoveries) };
    }
    return this.#readBackGaps(this.readBack, recoveries, channels, from, gaps);
  }

  async #readBackGaps(readBack: LogReadBack, recoveries: readonly Recovery[], channels: readonly string[], from: Extract<ResumePoint, { kind: 'cursor' }>, gaps: Gaps): Promise<Completed> {
    const read = await readBack.read(channels, from.cursor, gaps);
    this.stats.recordsReadBack += read.records;
    const resets = [...resetsOf(recoveries).filter((reset) => reset.reason !== 'cursor_expired'), ...read.resets];
    this.#count(from, true, resets);
    return { resets, fromLog: read.messages, backlog: afterReadBack(mergeBacklogs(recoveries), from, gaps) };
  }

  /**
   * A cursor the client may store at once, before anything else of the plan arrives: its own
   * while read-back messages or reset notices are still to come (a client that drops then must
   * get them again); else just before the rings' backlog; else where the live registration began.
   */
  #startCursor(from: ResumePoint, fromLog: readonly PreparedMessage[], backlog: readonly PreparedMessage[], resets: readonly ResetNotice[], registeredAt: Frontier): Frontier {
    if (from.kind === 'cursor' && (fromLog.length > 0 || resets.length > 0)) return from.cursor;
    if (backlog.length > 0) return this.engine.startCursor(from, backlog);
    return neverBehind(registeredAt, from);
  }

  /** The gaps to read from the log, or undefined when the rings are enough (or no log can help). */
  #gapsToRead(recoveries: readonly Recovery[], channels: readonly string[], from: ResumePoint): ReturnType<ChannelEngine['gaps']> | undefined {
    if (!this.readBack || from.kind !== 'cursor') return undefined;
    if (!recoveries.some((recovery) => recovery.reset?.reason === 'cursor_expired')) return undefined;
    const gaps = this.engine.gaps(channels, from.cursor);
    return gaps.size > 0 ? gaps : undefined;
  }

  #count(from: ResumePoint, readLog: boolean, resets: readonly ResetNotice[]): void {
    if (from.kind === 'now') return;
    if (readLog) this.stats.log++;
    else this.stats.ring++;
    if (resets.length === 0) return;
    const reasons = new Set(resets.map((reset) => reset.reason));
    for (const reason of reasons) this.stats.reset[reason] = (this.stats.reset[reason] ?? 0) + 1;
  }
}

/** A plan's resets, the read-back messages and the rings' backlog (see #complete). */
interface Completed {
  readonly resets: ResetNotice[];
  readonly fromLog: readonly PreparedMessage[];
  readonly backlog: PreparedMessage[];
}

const NOTHING: readonly PreparedMessage[] = Object.freeze([]);

function resetsOf(recoveries: readonly Recovery[]): ResetNotice[] {
  const resets: ResetNotice[] = [];
  for (const recovery of recoveries) if (recovery.reset) resets.push(recovery.reset);
  return resets;
}

/** A long-poll's answer from its completed plan: at most `max` messages, and the cursor after them. */
function pollAnswer(plan: Completed, from: ResumePoint, frontier: Frontier, max: number, maxRate: number): PollAnswer {
  const { resets, fromLog, backlog } = plan;
  const all = fromLog.length === 0 ? backlog : [...fromLog, ...backlog];
  if (maxRate > 0) {
    // Elided: the latest per channel, each with the furthest cursor up to it, so a cut is simple.
    const elided = elideBacklog(all);
    if (elided.length <= max) return { messages: all, elided, resets, cursor: neverBehind(frontier, from) };
    const kept = elided.slice(0, max);
    return { messages: all, elided: kept, resets, cursor: neverBehind((kept[max - 1] as Emission).cursor, from) };
  }
  if (all.length <= max) return { messages: all, resets, cursor: neverBehind(frontier, from) };
  // Cut: the cursor is the last message's own. A ring message's cursor may lie behind the end
  // of the range read back on those partitions; raise it there, or the next poll reads it again.
  const messages = all.slice(0, max);
  let cursor = (messages[max - 1] as PreparedMessage).frontier;
  if (max > fromLog.length && fromLog.length > 0) cursor = cursor.max((fromLog[fromLog.length - 1] as PreparedMessage).frontier);
  return { messages, resets, cursor: neverBehind(cursor, from) };
}

/**
 * The rings' backlog after the range read back. The range is the furthest gap of the request's
 * channels on each partition, so it may reach into another channel's ring: what lies in it was
 * either read back (sent once, from the log) or is gone from the log and named by a reset; the
 * ring's copy would be a duplicate or out of log order.
 */
function afterReadBack(backlog: PreparedMessage[], from: ResumePoint, gaps: Gaps | undefined): PreparedMessage[] {
  if (gaps === undefined || from.kind !== 'cursor') return backlog;
  let end = from.cursor;
  for (const [partition, upTo] of gaps) end = end.max(from.cursor.withPosition(partition, upTo.offset, upTo.item));
  return backlog.filter((message) => !message.isCoveredBy(end));
}

/** A cursor handed back is never behind the client's own (it may come from a node that read further). */
export function neverBehind(cursor: Frontier, from: ResumePoint): Frontier {
  return from.kind === 'cursor' ? cursor.max(from.cursor) : cursor;
}
