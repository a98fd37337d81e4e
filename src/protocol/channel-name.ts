/**
 * Channel name rules (docs/protocol.md): 1 to 255 bytes of UTF-8, levels separated by `/`, no
 * empty level, no control characters. Names travel in query strings and JSON, never in a path.
 */

export const MAX_CHANNEL_BYTES = 255;
// C0 controls, DEL and C1 controls: invisible in logs and dashboards, and never meant as names.
const FORBIDDEN = /[\u0000-\u001f\u007f-\u009f]/;
// A lone surrogate cannot be encoded as UTF-8: it would silently become U+FFFD on the wire.
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Why `name` is not a valid channel name, or undefined when it is. */
export function channelNameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string') return 'channel must be a string';
  if (name.length === 0) return 'channel must not be empty';
  const bytes = Buffer.byteLength(name);
  if (bytes > MAX_CHANNEL_BYTES) return `channel is ${bytes} bytes, the limit is ${MAX_CHANNEL_BYTES}`;
  if (FORBIDDEN.test(name)) return 'channel must not contain control characters';
  if (name.startsWith('/') || name.endsWith('/') || name.includes('//')) return 'channel levels must not be empty (no leading, trailing or double "/")';
  if (LONE_SURROGATE.test(name)) return 'channel must be well-formed Unicode';
  return undefined;
}
