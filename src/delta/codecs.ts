/** The delta codecs by the name clients ask for (`delta=json-patch`, `delta=vcdiff`). */
import { PushError } from '../errors.js';
import type { DeltaCodec } from './codec.js';
import { JSON_PATCH } from './json-patch.js';
import { VCDIFF } from './vcdiff.js';

export const DELTA_CODECS: Readonly<Record<string, DeltaCodec>> = { 'json-patch': JSON_PATCH, vcdiff: VCDIFF };

/** Reads a `delta` request value: a codec, or null for full messages (absent or `none`). */
export function deltaCodecOf(value: unknown): DeltaCodec | null {
  if (value === undefined || value === null || value === 'none') return null;
  const codec = typeof value === 'string' ? DELTA_CODECS[value] : undefined;
  if (!codec) throw new PushError('bad_request', `delta must be one of none, ${Object.keys(DELTA_CODECS).join(', ')}; got ${JSON.stringify(value)?.slice(0, 40)}`);
  return codec;
}
