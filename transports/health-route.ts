/**
 * `GET /healthz` (liveness, used by the Docker HEALTHCHECK), `GET /readyz` (readiness: send
 * traffic here) and `GET /metrics` (Prometheus).
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Source } from '../src/log/source.js';
import type { TransportContext } from './context.js';
import { checkMetricsAccess } from './metrics-access.js';

export function registerHealth(app: FastifyInstance, ctx: TransportContext, source: Source): void {
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
  // On its own listener (metricsPort) /metrics is served there only; on the main port a closed
  // server asks for the metrics token or an API key, so the public port does not reveal traffic.
  if (ctx.options.metricsPort >= 0) return;
  app.get('/metrics', async (request, reply) => {
    checkMetricsAccess(ctx, request);
    return sendMetrics(ctx, reply);
  });
}

export async function sendMetrics(ctx: Pick<TransportContext, 'metrics'>, reply: FastifyReply): Promise<FastifyReply> {
  const registry = ctx.metrics.registry;
  return reply.header('content-type', registry.contentType).header('cache-control', 'no-store').send(await registry.metrics());
}
