/**
 * Caps: what an identity may do, as grants by channel filter (docs/security.md). A grant list is a
 * union; nothing is allowed unless some grant allows it. The same shape comes from a token's
 * `edgepush.caps` claim and from the `anonymousCaps` option, and both are read here.
 */
import { channelNameProblem } from '../protocol/channel-name.js';
import { compileFilter, covers, filterProblem, type CompiledFilter } from '../protocol/channel-filter.js';

/** `sub` subscribe, `pub` publish, `hst` history. */
export type Action = 'sub' | 'pub' | 'hst';
export const ACTIONS: readonly Action[] = ['sub', 'pub', 'hst'];

export interface Grant {
  /** The filter as written (after `{sub}` substitution), for messages. */
  readonly match: string;
  readonly filter: CompiledFilter;
  readonly allow: ReadonlySet<Action>;
}

export class CapsError extends Error {}

/**
 * Reads a caps list. `{sub}` in a `match` is replaced by `user`; a grant naming `{sub}` when there
 * is no user, or a user that is not a single plain level (it holds "/" or is a wildcard), is
 * dropped: it must never widen into other users' channels.
 */
export function parseCaps(raw: unknown, user: string | undefined, where: string): Grant[] {
  if (!Array.isArray(raw)) throw new CapsError(`${where} must be an array of {"match", "allow"} objects`);
  const grants: Grant[] = [];
  raw.forEach((entry, index) => {
    const at = `${where}[${index}]`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw new CapsError(`${at} must be an object with "match" and "allow"`);
    const { match, allow } = entry as { match?: unknown; allow?: unknown };
    if (typeof match !== 'string') throw new CapsError(`${at}.match must be a string`);
    if (!Array.isArray(allow) || allow.length === 0 || !allow.every((a): a is Action => ACTIONS.includes(a as Action))) {
      throw new CapsError(`${at}.allow must be a non-empty list of ${ACTIONS.map((a) => `"${a}"`).join(', ')}`);
    }
    const filter = substituteUser(match, user);
    if (filter === undefined) return;
    const problem = channelNameProblem(filter) ?? filterProblem(filter);
    if (problem) throw new CapsError(`${at}.match ${JSON.stringify(match.slice(0, 64))}: ${problem}`);
    grants.push({ match: filter, filter: compileFilter(filter), allow: new Set(allow) });
  });
  return grants;
}

/** Reads a `subs` list: channels or filters, `{sub}` substituted; entries that cannot be are left out. */
export function parseSubs(raw: unknown, user: string | undefined, where: string): string[] {
  if (!Array.isArray(raw)) throw new CapsError(`${where} must be an array of channel names`);
  const subs: string[] = [];
  raw.forEach((entry, index) => {
    if (typeof entry !== 'string') throw new CapsError(`${where}[${index}] must be a string`);
    const channel = substituteUser(entry, user);
    if (channel === undefined) return;
    const problem = channelNameProblem(channel) ?? filterProblem(channel);
    if (problem) throw new CapsError(`${where}[${index}] ${JSON.stringify(entry.slice(0, 64))}: ${problem}`);
    if (!subs.includes(channel)) subs.push(channel);
  });
  return subs;
}

/** True when some grant allows `action` on every channel `target` (a channel or a filter) names. */
export function granted(grants: readonly Grant[], action: Action, target: string): boolean {
  const levels = target.split('/');
  return grants.some((grant) => grant.allow.has(action) && covers(grant.filter, levels));
}

function substituteUser(template: string, user: string | undefined): string | undefined {
  if (!template.includes('{sub}')) return template;
  if (user === undefined || user === '' || user.includes('/') || user === '+' || user === '#') return undefined;
  return template.replaceAll('{sub}', user);
}
