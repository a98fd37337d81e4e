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
 * Reads raw log bytes as a payload. JSON is re-serialised compactly (so SSE `data:` lines never hold
 * a raw newline); other UTF-8 text travels as a JSON string; anything else as base64.
 */
export function payloadFromBytes(bytes: Uint8Array): Payload {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return { json: JSON.stringify(Buffer.from(bytes).toString('base64')), encoding: 'base64', bytes: bytes.length };
  }
  const json = compactJson(text);
  return { json: json ?? JSON.stringify(text), bytes: bytes.length };
}

/** A payload from a value that is already parsed JSON (an HTTP or WebSocket publish). */
export function payloadFromValue(value: unknown): Payload {
  const json = JSON.stringify(value);
  return { json, bytes: Buffer.byteLength(json) };
}

/** Compact JSON text for `text`, or undefined when it is not JSON. */
export function compactJson(text: string): string | undefined {
  try {
    return JSON.stringify(JSON.parse(text));
  } catch {
    return undefined;
  }
}

/** The envelope's JSON text, without the surrounding braces, so formats can add fields cheaply. */
export function envelopeFields(channel: string, id: string, ts: number, payload: Payload): string {
  const encoding = payload.encoding ? `,"encoding":"${payload.encoding}"` : '';
  return `"channel":${JSON.stringify(channel)},"id":"${id}","ts":${ts}${encoding},"data":${payload.json}`;
}
