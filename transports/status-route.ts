/**
 * `GET /status`: a live page an operator leaves open on a screen (transports/status-page.ts), and
 * `GET /status.json`: the snapshot it polls (src/status.ts). They reveal what /metrics reveals and
 * are guarded the same way: registered where /metrics is, with the same check (metrics-access.ts).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { StatusSampler } from '../src/status.js';
import { STATUS_PAGE_CSP, STATUS_PAGE_HTML } from './status-page.js';

/** `check` throws for a request that may not read the metrics; none on the metrics listener. */
export function registerStatus(app: FastifyInstance, sampler: StatusSampler, check?: (request: FastifyRequest) => void): void {
  const preHandler = check ? async (request: FastifyRequest) => check(request) : undefined;
  app.get('/status', { ...(preHandler ? { preHandler } : {}) }, async (_request, reply) =>
    reply
      .type('text/html; charset=utf-8')
      .header('cache-control', 'no-store')
      .header('content-security-policy', STATUS_PAGE_CSP)
      // The page may be opened with ?token=: it must not travel on in a Referer.
      .header('referrer-policy', 'no-referrer')
      .header('x-content-type-options', 'nosniff')
      .send(STATUS_PAGE_HTML),
  );
  app.get('/status.json', { ...(preHandler ? { preHandler } : {}) }, async (_request, reply) => reply.header('cache-control', 'no-store').send(sampler.snapshot()));
}
