/**
 * Part (a) of `npm run bench:shaping`: what pattern subscriptions cost the engine at scale, in
 * process, no sockets. One ChannelEngine with 100,000 pattern subscriptions (`+` and `#`, derived
 * from 10,000 real channel names of 4-6 levels so each matches something) against one with none:
 *
 * - memory per pattern subscription: heapUsed after a forced GC, before and after subscribing;
 * - publish-side cost: the same dispatch sequence on both engines, µs per message, the difference
 *   being what matching (the trie walk on a cache miss, the cached list otherwise) and handing the
 *   message to every matching subscriber cost. Pass 1 starts with every channel's match cache
 *   cold: its first 10,000 messages are every channel once, in shuffled order (each one a trie
 *   walk), then random channels. Pass 2 repeats the sequence with the caches warm;
 * - the correctness check: for a sample of messages, the deliveries the engine made equal the
 *   number of subscriptions whose pattern matches the channel by brute force (covers() from
 *   src/protocol/channel-filter.ts over every distinct pattern, not the trie).
 *
 * Everything comes from one seeded PRNG, so every run generates the same names and sequence.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { ChannelEngine } from '../src/engine/engine.js';
import { covers } from '../src/protocol/channel-filter.js';
import { payloadFromValue, type Payload } from '../src/protocol/envelope.js';
import { seededRandom } from '../src/demo/seeded-random.js';

export interface PatternConfig {
  channels: number;
  patterns: number;
  /** Messages per timed pass. */
  messages: number;
  /** Messages checked against brute force. */
  sample: number;
  seed: number;
}

export const PATTERN_DEFAULTS: PatternConfig = { channels: 10_000, patterns: 100_000, messages: 200_000, sample: 1_000, seed: 20_240_611 };

const REGIONS = ['US', 'EU', 'APAC', 'LATAM', 'MEA'];
const MARKETS = ['main', 'alt', 'otc', 'dark'];
const SECTORS = ['tech', 'energy', 'health', 'finance', 'retail', 'industry', 'telecom', 'utility'];
const SYMBOLS = Array.from({ length: 60 }, (_, i) => `S${String(i).padStart(3, '0')}`);
const FIELDS = ['quote', 'trade', 'depth', 'stats', 'news'];
const SUBFIELDS = ['bid', 'ask', 'last', 'open', 'close', 'high', 'low', 'volume'];
/** Chance that a level of a derived pattern becomes `+`, by level: rarely the region, more often deeper. */
const PLUS_CHANCE = [0.05, 0.12, 0.2, 0.25, 0.25, 0.25];
/** Chance that a derived pattern is cut short with a final `#`. */
const HASH_CHANCE = 0.35;
const PAYLOAD_POOL = 1024;

/** The demo's seeded generator (mulberry32): the same sequence on every machine. */
export const prng = seededRandom;

function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)] as T;
}

/** Distinct channel names region/market/sector/symbol[/field[/subfield]]: 4 to 6 levels. */
export function channelNames(random: () => number, count: number): string[] {
  const names = new Set<string>();
  // Bounded: the tree has ~440,000 leaves, so `count` distinct ones come long before this.
  for (let tries = 0; names.size < count; tries++) {
    if (tries > count * 100) throw new Error(`could not draw ${count} distinct channel names`);
    const depth = random() < 0.3 ? 4 : random() < 0.5 ? 5 : 6;
    const levels = [pick(random, REGIONS), pick(random, MARKETS), pick(random, SECTORS), pick(random, SYMBOLS)];
    if (depth >= 5) levels.push(pick(random, FIELDS));
    if (depth >= 6) levels.push(pick(random, SUBFIELDS));
    names.add(levels.join('/'));
  }
  return [...names];
}

/**
 * A pattern derived from a real channel: some levels become `+`, and some patterns are cut
 * short with a final `#` (keeping 3 or more literal-or-`+` levels, so 4 to 6 levels in all).
 * Always at least one wildcard.
 */
export function derivePattern(random: () => number, channel: string): string {
  let levels = channel.split('/');
  if (random() < HASH_CHANCE) {
    const keep = 3 + Math.floor(random() * (levels.length - 3));
    levels = [...levels.slice(0, keep), '#'];
  }
  let wild = levels[levels.length - 1] === '#';
  for (let i = 0; i < levels.length; i++) {
    if (levels[i] === '#') break;
    if (random() < (PLUS_CHANCE[i] ?? 0.25)) {
      levels[i] = '+';
      wild = true;
    }
  }
  if (!wild) levels[Math.floor(random() * levels.length)] = '+';
  return levels.join('/');
}

function forceGc(): () => void {
  const existing = (globalThis as { gc?: () => void }).gc;
  if (existing) return existing;
  // Not started with --expose-gc (the npm script passes it): expose it now.
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

function heapAfterGc(gc: () => void): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

function newEngine(): ChannelEngine {
  return new ChannelEngine({
    epoch: 'bench-shaping',
    partitions: 1,
    ring: { maxCount: 1, maxBytes: 1_048_576, maxAgeMs: 3_600_000 },
    maxIdleChannels: 20_000,
    maxIdleBytes: 1 << 30,
  });
}

/** An engine and the next offset of its only partition (offsets must rise). */
interface Target {
  readonly engine: ChannelEngine;
  offset: number;
}

/** Dispatches `sequence[from, to)` (channel indexes) and returns the wall time in ms. */
function dispatch(target: Target, names: readonly string[], payloads: readonly Payload[], sequence: Int32Array, from: number, to: number): number {
  const { engine } = target;
  let offset = target.offset;
  const started = performance.now();
  for (let i = from; i < to; i++) {
    engine.dispatchRecord(0, ++offset, [{ channel: names[sequence[i] as number] as string, payload: payloads[i & (PAYLOAD_POOL - 1)] as Payload, ts: 0 }]);
  }
  const elapsed = performance.now() - started;
  target.offset = offset;
  return elapsed;
}

interface PassTimes {
  /** The first `channels` messages: every channel once, shuffled. */
  firstTouchMs: number;
  /** The rest: random channels. */
  restMs: number;
  deliveries: number;
}

export interface PatternResult {
  ok: boolean;
  failures: string[];
  channels: number;
  patternSubscriptions: number;
  distinctPatterns: number;
  /** Subscriptions ending in `#`, and the others (only `+` wildcards). */
  shapes: { endingInHash: number; plusOnly: number };
  subscribeUsPerPattern: number;
  heapBytesPerPatternSubscription: number;
  /** Extra heap the per-channel match caches take, per channel (pattern engine minus baseline, after pass 1). */
  matchCacheBytesPerChannel: number;
  messagesPerPass: number;
  deliveriesPerMessage: number;
  /** µs per message: baseline, with patterns, and the difference. */
  pass1Cold: { baselineUs: number; patternsUs: number; matchingUs: number };
  /** The first-touch part of pass 1 alone: every message a cache miss (trie walk). */
  pass1FirstTouch: { baselineUs: number; patternsUs: number; matchingUs: number };
  pass2Warm: { baselineUs: number; patternsUs: number; matchingUs: number };
  check: { messages: number; distinctChannels: number; delivered: number; bruteForce: number; mismatchedMessages: number; distinctPatternsMatchedPerMessage: number };
}

const us3 = (ms: number, count: number): number => Math.round((ms * 1000 * 1000) / count) / 1000;

function costs(baselineMs: number, patternsMs: number, count: number): { baselineUs: number; patternsUs: number; matchingUs: number } {
  const baselineUs = us3(baselineMs, count);
  const patternsUs = us3(patternsMs, count);
  return { baselineUs, patternsUs, matchingUs: Math.round((patternsUs - baselineUs) * 1000) / 1000 };
}

/**
 * JIT warm-up on throwaway engines, so neither timed engine pays for compilation. A function of
 * its own: engines held in the async caller's frame could outlive their block across an await
 * and be collected during a later heap measurement.
 */
function warmUp(patterns: readonly string[], names: readonly string[], payloads: readonly Payload[], sequence: Int32Array): void {
  const count = Math.min(sequence.length, 30_000);
  const warm: Target = { engine: newEngine(), offset: 0 };
  for (let i = 0; i < 2_000; i++) warm.engine.subscribe(patterns[i] as string, { deliver() {} }, { kind: 'now' });
  dispatch(warm, names, payloads, sequence, 0, count);
  dispatch({ engine: newEngine(), offset: 0 }, names, payloads, sequence, 0, count);
}

/** Lets timers (the watchdog) run between the synchronous phases. */
const breathe = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export async function measurePatterns(config: PatternConfig, log: (line: string) => void): Promise<PatternResult> {
  const gc = forceGc();
  const failures: string[] = [];
  const random = prng(config.seed);
  const names = channelNames(random, config.channels);
  const patterns = Array.from({ length: config.patterns }, () => derivePattern(random, pick(random, names)));
  const multiplicity = new Map<string, number>();
  for (const pattern of patterns) multiplicity.set(pattern, (multiplicity.get(pattern) ?? 0) + 1);
  const payloads = Array.from({ length: PAYLOAD_POOL }, (_, i) => payloadFromValue({ seq: i, price: Math.round(random() * 1e6) / 100, size: Math.floor(random() * 1000), venue: 'bench' }));

  // Pass sequence: every channel once (shuffled), then random channels.
  const sequence = new Int32Array(config.messages);
  const order = Array.from({ length: names.length }, (_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j] as number, order[i] as number];
  }
  const firstTouch = Math.min(names.length, config.messages);
  for (let i = 0; i < config.messages; i++) sequence[i] = i < firstTouch ? (order[i] as number) : Math.floor(random() * names.length);

  log(`patterns: ${names.length} channels (4-6 levels), ${patterns.length} pattern subscriptions (${multiplicity.size} distinct), ${config.messages} messages per pass`);

  warmUp(patterns, names, payloads, sequence);
  await breathe();

  let counted = 0;
  const subscribers = patterns.map(() => ({
    deliver(): void {
      counted++;
    },
  }));
  const withPatterns: Target = { engine: newEngine(), offset: 0 };
  const baseline: Target = { engine: newEngine(), offset: 0 };

  const heapBefore = heapAfterGc(gc);
  const subscribeStarted = performance.now();
  for (let i = 0; i < patterns.length; i++) withPatterns.engine.subscribe(patterns[i] as string, subscribers[i] as { deliver(): void }, { kind: 'now' });
  const subscribeMs = performance.now() - subscribeStarted;
  const heapAfter = heapAfterGc(gc);
  if (withPatterns.engine.patternCount !== multiplicity.size) failures.push(`engine holds ${withPatterns.engine.patternCount} patterns, ${multiplicity.size} were subscribed`);
  const bytesPerSubscription = Math.round((heapAfter - heapBefore) / patterns.length);
  log(`patterns: subscribing took ${us3(subscribeMs, patterns.length)} µs per pattern; heap +${((heapAfter - heapBefore) / 1_048_576).toFixed(1)} MiB = ${bytesPerSubscription} bytes per pattern subscription`);
  await breathe();

  const pass = (target: Target): PassTimes => {
    const before = counted;
    const firstTouchMs = dispatch(target, names, payloads, sequence, 0, firstTouch);
    const restMs = dispatch(target, names, payloads, sequence, firstTouch, config.messages);
    return { firstTouchMs, restMs, deliveries: counted - before };
  };

  // Pass 1: caches cold. Baseline first, then the pattern engine; heap read around each to see
  // what the channels cost in both and what the match caches add.
  const heap0 = heapAfterGc(gc);
  const base1 = pass(baseline);
  const heap1 = heapAfterGc(gc);
  const pat1 = pass(withPatterns);
  const heap2 = heapAfterGc(gc);
  const cacheBytesPerChannel = Math.round((heap2 - heap1 - (heap1 - heap0)) / names.length);
  await breathe();
  // Pass 2: the same sequence, every channel's matches cached.
  gc();
  const base2 = pass(baseline);
  gc();
  const pat2 = pass(withPatterns);
  await breathe();

  if (base1.deliveries !== 0 || base2.deliveries !== 0) failures.push('the baseline engine delivered to a pattern subscriber');
  if (pat1.deliveries !== pat2.deliveries) failures.push(`pass 1 made ${pat1.deliveries} deliveries, pass 2 ${pat2.deliveries} for the same messages`);
  if (withPatterns.engine.stats.deliveries !== pat1.deliveries + pat2.deliveries) failures.push(`engine counted ${withPatterns.engine.stats.deliveries} deliveries, subscribers ${pat1.deliveries + pat2.deliveries}`);

  const total = (p: PassTimes): number => p.firstTouchMs + p.restMs;
  const pass1Cold = costs(total(base1), total(pat1), config.messages);
  const pass1FirstTouch = costs(base1.firstTouchMs, pat1.firstTouchMs, firstTouch);
  const pass2Warm = costs(total(base2), total(pat2), config.messages);
  const deliveriesPerMessage = Math.round((pat2.deliveries / config.messages) * 10) / 10;
  const line = (label: string, c: { baselineUs: number; patternsUs: number; matchingUs: number }): string =>
    `${label}: ${c.patternsUs} µs/msg with patterns vs ${c.baselineUs} µs/msg without = ${c.matchingUs} µs/msg for matching + delivery`;
  log(`patterns: ${line('pass 1 (caches cold)', pass1Cold)}`);
  log(`patterns:   of which the first ${firstTouch} messages (every channel once, each a trie walk): ${pass1FirstTouch.patternsUs} vs ${pass1FirstTouch.baselineUs} µs/msg = ${pass1FirstTouch.matchingUs} µs/msg`);
  log(`patterns: ${line('pass 2 (caches warm)', pass2Warm)}`);
  log(`patterns: ${deliveriesPerMessage} pattern deliveries per message on average; match caches ~${cacheBytesPerChannel} bytes per channel`);

  // Correctness: a fresh sample of messages, each one's deliveries against brute force.
  const distinct = [...multiplicity.entries()].map(([pattern, count]) => ({ levels: pattern.split('/'), count }));
  const bruteCache = new Map<string, { subs: number; patterns: number }>();
  const brute = (name: string): { subs: number; patterns: number } => {
    let known = bruteCache.get(name);
    if (known === undefined) {
      const levels = name.split('/');
      let subs = 0;
      let matched = 0;
      for (const { levels: filter, count } of distinct) {
        if (covers(filter, levels)) {
          subs += count;
          matched++;
        }
      }
      bruteCache.set(name, (known = { subs, patterns: matched }));
    }
    return known;
  };
  let checkDelivered = 0;
  let checkExpected = 0;
  let mismatched = 0;
  let patternsMatched = 0;
  const checkRandom = prng(config.seed ^ 0x5eed);
  for (let i = 0; i < config.sample; i++) {
    const channel = pick(checkRandom, names);
    const before = counted;
    withPatterns.engine.dispatchRecord(0, ++withPatterns.offset, [{ channel, payload: payloads[i & (PAYLOAD_POOL - 1)] as Payload, ts: 0 }]);
    const got = counted - before;
    const want = brute(channel);
    checkDelivered += got;
    checkExpected += want.subs;
    patternsMatched += want.patterns;
    if (got !== want.subs) {
      if (mismatched === 0) failures.push(`message to ${channel}: ${got} deliveries, ${want.subs} subscriptions match by brute force`);
      mismatched++;
    }
  }
  if (mismatched > 0) failures.push(`${mismatched} of ${config.sample} sampled messages had the wrong number of deliveries`);
  const check = {
    messages: config.sample,
    distinctChannels: bruteCache.size,
    delivered: checkDelivered,
    bruteForce: checkExpected,
    mismatchedMessages: mismatched,
    distinctPatternsMatchedPerMessage: Math.round((patternsMatched / config.sample) * 10) / 10,
  };
  log(
    `patterns: check on ${config.sample} sampled messages (${bruteCache.size} channels): ${checkDelivered} deliveries, ${checkExpected} by brute force over ${distinct.length} distinct patterns ` +
      `(${check.distinctPatternsMatchedPerMessage} distinct patterns match per message): ${mismatched === 0 ? 'OK' : `FAILED (${mismatched} messages differ)`}`,
  );

  return {
    ok: failures.length === 0,
    failures,
    channels: names.length,
    patternSubscriptions: patterns.length,
    distinctPatterns: multiplicity.size,
    shapes: { endingInHash: patterns.filter((p) => p.endsWith('/#')).length, plusOnly: patterns.filter((p) => !p.endsWith('/#')).length },
    subscribeUsPerPattern: us3(subscribeMs, patterns.length),
    heapBytesPerPatternSubscription: bytesPerSubscription,
    matchCacheBytesPerChannel: cacheBytesPerChannel,
    messagesPerPass: config.messages,
    deliveriesPerMessage,
    pass1Cold,
    pass1FirstTouch,
    pass2Warm,
    check,
  };
}
