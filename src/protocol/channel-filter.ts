/**
 * Channel filters in MQTT syntax over `/`-levels (docs/protocol.md "Channel patterns"): `+` is
 * exactly one level, `#` (last level only) any number of levels, none included. Caps use them to
 * say which channels a grant covers; a subscription may name one too.
 */

import { channelNameProblem } from './channel-name.js';

/** A filter split into levels, checked once so that matching never has to. */
export type CompiledFilter = readonly string[];

/**
 * Why `filter` is not a valid filter, or undefined (its name rules are checked first, by
 * channelNameProblem). Only a level that *is* `+` or `#` is a wildcard: "C++" is an ordinary level.
 */
export function filterProblem(filter: string): string | undefined {
  if (!filter.includes('#')) return undefined;
  const levels = filter.split('/');
  const hash = levels.indexOf('#');
  if (hash !== -1 && hash !== levels.length - 1) return '"#" may only be the last level of a filter';
  return undefined;
}

/** Why `name` cannot be subscribed (a channel or a pattern), or undefined. */
export function subscriptionProblem(name: unknown): string | undefined {
  return channelNameProblem(name) ?? filterProblem(name as string);
}

/** Why messages cannot be published to `name` (a pattern level is for subscribing), or undefined. */
export function publishedChannelProblem(name: unknown): string | undefined {
  const problem = channelNameProblem(name);
  if (problem) return problem;
  return isPattern(name as string) ? 'a published channel may not have a "+" or "#" level: those are pattern levels, for subscribing' : undefined;
}

export function compileFilter(filter: string): CompiledFilter {
  return filter.split('/');
}

/**
 * True when `filter` has a `+` or `#` level (a pattern, not a single channel). Asked for every
 * poll, subscribe and publish: most names have neither character, and are answered without
 * splitting them into levels.
 */
export function isPattern(filter: string): boolean {
  return (filter.includes('+') || filter.includes('#')) && filter.split('/').some((level) => level === '+' || level === '#');
}

/** Does `filter` match the channel `name`? */
export function matches(filter: CompiledFilter, name: string): boolean {
  return covers(filter, name.split('/'));
}

/**
 * Does `outer` cover every channel `inner` can match? With a plain channel as `inner` this is
 * matching; with a pattern it says whether a grant allows a whole wildcard subscription.
 */
export function covers(outer: CompiledFilter, inner: CompiledFilter): boolean {
  for (let i = 0; i < outer.length; i++) {
    const want = outer[i] as string;
    if (want === '#') return true; // covers this level and everything below, the parent included
    if (i >= inner.length) return false;
    const have = inner[i] as string;
    if (have === '#') return false; // inner reaches levels that outer names one by one
    if (want === '+') continue; // any single level, a "+" of inner's included
    if (want !== have) return false;
  }
  return inner.length === outer.length;
}
