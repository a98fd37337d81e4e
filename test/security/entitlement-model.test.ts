/**
 * The entitlement invariant, checked against a reference model written independently of the
 * server's code: an identity may do an action on a target exactly when one of its grants allows
 * that action on *every* channel the target can name (or, for `sub`, the target is one of its
 * `subs`); `{sub}` never widens into other users' channels; a malformed caps claim refuses the
 * whole token. The model decides "covers" by brute force over a finite universe of channels, not
 * by walking levels as the server does. Seeded: ENTITLEMENT_SEED reproduces a failure.
 *
 * 20,000 random cases against the check itself (parseCaps / parseSubs / isAllowed / authorize),
 * then 300 over HTTP (long-poll subscribe, history, publish) with real signed tokens.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CapsError, parseCaps, parseSubs, type Action } from '../../src/auth/caps.js';
import { authorize, isAllowed } from '../../src/auth/entitlements.js';
import type { Identity } from '../../src/auth/identity.js';
import { PushError } from '../../src/errors.js';
import type { RunningServer } from '../../src/start.js';
import { Rng } from '../helpers/fuzz-inputs.js';
import { startTestServer } from '../helpers/server.js';
import { SECRET, errorCode, history, hsToken, poll, publishAs, type Caps } from '../helpers/security-kit.js';

const SEED = Number(process.env['ENTITLEMENT_SEED'] ?? 20261203);
const PURE_CASES = 20_000;
const HTTP_CASES = 300;

/** Levels filters and channels are made of. `z` appears in no filter: the witness for `+` and `#`. */
const NAMED_LEVELS = ['a', 'b', 'u', 'C++'];
const UNIVERSE_LEVELS = [...NAMED_LEVELS, 'z'];
/** Users: two plain ones (whose name is also a level), one with a "/", one that is a wildcard. */
const USERS = ['u', 'a', 'x/y', '+', undefined] as const;
const ACTIONS: readonly Action[] = ['sub', 'pub', 'hst'];

// ---- the reference model ------------------------------------------------------------------

/** Every channel of 1 to 4 levels over UNIVERSE_LEVELS: deeper than any generated filter by one. */
const UNIVERSE: string[] = (() => {
  const out: string[] = [];
  let layer = [''];
  for (let depth = 1; depth <= 4; depth++) {
    layer = layer.flatMap((prefix) => UNIVERSE_LEVELS.map((level) => (prefix === '' ? level : `${prefix}/${level}`)));
    out.push(...layer);
  }
  return out;
})();

/** MQTT matching as a regular expression: `+` one level, a trailing `#` the parent and anything below. */
function filterRegExp(filter: string): RegExp {
  const levels = filter.split('/');
  let source = '';
  levels.forEach((level, index) => {
    if (level === '#') source += index === 0 ? '.*' : '(/.*)?';
    else source += (index === 0 ? '' : '/') + (level === '+' ? '[^/]+' : level.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  });
  return new RegExp(`^${source}$`);
}

const matchedCache = new Map<string, Set<string>>();
function channelsOf(filter: string): Set<string> {
  let set = matchedCache.get(filter);
  if (!set) {
    const re = filterRegExp(filter);
    set = new Set(UNIVERSE.filter((channel) => re.test(channel)));
    matchedCache.set(filter, set);
  }
  return set;
}

/** Does `outer` allow everything `inner` names? By set inclusion over the universe. */
function modelCovers(outer: string, inner: string): boolean {
  const allowed = channelsOf(outer);
  for (const channel of channelsOf(inner)) if (!allowed.has(channel)) return false;
  return true;
}

function modelSubstitute(template: string, user: string | undefined): string | undefined {
  if (!template.includes('{sub}')) return template;
  if (user === undefined || user.includes('/') || user === '+' || user === '#') return undefined;
  return template.split('{sub}').join(user);
}

const badFilter = (filter: string): boolean => {
  const levels = filter.split('/');
  return levels.slice(0, -1).includes('#');
};

type Verdict = 'allowed' | 'denied' | 'bad-token';

function modelVerdict(user: string | undefined, caps: Caps, subs: string[], action: Action, target: string): Verdict {
  const grants: { match: string; allow: string[] }[] = [];
  for (const grant of caps) {
    const match = modelSubstitute(grant.match, user);
    if (match === undefined) continue;
    if (badFilter(match)) return 'bad-token';
    grants.push({ match, allow: grant.allow });
  }
  const ownSubs: string[] = [];
  for (const entry of subs) {
    const channel = modelSubstitute(entry, user);
    if (channel === undefined) continue;
    if (badFilter(channel)) return 'bad-token';
    ownSubs.push(channel);
  }
  if (grants.some((grant) => grant.allow.includes(action) && modelCovers(grant.match, target))) return 'allowed';
  return action === 'sub' && ownSubs.includes(target) ? 'allowed' : 'denied';
}

// ---- random cases ---------------------------------------------------------------------------

function randomFilter(rng: Rng, levels: readonly string[], maxDepth: number, wildcards: boolean): string {
  const depth = 1 + rng.int(maxDepth);
  const out: string[] = [];
  for (let i = 0; i < depth; i++) {
    const roll = rng.next();
    if (wildcards && roll < 0.15) out.push('+');
    // Mostly last (a valid filter); now and then in the middle, which must refuse the whole token.
    else if (wildcards && roll < 0.25 && (i === depth - 1 || rng.chance(0.1))) out.push('#');
    else out.push(rng.pick(levels));
  }
  return out.join('/');
}

function randomCaps(rng: Rng): Caps {
  const caps: Caps = [];
  const count = rng.int(4);
  for (let i = 0; i < count; i++) {
    const allow = ACTIONS.filter(() => rng.chance(0.5));
    caps.push({ match: randomFilter(rng, [...NAMED_LEVELS, '{sub}'], 3, true), allow: allow.length > 0 ? allow : [rng.pick(ACTIONS)] });
  }
  return caps;
}

interface Case {
  user: string | undefined;
  caps: Caps;
  subs: string[];
  action: Action;
  target: string;
}

function randomCase(rng: Rng, targetsWithWildcards: boolean): Case {
  const user = rng.pick(USERS);
  const subs = rng.chance(0.3) ? [randomFilter(rng, [...NAMED_LEVELS, '{sub}'], 3, true)] : [];
  const action = rng.pick(ACTIONS);
  // A target that some grant names exactly, now and then, so that "allowed" is common enough.
  const caps = randomCaps(rng);
  let target = randomFilter(rng, NAMED_LEVELS, 3, targetsWithWildcards && action === 'sub');
  if (badFilter(target)) target = target.split('/').filter((level) => level !== '#').join('/') || 'a';
  return { user, caps, subs, action, target };
}

function describeCase(seed: number, index: number, c: Case): string {
  return `seed ${seed}, case ${index}: user ${JSON.stringify(c.user)}, caps ${JSON.stringify(c.caps)}, subs ${JSON.stringify(c.subs)}, ${c.action} ${JSON.stringify(c.target)}`;
}

// ---- the check itself -----------------------------------------------------------------------

function serverVerdict(c: Case): Verdict {
  let identity: Identity;
  try {
    identity = {
      kind: 'user',
      user: c.user,
      grants: parseCaps(c.caps, c.user, 'caps'),
      subs: parseSubs(c.subs, c.user, 'subs'),
      rate: undefined,
      expiresAt: undefined,
      scope: `user:${c.user}`,
    };
  } catch (error) {
    if (error instanceof CapsError) return 'bad-token';
    throw error;
  }
  const allowed = isAllowed(identity, c.action, c.target);
  // authorize must agree with isAllowed, and refuse a user with 403 (never 401).
  try {
    authorize(identity, c.action, c.target);
    if (!allowed) throw new Error('authorize allowed what isAllowed refused');
  } catch (error) {
    if (!(error instanceof PushError)) throw error;
    if (allowed || error.code !== 'forbidden') throw new Error(`authorize threw ${error.code} where isAllowed said ${allowed}`);
  }
  return allowed ? 'allowed' : 'denied';
}

describe('the entitlement check against the reference model', () => {
  it(`agrees on ${PURE_CASES} random identities, actions and targets (patterns, {sub}, subs, malformed caps)`, () => {
    const rng = new Rng(SEED).fork('pure');
    const disagreements: string[] = [];
    const tally: Record<Verdict, number> = { allowed: 0, denied: 0, 'bad-token': 0 };
    for (let i = 0; i < PURE_CASES; i++) {
      const c = randomCase(rng, true);
      const expected = modelVerdict(c.user, c.caps, c.subs, c.action, c.target);
      const got = serverVerdict(c);
      tally[expected]++;
      if (got !== expected && disagreements.length < 5) disagreements.push(`${describeCase(SEED, i, c)}: model ${expected}, server ${got}`);
    }
    expect(disagreements).toEqual([]);
    // The cases reach every outcome often enough to mean something.
    expect(tally.allowed).toBeGreaterThan(PURE_CASES / 20);
    expect(tally.denied).toBeGreaterThan(PURE_CASES / 20);
    expect(tally['bad-token']).toBeGreaterThan(0);
  });

  it('never lets {sub} widen: a user with "/" or a wildcard name gets no {sub} grant at all', () => {
    for (const user of ['x/y', '+', '#', undefined]) {
      const grants = parseCaps([{ match: 'orders/{sub}', allow: ['sub'] }, { match: '{sub}/#', allow: ['sub'] }], user, 'caps');
      expect(grants, String(user)).toEqual([]);
    }
  });
});

// ---- over HTTP --------------------------------------------------------------------------------

const ANONYMOUS_CAPS: Caps = [{ match: 'a/#', allow: ['sub', 'hst'] }, { match: 'b/+', allow: ['pub'] }];

describe('the same invariant over HTTP, with signed tokens', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startTestServer({ jwtSecret: SECRET, anonymousCaps: ANONYMOUS_CAPS });
  });
  afterAll(async () => {
    await server?.close();
  });

  async function answer(token: string | undefined, action: Action, target: string): Promise<[number, string | undefined]> {
    const result =
      action === 'sub' ? await poll(server.url, [target], token === undefined ? {} : { token })
      : action === 'hst' ? await history(server.url, target, token)
      : await publishAs(server.url, token, { channel: target, data: { by: 'model-test' } });
    return [result.status, errorCode(result)];
  }

  it(`answers ${HTTP_CASES} random requests (poll, history, publish) as the model says: 2xx, 403 forbidden, or 401`, async () => {
    const rng = new Rng(SEED).fork('http');
    const cases = Array.from({ length: HTTP_CASES }, () => ({ ...randomCase(rng, false), anonymous: rng.chance(0.15) }));
    const disagreements: string[] = [];
    const success: Record<Action, number> = { sub: 200, hst: 200, pub: 201 };
    let next = 0;
    // Eight requests in flight; every case is one request.
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < cases.length) {
          const index = next++;
          const c = cases[index] as (typeof cases)[number];
          let expected: [number, string | undefined];
          let token: string | undefined;
          if (c.anonymous) {
            const verdict = modelVerdict(undefined, ANONYMOUS_CAPS, [], c.action, c.target);
            expected = verdict === 'allowed' ? [success[c.action], undefined] : [401, 'unauthorized'];
          } else {
            const verdict = modelVerdict(c.user, c.caps, c.subs, c.action, c.target);
            expected = verdict === 'allowed' ? [success[c.action], undefined] : verdict === 'denied' ? [403, 'forbidden'] : [401, 'unauthorized'];
            token = await hsToken({ ...(c.user === undefined ? {} : { sub: c.user }), edgepush: { caps: c.caps, ...(c.subs.length > 0 ? { subs: c.subs } : {}) } });
          }
          const got = await answer(token, c.action, c.target);
          if ((got[0] !== expected[0] || got[1] !== expected[1]) && disagreements.length < 5) {
            disagreements.push(`${describeCase(SEED, index, c)}${c.anonymous ? ' (anonymous)' : ''}: expected ${expected.join(' ')}, got ${got.join(' ')}`);
          }
        }
      }),
    );
    expect(disagreements).toEqual([]);
  });
});
