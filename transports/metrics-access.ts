/**
 * Who may read what /metrics reveals (traffic, channel names, users): the same rule for
 * `/metrics`, `/status` and `/status.json`. On the main port, a closed server (or one with a
 * metricsToken) asks for the metrics token or an API key; an open server asks nothing. On the
 * metrics listener (metricsPort) these routes are open: that port is kept off the public network.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { PushError } from '../src/errors.js';
import type { TransportContext } from './context.js';
import { credentialOf } from './credentials.js';

/** Throws 401 unless the request may read the metrics (a preHandler for each such route on the main port). */
export function checkMetricsAccess(ctx: Pick<TransportContext, 'options' | 'auth'>, request: FastifyRequest): void {
  const token = ctx.options.metricsToken;
  if (token === '' && ctx.auth.open) return;
  const credential = credentialOf(request);
  const ok = credential !== undefined && ((token !== '' && safeEqual(credential, token)) || ctx.auth.isApiKey(credential));
  if (!ok) throw new PushError('unauthorized', `GET ${request.routeOptions.url ?? request.url.split('?')[0]} needs Authorization: Bearer <metrics token or API key> on this server`);
}

function safeEqual(a: string, b: string): boolean {
  const [x, y] = [createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest()];
  return timingSafeEqual(x, y);
}
