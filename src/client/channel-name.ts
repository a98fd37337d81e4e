/**
 * The channel name rules of docs/protocol.md "Channels", checked at subscribe() so a typo throws
 * where it was made, instead of failing a whole SSE or long-poll connection with a 400 later.
 */
const encoder = new TextEncoder();

export function channelNameProblem(channel: unknown): string | undefined {
  if (typeof channel !== 'string' || channel.length === 0) return 'a channel name must be a non-empty string';
  if (encoder.encode(channel).length > 255) return 'a channel name is at most 255 bytes of UTF-8';
  if (channel.split('/').some((level) => level === '')) return 'channel levels must not be empty (no leading, trailing or double "/")';
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(channel)) return 'a channel name must not contain control characters';
  if (/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(channel)) return 'a channel name must not contain lone surrogates';
  return undefined;
}
