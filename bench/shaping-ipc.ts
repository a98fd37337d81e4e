/**
 * Messages between the eliding benchmark (shaping-elide.ts) and its load-generator child
 * (shaping-client.ts), and the payload both sides agree on.
 */

export interface ShapeOpen {
  type: 'open';
  /** `http://127.0.0.1:PORT` */
  baseUrl: string;
  subscribers: number;
  /** Subscriber i takes channel `channelName(i % channels)`. */
  channels: number;
  /** The WebSocket `subscribe` op's maxRate (ms); absent for every message. */
  maxRate?: number;
  openConcurrency: number;
  openTimeoutMs: number;
}

/** Publishing is over: report `complete` once every subscriber holds `finalSeq`, or at the timeout. */
export interface ShapeDrain {
  type: 'drain';
  finalSeq: number;
  timeoutMs: number;
}

export type ToShapeClient = ShapeOpen | ShapeDrain;

export interface ShapeReady {
  type: 'ready';
  opened: number;
  failed: number;
  openMs: number;
  firstError?: string;
}

/** Sent the moment every subscriber holds the final message (or the drain timed out). */
export interface ShapeComplete {
  type: 'complete';
  timedOut: boolean;
}

/** Sent a little after `complete`, so that late extra frames are counted too. */
export interface ShapeResult {
  type: 'result';
  /** Per subscriber, in subscriber order: message frames, the sum of their `elided`, the last seq seen. */
  frames: number[];
  elided: number[];
  lastSeq: number[];
  /** Frames carrying an `elided` field (all of them when eliding, none otherwise). */
  framesWithElided: number;
  /** Frames whose seq did not follow the previous one by exactly `elided` + 1 (or 1 without eliding). */
  gapMismatches: number;
  /** Frames with a seq at or below the previous one. */
  outOfOrder: number;
  /** Frames of another channel, without a seq, or not understood. */
  unexpected: number;
  resets: number;
  disconnects: number;
  clientCpuSec: number;
  timedOut: boolean;
}

export type FromShapeClient = ShapeReady | ShapeComplete | ShapeResult;

export function channelName(index: number): string {
  return `shape/${index}`;
}
