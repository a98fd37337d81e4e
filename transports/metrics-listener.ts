/**
 * `/metrics` on its own listener (metricsPort), for a Prometheus that scrapes a private port
 * while the main port faces the Internet. Nothing else is served there.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import type { ServerOptions } from '../src/config.js';
import type { Metrics } from '../src/metrics.js';
import { sendMetrics } from './health-route.js';

export async function startMetricsListener(metrics: Metrics, options: Pick<ServerOptions, 'metricsPort' | 'host'>): Promise<FastifyInstance> {
  const app = Fastify({ logger: false });
  app.get('/metrics', async (_request, reply) => sendMetrics({ metrics }, reply));
  await app.listen({ port: options.metricsPort, host: options.host });
  return app;
}
