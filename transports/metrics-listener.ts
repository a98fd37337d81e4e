/**
 * `/metrics` on its own listener (metricsPort), for a Prometheus that scrapes a private port
 * while the main port faces the Internet, with the status page (`/status`, `/status.json`) that
 * shows the same. Nothing else is served there.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import type { ServerOptions } from '../src/config.js';
import type { Metrics } from '../src/metrics.js';
import type { StatusSampler } from '../src/status.js';
import { registerOperatorRoutes } from './operator-routes.js';

export async function startMetricsListener(metrics: Metrics, status: StatusSampler, options: Pick<ServerOptions, 'metricsPort' | 'host'>): Promise<FastifyInstance> {
  const app = Fastify({ logger: false });
  registerOperatorRoutes(app, metrics, status);
  await app.listen({ port: options.metricsPort, host: options.host });
  return app;
}
