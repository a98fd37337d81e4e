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
  const levels = channel.split('/');
  const hash = levels.indexOf('#');
  if (hash !== -1 && hash !== levels.length - 1) return '"#" may only be the last level of a pattern';
  return undefined;
}

/** True when `name` is a pattern: a level that is exactly `+` (one level) or `#` (any below). */
export function isPattern(name: string): boolean {
  return name.split('/').some((level) => level === '+' || level === '#');
}

/** Does the subscription `filter` (a channel or a pattern) take the messages of `channel`? */
export function filterMatches(filter: string, channel: string): boolean {
  if (filter === channel) return true;
  const want = filter.split('/');
  const have = channel.split('/');
  for (let i = 0; i < want.length; i++) {
    const level = want[i];
    if (level === '#') return true; // this level and everything below it, the parent included
    if (i >= have.length || (level !== '+' && level !== have[i])) return false;
  }
  return want.length === have.length;
}
