/**
 * Parsed and canonical forms of a payload, computed at most once per payload however many deltas
 * use it (as a base and as a target).
 */
import type { Payload } from '../protocol/envelope.js';

const parsed = new WeakMap<Payload, unknown>();
const canonical = new WeakMap<Payload, string>();

/** The payload's `data` as a JSON parser with IEEE doubles reads it. */
export function payloadValue(payload: Payload): unknown {
  if (parsed.has(payload)) return parsed.get(payload);
  const value: unknown = JSON.parse(payload.json);
  parsed.set(payload, value);
  return value;
}

/**
 * `JSON.stringify(data)`: the text a client can rebuild from the value it parsed, whatever spacing
 * the producer used. VCDIFF deltas are defined over these bytes (docs/protocol.md).
 */
export function canonicalText(payload: Payload): string {
  let text = canonical.get(payload);
  if (text === undefined) {
    text = JSON.stringify(payloadValue(payload));
    canonical.set(payload, text);
  }
  return text;
}
