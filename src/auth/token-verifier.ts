/**
 * JWT verification (jose): HS256 with a shared secret and/or RS256/ES256 with keys from a JWKS URL
 * (fetched once, cached, refetched when a token names an unknown key id, at most every 30 s).
 * `exp` is required; `aud` and `iss` are checked when configured. Unsigned tokens (`alg: none`)
 * and algorithms outside that list are refused by construction: jose only accepts what is listed.
 */
import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { PushError } from '../errors.js';

export interface TokenVerifierOptions {
  readonly secret?: string;
  readonly jwksUrl?: string;
  readonly audience?: string;
  readonly issuer?: string;
}

const ASYMMETRIC = ['RS256', 'ES256'];

/** A refused token. `expired` tells a transport to say "get a new token" (close 4003) rather than "bad token". */
export class TokenError extends PushError {
  constructor(message: string, readonly expired = false) {
    super('unauthorized', message);
  }
}

export class TokenVerifier {
  readonly #secret: Uint8Array | undefined;
  readonly #jwks: JWTVerifyGetKey | undefined;
  readonly #algorithms: string[];
  readonly #options: TokenVerifierOptions;

  constructor(options: TokenVerifierOptions) {
    this.#options = options;
    this.#secret = options.secret ? new TextEncoder().encode(options.secret) : undefined;
    this.#jwks = options.jwksUrl ? createRemoteJWKSet(new URL(options.jwksUrl), { cacheMaxAge: 10 * 60_000, cooldownDuration: 30_000, timeoutDuration: 5_000 }) : undefined;
    this.#algorithms = [...(this.#secret ? ['HS256'] : []), ...(this.#jwks ? ASYMMETRIC : [])];
  }

  get configured(): boolean {
    return this.#algorithms.length > 0;
  }

  /** The verified claims, or a TokenError (401) saying what is wrong with the token. */
  async verify(token: string): Promise<JWTPayload> {
    if (!this.configured) throw new TokenError('this server accepts no user tokens (no jwtSecret or jwtJwksUrl configured)');
    try {
      const { payload } = await jwtVerify(token, this.#key, {
        algorithms: this.#algorithms,
        requiredClaims: ['exp'],
        ...(this.#options.audience ? { audience: this.#options.audience } : {}),
        ...(this.#options.issuer ? { issuer: this.#options.issuer } : {}),
      });
      return payload;
    } catch (error) {
      throw refusal(error);
    }
  }

  // HS256 tokens are checked with the secret, the others with the JWKS (jose picks by `kid`).
  readonly #key: JWTVerifyGetKey = async (header, token) => {
    if (header.alg === 'HS256' && this.#secret) return this.#secret;
    if (this.#jwks) return this.#jwks(header, token);
    throw new errors.JOSEAlgNotAllowed(`"alg" (Algorithm) Header Parameter value not allowed`);
  };
}

function refusal(error: unknown): PushError {
  if (error instanceof errors.JWTExpired) return new TokenError('the token has expired', true);
  if (error instanceof errors.JWTClaimValidationFailed) {
    const claim = error.claim;
    if (claim === 'nbf') return new TokenError('the token is not valid yet (nbf)');
    if (claim === 'exp') return new TokenError('the token has no exp claim');
    return new TokenError(`the token's ${claim} claim is not accepted: ${error.reason}`);
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) return new TokenError('the token signature is not valid');
  if (error instanceof errors.JOSEAlgNotAllowed) return new TokenError('the token is signed with an algorithm this server does not accept');
  if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys) return new TokenError('no key of the JWKS matches the token (kid)');
  if (error instanceof errors.JWKSTimeout || error instanceof errors.JWKSInvalid || (error instanceof Error && error.name === 'TypeError')) {
    return new PushError('unavailable', 'cannot fetch the keys to check the token (JWKS) right now');
  }
  if (error instanceof errors.JOSEError) return new TokenError(`the token is malformed (${error.code})`);
  return new TokenError('the token is malformed');
}
