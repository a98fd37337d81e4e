/**
 * Delta codecs: the difference between a channel message and the one before it, computed once
 * per message (on first need) and shared by every subscriber that asked for that codec.
 */
import type { Payload } from '../protocol/envelope.js';

export type DeltaFormat = 'json-patch' | 'vcdiff';

export interface DeltaCodec {
  readonly format: DeltaFormat;
  /** Index of this codec's variant in a message's memo (1-based; 0 is the full message). */
  readonly variant: number;
  /**
   * The JSON text of the delta's `data` field turning `base` into `target`, or undefined when no
   * delta can express it (the full message is sent instead).
   */
  diff(base: Payload, target: Payload): string | undefined;
}

/** Variants per wire format in a message's memo: full, json-patch, vcdiff. */
export const DELTA_VARIANTS = 3;
