/**
 * The message envelope of the public wire protocol (docs/protocol.md):
 * `{"channel": "...", "id": "...", "ts": 1700000000000, "data": ...}`.
 *
 * Pure string building. The payload is turned into JSON text once when the message enters the
 * engine; every wire format then splices that text, so nothing is stringified per subscriber.
 */

/** A payload ready for the wire: `json` is the JSON text of the envelope's `data` field. */
export interface Payload {
  readonly json: string;
  /** Set when `json` is a base64 string standing for bytes that are not UTF-8. */
  readonly encoding?: 'base64';
  /** Size of the payload as the publisher sent it, for limits and ring accounting. */
  readonly bytes: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Reads raw log bytes as a payload. JSON travels as the producer wrote it, byte for byte but for
 * line breaks (so 64-bit integers and number formats survive, and SSE `data:` lines never hold a
 * raw newline); other UTF-8 text travels as a JSON string; anything else as base64.
 */
export function payloadFromBytes(bytes: Uint8Array): Payload {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return { json: JSON.stringify(Buffer.from(bytes).toString('base64')), encoding: 'base64', bytes: bytes.length };
  }
  return { json: singleLineJson(text) ?? JSON.stringify(text), bytes: bytes.length };
}

/**
 * `text` without its line breaks when it is JSON, else undefined. In valid JSON a raw CR or LF can
 * only be whitespace between tokens (inside strings they must be escaped), so dropping them
 * changes nothing; re-serialising instead would round 64-bit integers to doubles.
 */
export function singleLineJson(text: string): string | undefined {
  try {
    JSON.parse(text);
  } catch {
    return undefined;
  }
  return /[\r\n]/.test(text) ? text.replace(/[\r\n]/g, '') : text;
}

/** A payload from a value that is already parsed JSON (an HTTP or WebSocket publish). */
export function payloadFromValue(value: unknown): Payload {
  const json = JSON.stringify(value);
  return { json, bytes: Buffer.byteLength(json) };
}

/** The envelope's JSON text, without the surrounding braces, so formats can add fields cheaply. */
export function envelopeFields(channel: string, id: string, ts: number, payload: Payload): string {
  const encoding = payload.encoding ? `,"encoding":"${payload.encoding}"` : '';
  return `"channel":${JSON.stringify(channel)},"id":"${id}","ts":${ts}${encoding},"data":${payload.json}`;
}

/**
 * A delta envelope's fields: `data` holds the delta (a JSON Patch array, or a base64 VCDIFF string)
 * that turns the base message's `data` into this one's; `delta.base` names the base message.
 */
export function deltaEnvelopeFields(channel: string, id: string, ts: number, payload: Payload, format: string, baseId: string, delta: string): string {
  const encoding = payload.encoding ? `,"encoding":"${payload.encoding}"` : '';
  return `"channel":${JSON.stringify(channel)},"id":"${id}","ts":${ts}${encoding},"delta":{"format":"${format}","base":"${baseId}"},"data":${delta}`;
}
