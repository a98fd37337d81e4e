/**
 * `GET /healthz` (liveness, used by the Docker HEALTHCHECK) and `GET /readyz` (readiness: send
 * traffic here). `/metrics` is in operator-routes.ts.
 */
import type { FastifyInstance } from 'fastify';
import type { Source } from '../src/log/source.js';

export function registerHealth(app: FastifyInstance, source: Source): void {
  app.get('/healthz', async (_request, reply) => {
    // Still 200 while the log is unreachable: clients stay connected and only publishing pauses.
    return reply.header('cache-control', 'no-store').send({ status: 'ok', source: source.kind, writable: source.writable, epoch: source.epoch, pid: process.pid });
  });
  // Not ready until the log's start-up read-back is done (rings filled, resumes exact) and the
  // tail is live. Once the drain begins (drain.ts) new connections are refused, and fastify
  // answers a request on a kept-alive one 503 (return503OnClosing).
  app.get('/readyz', async (_request, reply) => {
    const status = source.ready ? 'ready' : 'starting';
    return reply.code(status === 'ready' ? 200 : 503).header('cache-control', 'no-store').send({ status });
  });
}
