import { describe, expect, it } from 'vitest';
import { filterProblem, isPattern } from '../../../src/protocol/channel-filter.js';
import { seeded } from '../../helpers/cross-node-resume.js';

describe('isPattern', () => {
  it.each(['a/+', '+', '#', 'a/#', '+/b', 'a/+/c', 'a/b/#'])('is true for %j', (filter) => {
    expect(isPattern(filter)).toBe(true);
  });

  // Only a level that *is* "+" or "#" is a wildcard.
  it.each(['a/b', 'C++', 'C++/x', 'a/b#', '#a', 'a+/b', 'x/++', 'x/##', '+a/#b'])('is false for %j', (filter) => {
    expect(isPattern(filter)).toBe(false);
  });

  it('agrees with splitting into levels, over seeded random names', () => {
    const random = seeded(13);
    const alphabet = ['a', 'b', '+', '#', '/', '/', '€'];
    for (let n = 0; n < 5_000; n++) {
      const length = 1 + Math.floor(random() * 8);
      const name = Array.from({ length }, () => alphabet[Math.floor(random() * alphabet.length)]).join('');
      const expected = name.split('/').some((level) => level === '+' || level === '#');
      expect(isPattern(name), name).toBe(expected);
    }
  });
});

describe('filterProblem', () => {
  it('accepts "#" as the last level only', () => {
    expect(filterProblem('a/#')).toBeUndefined();
    expect(filterProblem('a/b#/c')).toBeUndefined();
    expect(filterProblem('a/+/c')).toBeUndefined();
    expect(filterProblem('a/#/c')).toMatch(/"#" may only be the last level/);
    expect(filterProblem('#/a')).toMatch(/"#" may only be the last level/);
  });
});
