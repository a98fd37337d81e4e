/**
 * Where a request's credentials are: `Authorization: Bearer <token or API key>`, else `?token=`
 * (EventSource and browser WebSockets cannot set headers). The header wins when both are there.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { OPEN_IDENTITY, type Identity } from '../src/auth/identity.js';
import { PushError } from '../src/errors.js';
import type { TransportContext } from './context.js';

/** A request as far as credentials go: a fastify request, or a raw one with its parsed query. */
export interface CredentialSource {
  readonly headers: IncomingHttpHeaders;
  readonly query: unknown;
}

export function credentialOf(request: CredentialSource): string | undefined {
  const header = request.headers.authorization;
  if (header !== undefined) {
    const match = /^Bearer +(\S+) *$/i.exec(header);
    if (!match) throw new PushError('unauthorized', 'the Authorization header must be "Bearer <token>"');
    return match[1];
  }
  const token = (request.query as Record<string, unknown> | undefined)?.['token'];
  if (Array.isArray(token)) throw new PushError('bad_request', 'token may be given once');
  return typeof token === 'string' && token !== '' ? token : undefined;
}

/** The request's identity; rejects with 401 for credentials that are not good. */
export function identify(ctx: TransportContext, request: CredentialSource): Promise<Identity> {
  return ctx.auth.identify(credentialOf(request));
}

/** The server API: an API key and nothing else (anything goes in open mode). */
export async function requireApiKey(ctx: TransportContext, request: CredentialSource): Promise<Identity> {
  if (ctx.auth.open) return OPEN_IDENTITY;
  const credential = credentialOf(request);
  if (credential === undefined) throw new PushError('unauthorized', 'the server API needs an API key (Authorization: Bearer <api key>)');
  if (ctx.auth.isApiKey(credential)) return ctx.auth.identify(credential);
  // Not a key: a bad credential is 401 (identify throws), a good user token is 403.
  await ctx.auth.identify(credential);
  throw new PushError('forbidden', 'the server API takes API keys only, not user tokens');
}
