/**
 * Credentials → Identity. A credential is what came after `Bearer ` (or in `?token=`, or the
 * WebSocket `auth` op): an API key, a JWT, or nothing (anonymous). With no identity configured
 * at all the server is open (development, the demo) and every request gets OPEN_IDENTITY.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { JWTPayload } from 'jose';
import { CapsError, parseCaps, parseSubs, type Grant } from './caps.js';
import { OPEN_IDENTITY, type Identity } from './identity.js';
import { TokenError, TokenVerifier, type TokenVerifierOptions } from './token-verifier.js';

export interface AuthOptions extends TokenVerifierOptions {
  /** API keys for backends (several, so one can be rotated without downtime). */
  readonly apiKeys: readonly string[];
  /** Caps for requests without credentials; undefined: not configured. */
  readonly anonymousCaps: unknown;
}

/** Verified tokens are remembered (by their text) so a long-poll does not re-verify each request. */
const VERIFIED_CACHE_SIZE = 10_000;
const VERIFIED_CACHE_TTL_MS = 60_000;

export class Authenticator {
  readonly open: boolean;
  readonly #verifier: TokenVerifier;
  readonly #apiKeyDigests: Buffer[];
  readonly #anonymous: Identity;
  readonly #verified = new LRUCache<string, Identity>({ max: VERIFIED_CACHE_SIZE, ttl: VERIFIED_CACHE_TTL_MS });

  constructor(options: AuthOptions) {
    this.#verifier = new TokenVerifier(options);
    this.#apiKeyDigests = options.apiKeys.map(digest);
    this.open = !this.#verifier.configured && options.apiKeys.length === 0 && options.anonymousCaps === undefined;
    const grants = options.anonymousCaps === undefined ? [] : parseCaps(options.anonymousCaps, undefined, 'anonymousCaps');
    this.#anonymous = { kind: 'anonymous', user: undefined, grants, subs: [], rate: undefined, expiresAt: undefined, scope: 'anonymous' };
  }

  /** Who a request without credentials is: everyone in open mode, else anonymous with its caps. */
  get anonymous(): Identity {
    return this.open ? OPEN_IDENTITY : this.#anonymous;
  }

  /** Who `credential` is. Rejects with a 401 PushError (TokenError) for a credential that is not good. */
  async identify(credential: string | undefined): Promise<Identity> {
    const known = this.knownIdentity(credential);
    if (known !== undefined) return known;
    // knownIdentity answers every missing or empty credential: this one is a token to verify.
    const token = credential as string;
    const identity = identityOf(await this.#verifier.verify(token));
    const ttl = identity.expiresAt === undefined ? VERIFIED_CACHE_TTL_MS : Math.min(VERIFIED_CACHE_TTL_MS, identity.expiresAt - Date.now());
    if (ttl > 0) this.#verified.set(token, identity, { ttl });
    return identity;
  }

  /**
   * Who `credential` is when no token needs verifying for it: open mode, anonymous, an API key, a
   * token verified lately. Undefined: only identify() can tell. A long-poll, a request every few
   * seconds per client, goes on without a promise in the usual case.
   */
  knownIdentity(credential: string | undefined): Identity | undefined {
    if (this.open) return OPEN_IDENTITY;
    if (credential === undefined || credential === '') return this.#anonymous;
    if (this.#isApiKey(credential)) return { kind: 'api-key', user: undefined, grants: [], subs: [], rate: undefined, expiresAt: undefined, scope: `key:${digest(credential).toString('base64url').slice(0, 16)}` };
    const cached = this.#verified.get(credential);
    if (cached && (cached.expiresAt === undefined || cached.expiresAt > Date.now())) return cached;
    return undefined;
  }

  /** True when `credential` is one of the API keys (compared in constant time). */
  isApiKey(credential: string | undefined): boolean {
    return credential !== undefined && this.#isApiKey(credential);
  }

  #isApiKey(credential: string): boolean {
    const candidate = digest(credential);
    let found = false;
    for (const key of this.#apiKeyDigests) found = timingSafeEqual(key, candidate) || found;
    return found;
  }
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** The edgepush claim → Identity; a malformed claim refuses the whole token (never a partial grant). */
function identityOf(payload: JWTPayload): Identity {
  const user = typeof payload.sub === 'string' ? payload.sub : undefined;
  const claim = payload['edgepush'];
  let grants: Grant[] = [];
  let subs: string[] = [];
  let rate: number | undefined;
  if (claim !== undefined) {
    if (typeof claim !== 'object' || claim === null || Array.isArray(claim)) throw new TokenError('the token\'s edgepush claim must be an object');
    const { caps, subs: rawSubs, rate: rawRate } = claim as { caps?: unknown; subs?: unknown; rate?: unknown };
    try {
      if (caps !== undefined) grants = parseCaps(caps, user, 'edgepush.caps');
      if (rawSubs !== undefined) subs = parseSubs(rawSubs, user, 'edgepush.subs');
    } catch (error) {
      if (error instanceof CapsError) throw new TokenError(`the token's ${error.message}`);
      throw error;
    }
    if (rawRate !== undefined) {
      if (typeof rawRate !== 'number' || !Number.isFinite(rawRate) || rawRate < 0) throw new TokenError('the token\'s edgepush.rate must be a number of milliseconds');
      rate = rawRate;
    }
  }
  return { kind: 'user', user, grants, subs, rate, expiresAt: (payload.exp as number) * 1000, scope: `user:${user ?? ''}` };
}
