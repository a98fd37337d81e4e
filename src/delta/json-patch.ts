/**
 * JSON Patch (RFC 6902) deltas via fast-json-patch's compare(). Arrays are diffed by index, so a
 * shifted array can give a long patch; the engine then sends the full message instead.
 */
import jsonPatch from 'fast-json-patch';
import type { DeltaCodec } from './codec.js';
import { payloadValue } from './payload-value.js';

export const JSON_PATCH: DeltaCodec = {
  format: 'json-patch',
  variant: 1,
  diff(base, target) {
    // base64 payloads are opaque bytes: a patch of one string by another is never smaller.
    if (base.encoding || target.encoding) return undefined;
    const from = payloadValue(base);
    const to = payloadValue(target);
    // compare() diffs objects and arrays only; a scalar root or a change of type replaces the root.
    if (typeof from !== 'object' || from === null || typeof to !== 'object' || to === null || Array.isArray(from) !== Array.isArray(to)) {
      return undefined;
    }
    return JSON.stringify(jsonPatch.compare(from, to));
  },
};
