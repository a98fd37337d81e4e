/**
 * What an operator reads: `GET /metrics` (Prometheus), `GET /status` (a live page left open on a
 * screen, transports/status-page.ts) and `GET /status.json` (the snapshot it polls, src/status.ts).
 * They reveal the same things, so they are served together, in one place: on the metrics listener
 * when there is one (metricsPort; open there), else on the main port behind `check`
 * (metrics-access.ts).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Metrics } from '../src/metrics.js';
import type { StatusSampler } from '../src/status.js';
import { STATUS_PAGE_CSP, STATUS_PAGE_HTML } from './status-page.js';

/** `check` throws for a request that may not read the metrics; none on the metrics listener. */
export function registerOperatorRoutes(app: FastifyInstance, metrics: Metrics, sampler: StatusSampler, check?: (request: FastifyRequest) => void): void {
  const guarded = check ? { preHandler: async (request: FastifyRequest) => check(request) } : {};
  app.get('/metrics', guarded, async (_request, reply) => {
    const registry = metrics.registry;
    return reply.header('content-type', registry.contentType).header('cache-control', 'no-store').send(await registry.metrics());
  });
  app.get('/status', guarded, async (_request, reply) =>
    reply
      .type('text/html; charset=utf-8')
      .header('cache-control', 'no-store')
      .header('content-security-policy', STATUS_PAGE_CSP)
      // The page may be opened with ?token=: it must not travel on in a Referer.
      .header('referrer-policy', 'no-referrer')
      .header('x-content-type-options', 'nosniff')
      .send(STATUS_PAGE_HTML),
  );
  app.get('/status.json', guarded, async (_request, reply) => reply.header('cache-control', 'no-store').send(sampler.snapshot()));
}
