import { describe, expect, it } from 'vitest';
import { CapsError, granted, parseCaps, parseSubs } from '../../../src/auth/caps.js';
import { covers, compileFilter, matches } from '../../../src/protocol/channel-filter.js';

describe('channel filters', () => {
  it('match one level with +, any number (none included) with a last #', () => {
    expect(matches(compileFilter('US/+/AAPL'), 'US/NASDAQ/AAPL')).toBe(true);
    expect(matches(compileFilter('US/+/AAPL'), 'US/NASDAQ/X/AAPL')).toBe(false);
    expect(matches(compileFilter('US/NASDAQ/#'), 'US/NASDAQ')).toBe(true);
    expect(matches(compileFilter('US/NASDAQ/#'), 'US/NASDAQ/A/B')).toBe(true);
    expect(matches(compileFilter('US/NASDAQ/#'), 'US/NYSE/A')).toBe(false);
    expect(matches(compileFilter('#'), 'anything/at/all')).toBe(true);
    // Only a level that *is* a wildcard is one.
    expect(matches(compileFilter('C++/x'), 'C++/x')).toBe(true);
    expect(matches(compileFilter('C++/x'), 'Cab/x')).toBe(false);
  });

  it('say whether a grant covers a whole pattern', () => {
    expect(covers(compileFilter('US/#'), compileFilter('US/NASDAQ/#'))).toBe(true);
    expect(covers(compileFilter('US/NASDAQ/#'), compileFilter('US/#'))).toBe(false);
    expect(covers(compileFilter('US/+/AAPL'), compileFilter('US/+/AAPL'))).toBe(true);
    expect(covers(compileFilter('US/NASDAQ/AAPL'), compileFilter('US/+/AAPL'))).toBe(false);
    expect(covers(compileFilter('a/+/#'), compileFilter('a/#'))).toBe(false); // a/# matches "a"; a/+/# does not
    expect(covers(compileFilter('a/+'), compileFilter('a/+/b'))).toBe(false);
  });
});

describe('caps', () => {
  it('substitute {sub} and drop a grant whose sub is not one plain level', () => {
    expect(parseCaps([{ match: 'orders/{sub}/+', allow: ['sub'] }], 'u1', 'caps').map((g) => g.match)).toEqual(['orders/u1/+']);
    expect(parseCaps([{ match: 'orders/{sub}/+', allow: ['sub'] }], 'a/b', 'caps')).toEqual([]);
    expect(parseCaps([{ match: 'orders/{sub}/+', allow: ['sub'] }], '#', 'caps')).toEqual([]);
    expect(parseCaps([{ match: 'orders/{sub}/+', allow: ['sub'] }], undefined, 'caps')).toEqual([]);
    expect(parseSubs(['alerts/{sub}', 'all', 'alerts/{sub}'], 'u1', 'subs')).toEqual(['alerts/u1', 'all']);
  });

  it('grant only the actions listed, as a union', () => {
    const grants = parseCaps(
      [
        { match: 'US/NASDAQ/#', allow: ['sub', 'hst'] },
        { match: 'orders/u1/+', allow: ['pub'] },
      ],
      'u1',
      'caps',
    );
    expect(granted(grants, 'sub', 'US/NASDAQ/AAPL')).toBe(true);
    expect(granted(grants, 'pub', 'US/NASDAQ/AAPL')).toBe(false);
    expect(granted(grants, 'pub', 'orders/u1/7')).toBe(true);
    expect(granted(grants, 'sub', 'orders/u1/7')).toBe(false);
    expect(granted([], 'sub', 'x')).toBe(false);
  });

  it('refuse malformed caps, naming the entry', () => {
    const error = (raw: unknown): string => {
      try {
        parseCaps(raw, 'u', 'caps');
      } catch (e) {
        expect(e).toBeInstanceOf(CapsError);
        return (e as Error).message;
      }
      throw new Error('accepted');
    };
    expect(error({})).toMatch(/caps must be an array/);
    expect(error([{ match: 'a', allow: ['read'] }])).toMatch(/caps\[0\]\.allow/);
    expect(error([{ match: 'a', allow: [] }])).toMatch(/caps\[0\]\.allow/);
    expect(error([{ allow: ['sub'] }])).toMatch(/caps\[0\]\.match must be a string/);
    expect(error([{ match: 'a/#/b', allow: ['sub'] }])).toMatch(/"#" may only be the last level/);
    expect(error([{ match: 'a//b', allow: ['sub'] }])).toMatch(/levels must not be empty/);
  });
});
