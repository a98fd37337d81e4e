/**
 * Who is asking, once their credentials are checked: the one value every entitlement check reads.
 */
import type { Grant } from './caps.js';

export type IdentityKind =
  /** No identity configured at all: the development / demo mode, everything allowed. */
  | 'open'
  /** No credentials; gets the configured anonymous caps. */
  | 'anonymous'
  /** A verified JWT. */
  | 'user'
  /** A backend with an API key: everything, including the server API. */
  | 'api-key'
  /** The server itself, acting for a backend (server API) or a token's own `subs`. */
  | 'server';

export interface Identity {
  readonly kind: IdentityKind;
  /** The token's `sub`; undefined for the others. */
  readonly user: string | undefined;
  readonly grants: readonly Grant[];
  /** Channels (or filters) the server subscribes a connection to by itself. */
  readonly subs: readonly string[];
  /** Minimum ms between two messages of one channel for this client (eliding cap), if set. */
  readonly rate: number | undefined;
  /** When the credentials stop being valid, ms since the epoch; undefined: never. */
  readonly expiresAt: number | undefined;
  /**
   * Whose requests these are, for idempotency keys and per-client limits: the same string for
   * every request of one user or API key, and never the same for two different ones.
   */
  readonly scope: string;
}

const NO_GRANTS: readonly Grant[] = [];

export const OPEN_IDENTITY: Identity = { kind: 'open', user: undefined, grants: NO_GRANTS, subs: [], rate: undefined, expiresAt: undefined, scope: 'open' };
export const SERVER_IDENTITY: Identity = { kind: 'server', user: undefined, grants: NO_GRANTS, subs: [], rate: undefined, expiresAt: undefined, scope: 'server' };

/** True for identities that are allowed everything without looking at grants. */
export function isUnrestricted(identity: Identity): boolean {
  return identity.kind === 'open' || identity.kind === 'api-key' || identity.kind === 'server';
}
