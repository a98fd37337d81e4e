/**
 * A seeded randomized model test of the resume plan (src/resume/), with no sockets.
 *
 * Each case builds a small Kafka-like world in memory: a log of keyed records over 1–3 partitions
 * (the key is the channel, KeyRouter), a ChannelEngine with small rings that the node dispatches
 * the log into, a RangeSource over the same log (with retention and a read-back limit) behind a
 * LogReadBack, and a Resumer. A model client then subscribes the way transports/sse.ts and
 * transports/websocket.ts drive a plan (resets, session.replayFromLog, session.replay,
 * session.release, then the SSE cursor event or the WebSocket `subscribed` cursor), or polls the
 * way transports/polling.ts does (Resumer.collect, and the PollSpool for held polls). Its sink's
 * wire format records what a client would receive, in order, with each message's cursor.
 *
 * Per case, at random: where the client's cursor comes from (none, an old cursor, a cursor of a
 * node that read further than this one, another epoch, garbage), bursts of records dispatched
 * while the log read-back is in flight, retention, disconnects after k messages (the client
 * resumes from the last cursor it was given), and long-poll page sizes.
 *
 * What the client sees is checked against the log itself (the model), not against the engine:
 * - every message of a subscribed channel after the client's original cursor arrives exactly
 *   once, in log order, across reconnects, unless a reset notice named it, and a reset is only
 *   accepted where the data is really gone (the log forgot it, the range was over the read-back
 *   limit, another epoch, an unreadable cursor); with none of those there must be no reset;
 * - cursors never move backwards, and never cover a message the client was not given (resuming
 *   from them would lose it);
 * - nothing the client's cursor already covers is sent (a node behind the client's cursor).
 *
 * A failure reports fast-check's seed, path and shrunk case, then the case as the model sees it
 * (channels, partitions, the log) and a trace of what the node did and the client received.
 * Replay it: RESUME_MODEL_SEED=<seed> RESUME_MODEL_PATH=<path> npx vitest run <this file>, or run
 * just the shrunk case: RESUME_MODEL_CASE='<counterexample JSON>'. RESUME_MODEL_RUNS overrides the
 * number of runs; RESUME_MODEL_STATS=1 prints how often each path (read-back, bursts, retention,
 * resets, held polls, …) was taken.
 */
import { OPEN_IDENTITY } from '../../../src/auth/identity.js';
import fc from 'fast-check';
import { afterAll, describe, it } from 'vitest';
import { ChannelEngine, type ResetNotice, type ResumePoint } from '../../../src/engine/engine.js';
import { defineWireFormat } from '../../../src/engine/prepared-message.js';
import { Session, type SessionSink } from '../../../src/engine/session.js';
import type { Disconnect } from '../../../src/errors.js';
import { Frontier, WHOLE_RECORD, parseCursor } from '../../../src/log/position.js';
import type { LogRecord, RecordHandler } from '../../../src/log/source.js';
import type { Logger } from '../../../src/logger.js';
import { payloadFromValue } from '../../../src/protocol/envelope.js';
import { LogReadBack, type RangeSource } from '../../../src/resume/log-read-back.js';
import { Resumer, neverBehind } from '../../../src/resume/resumer.js';
import { createIngest } from '../../../src/routing/ingest.js';
import { KeyRouter } from '../../../src/routing/record-router.js';
import { pollBody } from '../../../transports/poll-format.js';
import { PollSpool } from '../../../transports/poll-spool.js';

const EPOCH = 'model1';
const FOREIGN_EPOCH = 'other2';
const CHANNELS = ['x/a', 'x/b', 'y/a', 'y/b'] as const;
/** Pattern subscriptions a client may add to its channels: each resumes like a channel, over every channel it matches. */
const PATTERNS = ['x/+', '+/a', 'y/#', '#'] as const;

/** Does the subscription `key` (a channel or a pattern) take the messages of `channel`? Written apart from src/. */
function keyCovers(key: string, channel: string): boolean {
  const want = key.split('/');
  const have = channel.split('/');
  if (want[want.length - 1] === '#') {
    const prefix = want.slice(0, -1);
    return have.length >= prefix.length && prefix.every((level, i) => level === '+' || level === have[i]);
  }
  return want.length === have.length && want.every((level, i) => level === '+' || level === have[i]);
}
/** A record value of this picks no channel: a record without a key (routed nowhere, still in the log). */
const NOISE = 7;
/** "No read-back limit" (deepResumeMaxRecords far above any case's log). */
const UNLIMITED = 1_000_000;

const env = process.env;
const RUNS = Number(env.RESUME_MODEL_RUNS ?? 10_000);
/** RESUME_MODEL_STATS=1 prints how often each path was taken (to see that the cases reach them). */
const STATS = new Map<string, number>();
function count(what: string, n = 1): void {
  if (env.RESUME_MODEL_STATS) STATS.set(what, (STATS.get(what) ?? 0) + n);
}
/** RESUME_MODEL_CASE='<counterexample JSON>' runs that one case (stream or poll by its fields). */
const ONE_CASE = env.RESUME_MODEL_CASE === undefined ? undefined : (JSON.parse(env.RESUME_MODEL_CASE) as StreamCase | PollCase);
function params(seed: number): fc.Parameters<unknown> {
  const path = env.RESUME_MODEL_PATH;
  return {
    seed: env.RESUME_MODEL_SEED === undefined ? seed : Number(env.RESUME_MODEL_SEED),
    numRuns: RUNS,
    ...(path === undefined ? {} : { path }),
  };
}

// ---------------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------------

type Origin =
  | { readonly kind: 'fresh' }
  /** The frontier `back` records before the node's position at subscribe (or the log's start). */
  | { readonly kind: 'old'; readonly back: number }
  /** A cursor from a node that read further: the frontier after more records than this node has. */
  | { readonly kind: 'lagging'; readonly ahead: number }
  | { readonly kind: 'foreign'; readonly back: number }
  | { readonly kind: 'garbled'; readonly form: number };

/** What happens while one range read of the log is in flight. */
interface ReadAction {
  /** Records dispatched meanwhile (live traffic during the read-back). */
  readonly burst: number;
  /** Retention meanwhile: per partition, the percentage of what the node has seen that the log forgets. */
  readonly retain: readonly number[] | null;
}

interface Shape {
  readonly partitions: number;
  readonly channelCount: number;
  readonly ring: number;
  readonly maxIdle: number;
  readonly readLimit: number;
  /** Per channel (a..d), its partition (mod partitions): keys hashed to partitions. */
  readonly partitionOf: readonly number[];
  /** The log: per record, a channel index (mod channelCount), or NOISE. */
  readonly records: readonly number[];
  /** Percentage of the log before the node started (its engine start frontier). */
  readonly startAt: number;
  /** Percentage of the rest dispatched before the client's first subscribe. */
  readonly subscribeAt: number;
  /** Bit mask over the channels: the subset subscribed. */
  readonly subscribed: number;
  /** Bit mask over PATTERNS: the patterns subscribed too (first, on a WebSocket, which takes one). */
  readonly patterns: number;
  readonly origin: Origin;
  /** Consumed one per range read, in order; further reads see no traffic. */
  readonly reads: readonly ReadAction[];
}

type StreamStep =
  | { readonly kind: 'dispatch'; readonly n: number }
  | { readonly kind: 'heartbeat' }
  | { readonly kind: 'retain'; readonly percent: readonly number[] }
  | { readonly kind: 'reconnect' };

interface StreamCase extends Shape {
  readonly style: 'sse' | 'ws';
  readonly steps: readonly StreamStep[];
  /** Per connection in turn: leave after this many messages (0: before anything), or during its first read. */
  readonly disconnects: readonly { readonly after: number; readonly duringRead: boolean }[];
}

interface PollStep {
  /** Hold the poll in the spool when nothing follows its cursor (timeout > 0). */
  readonly hold: boolean;
  /** Records dispatched while the poll is held. */
  readonly holdBurst: number;
  /** Records dispatched before the next poll. */
  readonly dispatch: number;
  readonly retain: readonly number[] | null;
}

interface PollCase extends Shape {
  /** pollMaxMessages. */
  readonly max: number;
  readonly polls: readonly PollStep[];
}

const smallCount = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 1, max: 5 }) },
  { weight: 1, arbitrary: fc.integer({ min: 6, max: 60 }) },
);
const burstArb = fc.oneof(
  { weight: 2, arbitrary: fc.constant(0) },
  { weight: 3, arbitrary: fc.integer({ min: 1, max: 5 }) },
  { weight: 1, arbitrary: fc.integer({ min: 6, max: 40 }) },
);
const percentArb = fc.array(fc.nat(100), { minLength: 3, maxLength: 3 });
/** Retention now and then (most reads and polls see none). */
const sometimesRetain = (weight: number): fc.Arbitrary<readonly number[] | null> =>
  fc.oneof({ weight, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: percentArb });
const originArb: fc.Arbitrary<Origin> = fc.oneof(
  { weight: 2, arbitrary: fc.constant({ kind: 'fresh' as const }) },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('old' as const), back: fc.nat(300) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('lagging' as const), ahead: fc.nat(300) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('foreign' as const), back: fc.nat(300) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('garbled' as const), form: fc.nat(7) }) },
);
const shapeArbs = {
  partitions: fc.integer({ min: 1, max: 3 }),
  channelCount: fc.integer({ min: 2, max: 4 }),
  ring: fc.oneof(
    { weight: 4, arbitrary: fc.integer({ min: 1, max: 4 }) },
    { weight: 2, arbitrary: fc.integer({ min: 5, max: 30 }) },
    { weight: 1, arbitrary: fc.integer({ min: 31, max: 200 }) },
  ),
  maxIdle: fc.oneof({ weight: 3, arbitrary: fc.constant(1000) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 3 }) }),
  readLimit: fc.oneof({ weight: 3, arbitrary: fc.constant(UNLIMITED) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 20 }) }),
  partitionOf: fc.array(fc.nat(2), { minLength: 4, maxLength: 4 }),
  records: fc.oneof(
    { weight: 3, arbitrary: fc.array(fc.nat(NOISE), { maxLength: 300, size: 'medium' }) },
    { weight: 1, arbitrary: fc.array(fc.nat(NOISE), { maxLength: 300, size: 'large' }) },
  ),
  startAt: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 100 }) }),
  subscribeAt: fc.nat(100),
  subscribed: fc.integer({ min: 1, max: 15 }),
  patterns: fc.oneof({ weight: 1, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 15 }) }),
  origin: originArb,
  reads: fc.array(fc.record({ burst: burstArb, retain: sometimesRetain(6) }), { maxLength: 6 }),
};
const streamStepArb: fc.Arbitrary<StreamStep> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('dispatch' as const), n: smallCount }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'heartbeat' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('retain' as const), percent: percentArb }) },
  { weight: 3, arbitrary: fc.constant({ kind: 'reconnect' as const }) },
);
const streamCaseArb: fc.Arbitrary<StreamCase> = fc.record({
  ...shapeArbs,
  style: fc.constantFrom('sse' as const, 'ws' as const),
  steps: fc.array(streamStepArb, { maxLength: 25 }),
  disconnects: fc.array(
    fc.record({
      after: fc.oneof({ weight: 3, arbitrary: fc.nat(5) }, { weight: 1, arbitrary: fc.nat(40) }),
      duringRead: fc.nat(7).map((n) => n === 0),
    }),
    { maxLength: 4 },
  ),
});
const pollCaseArb: fc.Arbitrary<PollCase> = fc.record({
  ...shapeArbs,
  max: fc.oneof({ weight: 2, arbitrary: fc.constant(1000) }, { weight: 2, arbitrary: fc.integer({ min: 1, max: 5 }) }),
  polls: fc.array(
    fc.record({ hold: fc.boolean(), holdBurst: burstArb, dispatch: fc.oneof(fc.constant(0), smallCount), retain: sometimesRetain(8) }),
    { maxLength: 20 },
  ),
});

function garbledCursor(form: number, partitions: number): string {
  const forms = [
    'garbage',
    `${EPOCH}.!`,
    `${EPOCH}.${'z'.repeat(12)}`,
    `${EPOCH}.${'0_'.repeat(partitions)}0`,
    `${EPOCH}.1~~2`,
    'MODEL1.0',
    '.0',
    `${EPOCH}.${'1'.repeat(9000)}`,
  ];
  return forms[form % forms.length] as string;
}

// ---------------------------------------------------------------------------------------------
// The world: a log, a node (engine + resumer) reading it, a range source over it
// ---------------------------------------------------------------------------------------------

interface Rec {
  /** Position in the log's global order (the order the node reads it in). */
  readonly idx: number;
  readonly partition: number;
  readonly offset: number;
  readonly channel: string | null;
  readonly id: string;
  readonly record: LogRecord;
}

/** Records a resume could not get from the log: offsets (lo, hi] of one partition. */
interface Loss {
  readonly partition: number;
  readonly lo: number;
  readonly hi: number;
  readonly why: string;
}

type AttemptKind = 'none' | 'cursor' | 'foreign' | 'garbled';

/** One subscribe (or one poll): what the client sent, and what the log could not give it. */
interface Attempt {
  readonly n: number;
  readonly kind: AttemptKind;
  readonly text: string | undefined;
  /** Records the node had dispatched when the subscriptions were registered. */
  readonly dispatchedAt: number;
  readonly losses: Loss[];
  /** Range reads made for it. */
  reads: number;
  /** Called while a range read of this attempt is in flight. */
  onRead?: () => void;
}

class ModelFailure extends Error {}

/** What the client subscribes: its patterns first (a WebSocket case takes only the first key), then its channels. */
function subscriptionKeys(world: World, c: Shape): string[] {
  const patterns = PATTERNS.filter((_, k) => c.patterns & (1 << k));
  const channels = world.channels.filter((_, k) => c.subscribed & (1 << k));
  if (channels.length === 0) channels.push(world.channels[0] as string);
  return [...patterns, ...channels];
}

const quiet: Logger = { warn() {}, info() {}, error() {}, debug() {}, child: () => quiet } as unknown as Logger;

class World implements RangeSource {
  readonly engine: ChannelEngine;
  readonly resumer: Resumer;
  readonly recs: Rec[] = [];
  readonly byPartition: LogRecord[][];
  /** Per partition, the first offset the log still holds (retention). */
  readonly firstKept: number[];
  readonly channels: string[];
  readonly partitionOf = new Map<string, number>();
  readonly N: number;
  /** Records before the node started (it never dispatches them; they are only in the log). */
  readonly s: number;
  /** Records dispatched before the client's first subscribe. */
  readonly d0: number;
  readonly trace: string[] = [];
  /** The first model failure, kept in case it was thrown where src/ catches errors. */
  failure: unknown;
  /** The global index of the next record the node dispatches. */
  next: number;
  active: Attempt | undefined;
  #reads = 0;
  readonly #ingest: RecordHandler;

  constructor(readonly shape: Shape) {
    const { partitions, channelCount } = shape;
    this.channels = CHANNELS.slice(0, channelCount);
    this.channels.forEach((channel, k) => this.partitionOf.set(channel, (shape.partitionOf[k] as number) % partitions));
    this.byPartition = Array.from({ length: partitions }, () => []);
    this.firstKept = new Array<number>(partitions).fill(0);
    shape.records.forEach((value, idx) => {
      const channel = value === NOISE ? null : (this.channels[value % channelCount] as string);
      const partition = channel === null ? idx % partitions : (this.partitionOf.get(channel) as number);
      const list = this.byPartition[partition] as LogRecord[];
      const offset = list.length;
      const record: LogRecord = { partition, offset, key: channel, value: null, headers: {}, timestamp: 0, payload: payloadFromValue(idx) };
      list.push(record);
      this.recs.push({ idx, partition, offset, channel, id: `${partition}-${offset}`, record });
    });
    this.N = this.recs.length;
    this.s = Math.floor((shape.startAt * this.N) / 100);
    this.d0 = this.s + Math.floor((shape.subscribeAt * (this.N - this.s)) / 100);
    this.engine = new ChannelEngine({
      epoch: EPOCH,
      partitions,
      ring: { maxCount: shape.ring, maxBytes: 1e12, maxAgeMs: 1e12 },
      maxIdleChannels: shape.maxIdle,
      maxIdleBytes: 1e12,
      ...(this.s > 0 ? { start: this.frontierAfter(this.s) } : {}),
      now: () => 0,
    });
    // The model's checks throw from inside deliveries; the engine would count them and go on.
    this.engine.onDeliveryError = (error) => {
      throw error;
    };
    const router = new KeyRouter(1 << 20);
    this.#ingest = createIngest(this.engine, router, () => {});
    this.resumer = new Resumer(this.engine, new LogReadBack(this, router, quiet));
    this.next = this.s;
  }

  /** The frontier of a reader that has seen the first `k` records of the log. */
  frontierAfter(k: number, epoch = EPOCH): Frontier {
    const offsets = new Array<number>(this.shape.partitions).fill(-1);
    for (let i = 0; i < k; i++) {
      const rec = this.recs[i] as Rec;
      offsets[rec.partition] = rec.offset;
    }
    return Frontier.of(epoch, offsets, offsets.map(() => WHOLE_RECORD));
  }

  note(line: string): void {
    this.trace.push(line);
  }

  /** The node reads `n` more records of the log (fewer at its end). */
  dispatch(n: number): void {
    const to = Math.min(this.N, this.next + n);
    if (to > this.next) this.note(`node dispatches #${this.next}..#${to - 1}`);
    while (this.next < to) {
      const rec = this.recs[this.next++] as Rec;
      this.#ingest([rec.record]);
      this.rethrow();
    }
  }

  dispatchTo(k: number): void {
    this.dispatch(k - this.next);
  }

  /** Retention: the log forgets a prefix of what the node has seen, per partition. */
  retain(percent: readonly number[]): void {
    const frontier = this.engine.frontier();
    for (let p = 0; p < this.shape.partitions; p++) {
      const seen = (frontier.offsets[p] as number) + 1;
      const kept = Math.max(this.firstKept[p] as number, Math.floor(((percent[p] ?? 0) * seen) / 100));
      if (kept > (this.firstKept[p] as number)) {
        this.firstKept[p] = kept;
        this.note(`retention: log p${p} now starts at offset ${kept}`);
      }
    }
  }

  async readRange(partition: number, afterOffset: number, upToOffset: number): Promise<{ records: LogRecord[]; firstAvailable?: number }> {
    const action = this.shape.reads[this.#reads++] ?? { burst: 0, retain: null };
    const attempt = this.active;
    count('range reads');
    if (attempt) attempt.reads++;
    if (action.burst > 0 && this.next < this.N) count('range reads with records dispatched meanwhile');
    this.note(`  read p${partition} (${afterOffset}, ${upToOffset}] in flight; meanwhile: burst ${action.burst}${action.retain ? `, retention ${action.retain.join('/')}%` : ''}`);
    // The read is held until the traffic of the meantime has been dispatched.
    await new Promise<void>((release) =>
      queueMicrotask(() => {
        try {
          this.dispatch(action.burst);
          if (action.retain) this.retain(action.retain);
          attempt?.onRead?.();
        } catch (error) {
          this.failure ??= error;
        }
        release();
      }),
    );
    if (upToOffset <= afterOffset) return { records: [] };
    const kept = this.firstKept[partition] as number;
    const first = Math.max(afterOffset + 1, kept);
    // Like the Kafka range reader: the size is counted from what retention left.
    if (upToOffset - first + 1 > this.shape.readLimit) {
      attempt?.losses.push({ partition, lo: afterOffset, hi: upToOffset, why: 'over the read-back limit' });
      count('range reads over the limit');
      this.note(`  read p${partition} refused: ${upToOffset - first + 1} records, over the limit of ${this.shape.readLimit}`);
      throw new Error(`the missing range holds ${upToOffset - first + 1} records, over the limit of ${this.shape.readLimit}`);
    }
    const records = (this.byPartition[partition] as LogRecord[]).slice(first, upToOffset + 1);
    if (afterOffset + 1 < kept) {
      attempt?.losses.push({ partition, lo: afterOffset, hi: Math.min(upToOffset, kept - 1), why: 'retention' });
      count('range reads short by retention');
      this.note(`  read p${partition} returns ${records.length} records; retention lost up to offset ${kept - 1}`);
      return { records, firstAvailable: kept };
    }
    this.note(`  read p${partition} returns ${records.length} records`);
    return { records };
  }

  rethrow(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  describe(): string {
    const { shape } = this;
    const recs = this.recs.length <= 150 ? this.recs : this.recs.slice(0, 150);
    return [
      `partitions=${shape.partitions} ring.maxCount=${shape.ring} maxIdleChannels=${shape.maxIdle} readLimit=${shape.readLimit === UNLIMITED ? 'none' : shape.readLimit}`,
      `channels ${this.channels.map((c) => `${c}→p${this.partitionOf.get(c)}`).join(' ')}`,
      `log of ${this.N} records; the node starts reading at #${this.s} (what is before is only in the log); the client first subscribes when the node is at #${this.d0}`,
      `records (#index:channel@partition-offset): ${recs.map((r) => `#${r.idx}:${r.channel ?? '-'}@${r.id}`).join(' ')}${recs.length < this.N ? ' …' : ''}`,
    ].join('\n');
  }
}

// ---------------------------------------------------------------------------------------------
// The model client: what it was given, checked against the log
// ---------------------------------------------------------------------------------------------

const PENDING = 0;
const DELIVERED = 1;
const EXCUSED = 2;

/** One subscribed channel's records in log order, and what became of each for the client. */
class Book {
  readonly recs: Rec[] = [];
  readonly index = new Map<string, number>();
  needed: boolean[] = [];
  state = new Uint8Array(0);
  /** Index of the last record delivered. */
  last = -1;
  /** Every needed record before this index was delivered or excused. */
  ok = 0;

  advance(): number {
    while (this.ok < this.recs.length && (!this.needed[this.ok] || this.state[this.ok] !== PENDING)) this.ok++;
    return this.ok;
  }
}

class Client {
  /**
   * Per subscription key and partition (`<key>|<partition>`): the log orders a partition, not
   * the log as a whole, so a pattern over channels of several partitions is checked per partition.
   */
  readonly books = new Map<string, Book>();
  /** The last cursor of this log the client holds (for "never backwards" and "never re-sent"). */
  cursor: Frontier | undefined;
  /** What it sends when it (re)subscribes. */
  text: string | undefined;
  readonly originText: string | undefined;
  attempts = 0;
  received = 0;
  /** Where the cursor not yet checked at a leave point came from. */
  #unchecked: string | undefined;

  constructor(
    readonly world: World,
    readonly channels: readonly string[],
    readonly origin: Origin,
  ) {
    const { d0, N } = world;
    let needed: (rec: Rec) => boolean;
    switch (origin.kind) {
      case 'fresh':
        this.originText = undefined;
        needed = (rec) => rec.idx >= d0;
        break;
      case 'garbled':
        this.originText = garbledCursor(origin.form, world.shape.partitions);
        needed = (rec) => rec.idx >= d0;
        break;
      case 'old': {
        const k = Math.max(0, d0 - origin.back);
        this.cursor = world.frontierAfter(k);
        this.originText = this.cursor.toString();
        needed = (rec) => rec.idx >= k;
        break;
      }
      case 'lagging': {
        const k = d0 < N ? d0 + 1 + (origin.ahead % (N - d0)) : d0;
        this.cursor = world.frontierAfter(k);
        this.originText = this.cursor.toString();
        needed = (rec) => rec.idx >= k;
        break;
      }
      case 'foreign':
        this.originText = world.frontierAfter(Math.max(0, d0 - origin.back), FOREIGN_EPOCH).toString();
        needed = () => true;
        break;
    }
    this.text = this.originText;
    for (const channel of channels) {
      for (let p = 0; p < world.shape.partitions; p++) this.books.set(`${channel}|${p}`, new Book());
    }
    for (const rec of world.recs) {
      for (const key of channels) {
        if (rec.channel === null || !keyCovers(key, rec.channel)) continue;
        const book = this.books.get(`${key}|${rec.partition}`) as Book;
        book.index.set(rec.id, book.recs.length);
        book.recs.push(rec);
        book.needed.push(needed(rec));
      }
    }
    for (const book of this.books.values()) book.state = new Uint8Array(book.recs.length);
    const text = this.originText === undefined ? 'none' : this.originText.length > 60 ? `${this.originText.slice(0, 60)}…` : this.originText;
    world.note(`client: ${origin.kind} cursor ${text}, channels [${channels.join(',')}]`);
  }

  fail(message: string): never {
    const trace = this.world.trace.length > 250 ? ['…', ...this.world.trace.slice(-250)] : this.world.trace;
    const error = new ModelFailure(`${message}\n--- case ---\n${this.world.describe()}\n--- trace ---\n${trace.join('\n')}`);
    this.world.failure ??= error;
    throw error;
  }

  /** Starts a subscribe or a poll with the client's cursor. */
  begin(): Attempt {
    const n = this.attempts++;
    const text = this.text;
    let kind: AttemptKind = 'cursor';
    if (text === undefined) kind = 'none';
    else if (text === this.originText && this.origin.kind === 'foreign') kind = 'foreign';
    else if (text === this.originText && this.origin.kind === 'garbled') kind = 'garbled';
    if (kind === 'none' && n > 0) {
      // It never got a cursor: nothing before this subscribe can be asked for.
      for (const book of this.books.values()) {
        book.recs.forEach((rec, i) => {
          if (book.state[i] === PENDING && rec.idx < this.world.next) book.state[i] = EXCUSED;
        });
      }
    }
    this.world.note(`connect #${n} (${kind}) from ${text === undefined ? 'no cursor' : text.length > 60 ? `${text.slice(0, 60)}…` : text}; node at #${this.world.next}`);
    return { n, kind, text, dispatchedAt: this.world.next, losses: [], reads: 0 };
  }

  /** The node must read the client's cursor as the model does. */
  checkPoint(attempt: Attempt, from: ResumePoint): void {
    const expected = { none: 'now', cursor: 'cursor', foreign: 'reset/unknown_epoch', garbled: 'reset/bad_cursor' }[attempt.kind];
    const got = from.kind === 'reset' ? `reset/${from.reason}` : from.kind;
    if (got !== expected) this.fail(`cursor ${attempt.text} was read as ${got}, expected ${expected}`);
  }

  /** A plan's (or poll answer's) resets: the right reason, and only where data is really gone. */
  checkResets(attempt: Attempt, resets: readonly ResetNotice[]): void {
    const reason = { none: undefined, cursor: 'cursor_expired', foreign: 'unknown_epoch', garbled: 'bad_cursor' }[attempt.kind];
    for (const reset of resets) {
      if (!this.channels.includes(reset.channel)) this.fail(`reset for ${reset.channel}, which is not subscribed: ${JSON.stringify(reset)}`);
      if (reset.reason !== reason) this.fail(`${reset.reason} reset on a resume from ${attempt.kind} cursor ${attempt.text}: ${JSON.stringify(reset)}`);
      if (reset.reason !== 'cursor_expired') continue;
      const from = this.parse(reset.from, 'reset.from');
      const to = this.parse(reset.to, 'reset.to');
      let justified = false;
      for (let p = 0; p < from.partitions; p++) {
        const lo = from.offsets[p] as number;
        const hi = to.offsets[p] as number;
        for (const loss of attempt.losses) {
          if (loss.partition === p && Math.max(lo, loss.lo) < Math.min(hi, loss.hi)) justified = true;
        }
      }
      if (!justified) {
        const losses = attempt.losses.map((l) => `p${l.partition} (${l.lo}, ${l.hi}] ${l.why}`).join('; ') || 'none';
        this.fail(`reset without data loss (no retention, same epoch, under the limit): ${JSON.stringify(reset)}; the log lost: ${losses}`);
      }
    }
    if (attempt.kind === 'foreign' || attempt.kind === 'garbled') {
      for (const channel of this.channels) {
        if (!resets.some((reset) => reset.channel === channel)) this.fail(`no ${reason} reset for ${channel} on a resume from ${attempt.text}`);
      }
    }
  }

  /** A reset notice the client received: what it names as lost is excused. */
  reset(reset: ResetNotice, attempt: Attempt): void {
    count(`resets received: ${reset.reason}`);
    this.world.note(`  client ← reset ${reset.reason} ${reset.channel} from ${reset.from ?? '-'} to ${reset.to ?? '-'}`);
    const books = [...this.books].filter(([key]) => key.startsWith(`${reset.channel}|`)).map(([, book]) => book);
    if (reset.reason !== 'cursor_expired') {
      for (const book of books) {
        book.recs.forEach((rec, i) => {
          if (book.state[i] === PENDING && rec.idx < attempt.dispatchedAt) book.state[i] = EXCUSED;
        });
      }
      return;
    }
    const from = this.parse(reset.from, 'reset.from');
    const to = this.parse(reset.to, 'reset.to');
    for (const book of books) {
      book.recs.forEach((rec, i) => {
        if (book.state[i] !== PENDING || from.includes(rec.partition, rec.offset, 0) || !to.includes(rec.partition, rec.offset, 0)) return;
        if (attempt.losses.some((l) => l.partition === rec.partition && rec.offset > l.lo && rec.offset <= l.hi)) book.state[i] = EXCUSED;
      });
    }
  }

  message(channel: string, id: string, cursor: string | undefined, via: string): void {
    this.checkpoint();
    this.received++;
    this.world.note(`  client ← ${via} ${channel} ${id}${cursor === undefined ? '' : ` cursor ${cursor}`}`);
    const keys = this.channels.filter((key) => keyCovers(key, channel));
    if (keys.length === 0) this.fail(`${via}: got ${id} of ${channel}, which is not subscribed`);
    const partition = Number(id.split('-')[0]);
    // One stream: a message that a channel and a pattern (or two patterns) both match comes once,
    // and counts for each of them.
    for (const key of keys) this.#deliveredTo(key, this.books.get(`${key}|${partition}`) as Book, channel, id, via);
    if (cursor !== undefined) this.cursorSeen(cursor, `cursor of ${id}`);
  }

  #deliveredTo(key: string, book: Book, channel: string, id: string, via: string): void {
    const i = book.index.get(id);
    if (i === undefined) this.fail(`${via}: got ${id} on ${channel}, which is no record of that channel`);
    const rec = book.recs[i] as Rec;
    if (book.state[i] === DELIVERED) this.fail(`${via}: ${channel} ${id} delivered twice`);
    if (this.cursor?.includes(rec.partition, rec.offset, 0)) this.fail(`${via}: ${channel} ${id} sent though the client's cursor ${this.cursor.toString()} covers it already`);
    if (!book.needed[i]) this.fail(`${via}: ${channel} ${id} (#${rec.idx}) sent, but it is not after the client's original cursor (or was dispatched before its fresh subscribe)`);
    if (this.text !== undefined && this.text === this.originText && this.origin.kind === 'lagging') count('messages received while the cursor is a lagging-node one');
    if (i < book.last) this.fail(`${via}: ${channel} ${id} out of log order (after ${(book.recs[book.last] as Rec).id})`);
    const ok = book.advance();
    if (ok < i) this.fail(`${via}: ${channel} ${id} arrived but ${(book.recs[ok] as Rec).id} before it was never delivered and no reset named it`);
    book.state[i] = DELIVERED;
    book.last = i;
    if (key !== channel) count('messages received through a pattern');
  }

  cursorSeen(text: string, via: string): void {
    if (!via.startsWith('cursor of')) this.world.note(`  client ← ${via} ${text}`);
    const cursor = this.parse(text, via);
    if (this.cursor && !cursor.covers(this.cursor)) this.fail(`${via}: cursor moved backwards: ${this.cursor.toString()} → ${text}`);
    this.cursor = cursor;
    this.text = text;
    this.#unchecked = via;
  }

  /**
   * The client may leave here, holding its cursor: that cursor must not cover a message it never
   * got unless a reset named it. Checked where a client can leave (before each message, when its
   * connection goes, after a plan or a poll answer), not between the frames of one plan: the
   * WebSocket `subscribed` reply comes before the resets that explain what its cursor skips.
   */
  checkpoint(): void {
    const via = this.#unchecked;
    if (via === undefined || this.cursor === undefined) return;
    this.#unchecked = undefined;
    for (const [channel, book] of this.books) {
      const ok = book.advance();
      const rec = book.recs[ok];
      if (rec && this.cursor.includes(rec.partition, rec.offset, 0)) {
        this.fail(`${via}: cursor ${this.text} covers ${channel} ${rec.id} (#${rec.idx}), which the client never got and no reset named: resuming from it loses it`);
      }
    }
  }

  /** At the end every needed message was delivered or excused. */
  finish(): void {
    this.checkpoint();
    for (const [channel, book] of this.books) {
      const ok = book.advance();
      const rec = book.recs[ok];
      if (rec) this.fail(`${channel} ${rec.id} (#${rec.idx}) was never delivered and no reset named it`);
    }
  }

  parse(text: string | undefined, what: string): Frontier {
    if (text === undefined) this.fail(`${what} is missing`);
    const parsed = parseCursor(text, EPOCH, this.world.shape.partitions);
    if (!parsed.ok) this.fail(`${what} ${text} does not parse: ${parsed.message}`);
    return parsed.frontier;
  }
}

// ---------------------------------------------------------------------------------------------
// Streaming (SSE and WebSocket): a session whose sink is the model client
// ---------------------------------------------------------------------------------------------

/** What each encoding carried: the wire format records the message and the cursor it was given. */
const WRITTEN = new WeakMap<Buffer, { channel: string; id: string; cursor: string }>();
const MODEL_FORMAT = defineWireFormat('resume-model', (fields, cursor) => {
  const match = /^"channel":"([^"]*)","id":"([^"]*)"/.exec(fields);
  const bytes = Buffer.from(cursor);
  if (match) WRITTEN.set(bytes, { channel: match[1] as string, id: match[2] as string, cursor });
  return bytes;
});

class Connection implements SessionSink {
  readonly format = MODEL_FORMAT;
  readonly streamPerSubscription = false;
  readonly bufferedAmount = 0;
  readonly session: Session;
  /** The client went away: nothing written from now on reaches it. */
  gone: boolean;
  /** The plan was written (heartbeats and pongs may go out). */
  ready = false;
  #left: number;

  constructor(readonly client: Client, readonly attempt: Attempt, after: number) {
    this.session = new Session(client.world.engine, this, { maxBufferedBytes: 1e12 });
    this.#left = after;
    this.gone = after === 0;
    if (this.gone) client.world.note(`  (connection #${attempt.n} is gone before it receives anything)`);
  }

  write(bytes: Buffer): void {
    if (this.session.closed) this.client.fail(`connection #${this.attempt.n}: a write after its session closed`);
    if (this.gone) return;
    const written = WRITTEN.get(bytes);
    if (!written) this.client.fail(`connection #${this.attempt.n}: bytes that are no message: ${bytes.toString()}`);
    this.client.message(written.channel, written.id, written.cursor, `#${this.attempt.n}`);
    if (--this.#left === 0) {
      this.client.checkpoint();
      count('connections left after k messages');
      this.gone = true;
      this.client.world.note(`  (connection #${this.attempt.n} goes away)`);
    }
  }

  /** A control frame (reset, cursor event, subscribed reply, pong): reaches the client unless it left. */
  control(deliver: () => void): void {
    if (!this.gone) deliver();
  }

  disconnect(reason: Disconnect): void {
    this.client.fail(`the session disconnected the client: ${JSON.stringify(reason)}`);
  }
}

async function runStream(c: StreamCase): Promise<void> {
  const world = new World(c);
  world.dispatchTo(world.d0);
  const keys = subscriptionKeys(world, c);
  const channels = c.style === 'ws' ? keys.slice(0, 1) : keys;
  const client: Client = new Client(world, channels, c.origin);
  world.note(`style ${c.style}`);
  let live: Connection | undefined;
  let connections = 0;

  const settle = (): void => {
    world.rethrow();
    client.checkpoint();
    if (live && live.gone && !live.session.closed) {
      live.session.close();
      world.note(`  (connection #${live.attempt.n} closed)`);
    }
  };
  const connected = (): boolean => live !== undefined && !live.session.closed;

  /** One subscribe, driven the way transports/sse.ts and transports/websocket.ts drive a plan. */
  const connect = async (): Promise<void> => {
    const leave = c.disconnects[connections++];
    const attempt = client.begin();
    const conn = new Connection(client, attempt, leave?.after ?? Number.POSITIVE_INFINITY);
    live = conn;
    if (leave?.duringRead) {
      attempt.onRead = () => {
        if (conn.session.closed) return;
        conn.gone = true;
        conn.session.close();
        count('connections left during a read');
        world.note(`  (connection #${attempt.n} goes away during the read)`);
      };
    }
    const from = world.resumer.resumePoint(attempt.text);
    client.checkPoint(attempt, from);
    world.active = attempt;
    const plan = await world.resumer.subscribe(OPEN_IDENTITY, conn.session, channels, from, null);
    world.active = undefined;
    world.rethrow();
    if (!plan || conn.session.closed) {
      world.note(`  (subscribe #${attempt.n} abandoned: ${plan ? 'closed' : 'no plan'})`);
      settle();
      return;
    }
    count('stream plans');
    if (plan.fromLog.length > 0) count('stream plans with messages from the log');
    if (plan.fromLog.length > 0 && plan.backlog.length > 0) count('stream plans with messages from the log and the rings');
    world.note(`  plan #${attempt.n}: ${plan.resets.length} resets, ${plan.fromLog.length} from the log, ${plan.backlog.length} from the rings, start ${plan.startCursor.toString()}`);
    if (attempt.reads > 0 && attempt.losses.length === 0) count('stream resumes that read the log and lost nothing (no reset allowed)');
    client.checkResets(attempt, plan.resets);
    if (c.style === 'ws') conn.control(() => client.cursorSeen(plan.startCursor.toString(), 'subscribed.cursor'));
    for (const reset of plan.resets) conn.control(() => client.reset(reset, attempt));
    conn.session.replayFromLog(plan.fromLog);
    conn.session.replay(plan.backlog);
    conn.session.release();
    if (c.style === 'sse') {
      const idle = conn.session.idleCursor();
      if (idle) conn.control(() => client.cursorSeen(idle.toString(), 'sse cursor event'));
    }
    conn.ready = true;
    settle();
  };

  await connect();
  for (const step of c.steps) {
    switch (step.kind) {
      case 'dispatch':
        world.dispatch(step.n);
        break;
      case 'heartbeat':
        if (live && connected() && live.ready) {
          const conn = live;
          const idle = conn.session.idleCursor();
          if (idle) conn.control(() => client.cursorSeen(idle.toString(), c.style === 'sse' ? 'heartbeat' : 'pong'));
        }
        break;
      case 'retain':
        world.retain(step.percent);
        break;
      case 'reconnect':
        if (!connected()) await connect();
        break;
    }
    settle();
  }
  world.dispatchTo(world.N);
  settle();
  while (!connected()) {
    if (connections > c.disconnects.length + 1) client.fail('the client never stays connected');
    await connect();
  }
  client.finish();
  live?.session.close();
}

// ---------------------------------------------------------------------------------------------
// Long-poll: Resumer.collect, and the spool for held polls (transports/polling.ts)
// ---------------------------------------------------------------------------------------------

async function runPoll(c: PollCase): Promise<void> {
  const world = new World(c);
  world.dispatchTo(world.d0);
  const channels = subscriptionKeys(world, c);
  const client: Client = new Client(world, channels, c.origin);
  world.note(`long-poll, pollMaxMessages ${c.max}`);
  const spool = new PollSpool(world.engine, c.max);

  /** One poll; true when it brought something (or was not a resume), false when caught up. */
  const poll = async (hold: boolean, holdBurst: number): Promise<boolean> => {
    const attempt = client.begin();
    const from = world.resumer.resumePoint(attempt.text);
    client.checkPoint(attempt, from);
    world.active = attempt;
    const answer = await world.resumer.collect(OPEN_IDENTITY, channels, from, c.max);
    world.active = undefined;
    world.rethrow();
    count('polls');
    if (answer.messages.length === c.max) count('polls cut at pollMaxMessages');
    world.note(`  answer #${attempt.n}: ${answer.resets.length} resets, ${answer.messages.length} messages, cursor ${answer.cursor.toString()}`);
    if (attempt.reads > 0 && attempt.losses.length === 0) count('polls that read the log and lost nothing (no reset allowed)');
    client.checkResets(attempt, answer.resets);
    if (hold && from.kind === 'cursor' && answer.messages.length === 0 && answer.resets.length === 0) {
      // Nothing followed the cursor: the poll is held in the spool from the point it looked at.
      let body: string | undefined;
      const waiter = spool.wait(channels, answer.cursor, null, 0, {
        spoolEntry: undefined,
        answer: (bytes: Buffer) => {
          body = bytes.toString();
        },
      });
      world.note(`  poll #${attempt.n} held`);
      count('polls held');
      world.dispatch(holdBurst);
      for (let turn = 0; body === undefined && turn < 3; turn++) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        world.rethrow();
        // Nothing came this turn: the poll times out (what polling.ts's timer sends).
        if (body === undefined && spool.expire(waiter)) {
          body = pollBody([], neverBehind(world.engine.frontier(), from).max(answer.cursor).toString(), [], null);
          world.note(`  poll #${attempt.n} timed out`);
          count('held polls timed out');
        }
      }
      const text = body as string | undefined;
      if (text === undefined) client.fail(`held poll #${attempt.n} was never answered`);
      const reply = JSON.parse(text) as { messages: { channel: string; id: string }[]; cursor: string; resets?: unknown };
      if (reply.resets !== undefined) client.fail(`a held poll answered with resets: ${text}`);
      for (const message of reply.messages) client.message(message.channel, message.id, undefined, `held poll #${attempt.n}`);
      client.cursorSeen(reply.cursor, 'held poll cursor');
      client.checkpoint();
      return true;
    }
    for (const reset of answer.resets) client.reset(reset, attempt);
    for (const message of answer.messages) client.message(message.channel, message.id, undefined, `poll #${attempt.n}`);
    client.cursorSeen(answer.cursor.toString(), 'poll cursor');
    client.checkpoint();
    return answer.messages.length > 0 || answer.resets.length > 0 || from.kind !== 'cursor';
  };

  // The first poll is the client's subscribe: it happens at once, before anything else is dispatched.
  const steps = c.polls.length > 0 ? c.polls : [{ hold: false, holdBurst: 0, dispatch: 0, retain: null }];
  for (const step of steps) {
    await poll(step.hold, step.holdBurst);
    world.dispatch(step.dispatch);
    if (step.retain) world.retain(step.retain);
  }
  world.dispatchTo(world.N);
  for (let polls = 0; await poll(false, 0); polls++) {
    if (polls > 2 * world.N + 20) client.fail('the polls never catch up');
  }
  client.finish();
}

// ---------------------------------------------------------------------------------------------

describe('resume plan (model)', () => {
  afterAll(() => {
    if (env.RESUME_MODEL_STATS) console.log([...STATS].map(([what, n]) => `${String(n).padStart(9)}  ${what}`).join('\n'));
  });

  it(`streaming (SSE/WebSocket): every message after the cursor exactly once, in order, or named by a justified reset (${RUNS} seeded cases)`, async () => {
    if (ONE_CASE) {
      if ('style' in ONE_CASE) await runStream(ONE_CASE);
      return;
    }
    await fc.assert(
      fc.asyncProperty(streamCaseArb, (c) => runStream(c)),
      params(0x5eed_0001),
    );
  }, 120_000);

  it(`long-poll (Resumer.collect and the spool): the same guarantees poll by poll (${RUNS} seeded cases)`, async () => {
    if (ONE_CASE) {
      if ('max' in ONE_CASE) await runPoll(ONE_CASE);
      return;
    }
    await fc.assert(
      fc.asyncProperty(pollCaseArb, (c) => runPoll(c)),
      params(0x5eed_0002),
    );
  }, 120_000);
});
