/**
 * The client's identity: which token to send, and when to ask the application for a new one.
 *
 * - The `token` option is used first; `getToken()` is asked whenever a token is missing, was
 *   refused or expired, or is about to expire (a WebSocket refreshes in place, see refreshDelay).
 * - One `getToken()` call in flight at a time: everyone who needs a token meanwhile shares it.
 * - After `getToken()` fails, or the server refuses what it returned, the next call waits out a
 *   backoff (full jitter, as reconnects): however many callers retry, the application's token
 *   endpoint is never asked in a tight loop. A token the server accepts resets the backoff.
 */
import { Backoff, type BackoffOptions } from './backoff.js';
import { EdgePushError } from './types.js';

export type GetToken = () => string | Promise<string>;

/** Refresh no later than this long before a token expires, when its life allows. */
const REFRESH_MARGIN = 5_000;
/** Never schedule a refresh sooner than this: a short-lived token must not make a refresh loop. */
const MIN_REFRESH_DELAY = 5_000;

export class TokenSource {
  readonly #getToken: GetToken | undefined;
  readonly #backoff: Backoff;
  #token: string | undefined;
  /** The newest token was refused or has expired: the next connection needs a fresh one. */
  #stale = false;
  #pending: Promise<string> | undefined;
  /** No getToken() call before this time (ms since the epoch). */
  #notBefore = 0;
  #cancelWait: (() => void) | undefined;
  #closed = false;

  constructor(token: string | undefined, getToken: GetToken | undefined, backoff: BackoffOptions, random?: () => number) {
    this.#token = token;
    this.#getToken = getToken;
    this.#backoff = new Backoff(backoff, random);
  }

  /** The client authenticates at all (a token, or a way to get one). */
  get enabled(): boolean {
    return this.#token !== undefined || this.#getToken !== undefined;
  }

  /** A refused or expired token can be replaced (there is a getToken). */
  get renewable(): boolean {
    return this.#getToken !== undefined;
  }

  /** The newest token, if there is one. */
  get current(): string | undefined {
    return this.#token;
  }

  /**
   * The token for a new connection or request: the newest one unless the server refused it or it
   * expired, else a fresh one. Undefined when the client has no identity.
   */
  async token(): Promise<string | undefined> {
    if (!this.#stale && this.#token !== undefined) return this.#token;
    if (!this.#getToken) return this.#token;
    return this.fresh();
  }

  /** A new token from getToken(): shared by concurrent callers, and paced after failures. */
  fresh(): Promise<string> {
    this.#pending ??= this.#fetch().finally(() => {
      this.#pending = undefined;
    });
    return this.#pending;
  }

  /**
   * The server refused `token` (HTTP 401, close 4501) or said it expired (close 4003). A refusal
   * also delays the next getToken(): the next token may well be refused too.
   */
  refused(token: string | undefined, expired = false): void {
    if (token !== undefined && token === this.#token) this.#stale = true;
    if (!expired) this.#failed();
  }

  /** The server accepted a token: failures start over from the smallest delay. */
  accepted(): void {
    this.#backoff.reset();
    this.#notBefore = 0;
  }

  /** The client is closed: a waiting getToken() is cancelled, none is made any more. */
  close(): void {
    this.#closed = true;
    this.#cancelWait?.();
  }

  async #fetch(): Promise<string> {
    const getToken = this.#getToken;
    if (!getToken) throw new EdgePushError('edgepush: no getToken option to get a new token with', 'unauthorized');
    const wait = this.#notBefore - Date.now();
    if (wait > 0) await this.#wait(wait);
    if (this.#closed) throw new EdgePushError('edgepush: the client is closed', 'closed');
    try {
      const token = await getToken();
      if (typeof token !== 'string' || token === '') throw new TypeError(`getToken() returned ${token === '' ? 'an empty string' : typeof token}, not a token`);
      this.#token = token;
      this.#stale = false;
      return token;
    } catch (error) {
      this.#failed();
      throw new EdgePushError(`edgepush: getToken() failed: ${error instanceof Error ? error.message : String(error)}`, 'token_unavailable');
    }
  }

  #failed(): void {
    this.#notBefore = Date.now() + this.#backoff.next();
  }

  #wait(ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#cancelWait = undefined;
        resolve();
      }, ms);
      this.#cancelWait = () => {
        clearTimeout(timer);
        reject(new EdgePushError('edgepush: the client is closed', 'closed'));
      };
    });
  }
}

/**
 * How long until a token that the server says expires at `expiresAtMs` should be refreshed: once
 * 80% of its remaining life has passed, and at least REFRESH_MARGIN before the end when its life
 * allows, but never sooner than MIN_REFRESH_DELAY. Undefined when it has already expired by this
 * clock: the server just accepted it, so this clock is wrong, and the server's close (4003) is the
 * better signal.
 */
export function refreshDelay(expiresAtMs: number, now: number): number | undefined {
  const remaining = expiresAtMs - now;
  if (remaining <= 0) return undefined;
  return Math.round(Math.max(MIN_REFRESH_DELAY, Math.min(remaining * 0.8, remaining - REFRESH_MARGIN)));
}
