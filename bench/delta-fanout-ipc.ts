/**
 * Messages between the delta fan-out orchestrator (delta-fanout.ts) and its load-generator child
 * (delta-fanout-client.ts), and the data both sides derive from the same seed.
 */
import { marketTicks, type DatasetMessage } from './delta-datasets.js';
import type { Mode } from './delta-wire.js';

export type FanoutTransport = 'ws' | 'sse';

/** One group of subscribers: all on one channel, all with one delta mode. */
export interface FanoutGroup {
  mode: Mode;
  channel: string;
}

export interface FanoutOpen {
  type: 'open';
  transport: FanoutTransport;
  baseUrl: string;
  groups: FanoutGroup[];
  /** Subscribers per group. */
  subscribers: number;
  /** Messages per burst, and bursts per group (the first one is warm-up), after the priming message. */
  burst: number;
  bursts: number;
  openConcurrency: number;
  openTimeoutMs: number;
}

/** Report once every expected delivery arrived or on timeout, then exit. */
export interface FanoutDrain {
  type: 'drain';
  timeoutMs: number;
}

export type ToFanoutClient = FanoutOpen | FanoutDrain;

export interface FanoutReady {
  type: 'ready';
  opened: number;
  failed: number;
  openMs: number;
  firstError?: string;
}

/** Every subscriber holds its group's priming message, so each later message can be a delta. */
export interface FanoutPrimed {
  type: 'primed';
}

/** Every subscriber of `group` has every message of burst `burst`; the last arrived at `lastReceivedAt`. */
export interface FanoutBurstDone {
  type: 'burst';
  group: number;
  burst: number;
  lastReceivedAt: number;
}

export interface GroupResult {
  expected: number;
  delivered: number;
  duplicates: number;
  outOfOrder: number;
  /** Frames with an id out of range, a delta where a full message was due, or unparseable. */
  unexpected: number;
  /** Deliveries (after priming) that came as deltas / as full messages. */
  deltaFrames: number;
  fullFrames: number;
  /** Payload bytes of the frames or events after priming, all subscribers. */
  bytes: number;
  /** Envelope ts (server publish time) → head of the frame parsed, measured bursts only. */
  latencyMs: { p50: number; p99: number; max: number };
  /** Subscriber 0 rebuilt every message and compared it with the regenerated data. */
  verified: boolean;
  verifyError?: string;
}

export interface FanoutResult {
  type: 'result';
  groups: GroupResult[];
  resets: number;
  disconnects: number;
  clientCpuSec: number;
  timedOut: boolean;
}

export type FromFanoutClient = FanoutReady | FanoutPrimed | FanoutBurstDone | FanoutResult;

/**
 * What every group's channel gets: a priming tick, then `messages` ticks of one ticker. Both
 * processes call this, so the client can check what it rebuilt without being sent the data.
 */
export function fanoutData(messages: number): DatasetMessage[] {
  return marketTicks(messages + 1, { tickers: 1 });
}
