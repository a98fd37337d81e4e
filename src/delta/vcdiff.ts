/**
 * VCDIFF (RFC 3284) deltas over the UTF-8 bytes of `JSON.stringify(data)` of the base and the
 * target, carried as a base64 JSON string. Canonical text rather than the bytes as published, so a
 * client rebuilds the base from the value it parsed, on any transport.
 */
import type { DeltaCodec } from './codec.js';
import { canonicalText } from './payload-value.js';
import { encodeVcdiff } from './vcdiff-encoder.js';

export const VCDIFF: DeltaCodec = {
  format: 'vcdiff',
  variant: 2,
  diff(base, target) {
    const delta = encodeVcdiff(Buffer.from(canonicalText(base)), Buffer.from(canonicalText(target)));
    return `"${Buffer.from(delta.buffer, delta.byteOffset, delta.byteLength).toString('base64')}"`;
  },
};
