import { describe, expect, it } from 'vitest';
import { MAX_CHANNEL_BYTES, channelNameProblem } from '../../../src/protocol/channel-name.js';

describe('channelNameProblem', () => {
  it.each(['US/NASDAQ/AAPL', 'vehicles/1430', 'prix/€', 'a', 'with space/and-dash_underscore.dot', '😀/emoji', 'x'.repeat(MAX_CHANNEL_BYTES)])(
    'accepts %j',
    (name) => {
      expect(channelNameProblem(name)).toBeUndefined();
    },
  );

  it('accepts exactly 255 bytes and rejects 256, counting UTF-8 bytes', () => {
    expect(MAX_CHANNEL_BYTES).toBe(255);
    expect(channelNameProblem('€'.repeat(85))).toBeUndefined(); // 255 bytes, 85 characters
    expect(channelNameProblem('a' + '€'.repeat(85))).toMatch(/256 bytes/);
    expect(channelNameProblem('x'.repeat(256))).toMatch(/256 bytes, the limit is 255/);
  });

  it.each([
    ['empty', '', /empty/],
    ['NUL', 'a\u0000b', /control/],
    ['newline', 'a\nb', /control/],
    ['DEL', 'a\u007fb', /control/],
    ['C1 control', 'a\u0085b', /control/],
    ['leading slash', '/a', /levels must not be empty/],
    ['trailing slash', 'a/', /levels must not be empty/],
    ['double slash', 'a//b', /levels must not be empty/],
    ['only a slash', '/', /levels must not be empty/],
    ['lone high surrogate', 'a\ud83d', /well-formed/],
    ['lone low surrogate', '\ude00b', /well-formed/],
    ['reversed surrogate pair', 'a\ude00\ud83d', /well-formed/],
  ])('rejects %s', (_what, name, problem) => {
    expect(channelNameProblem(name)).toMatch(problem);
  });

  it('rejects anything that is not a string', () => {
    for (const value of [undefined, null, 42, ['a'], { name: 'a' }]) expect(channelNameProblem(value)).toBe('channel must be a string');
  });
});
