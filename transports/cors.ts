/**
 * CORS for the /v1 routes, so pages on other origins can subscribe and publish. Streaming routes
 * write raw responses, so the headers are a plain object they can spread in too.
 */
import type { FastifyInstance } from 'fastify';
import type { ServerOptions } from '../src/config.js';

export function corsHeaders(options: Pick<ServerOptions, 'corsOrigin'>): Record<string, string> {
  const headers: Record<string, string> = { 'access-control-allow-origin': options.corsOrigin };
  if (options.corsOrigin !== '*') headers['vary'] = 'Origin';
  return headers;
}

export function registerCors(app: FastifyInstance, options: Pick<ServerOptions, 'corsOrigin'>): void {
  const headers = corsHeaders(options);
  app.addHook('onRequest', async (request, reply) => {
    if (request.url.startsWith('/v1/')) reply.headers(headers);
  });
  app.options('/v1/*', async (_request, reply) => {
    reply
      .code(204)
      .header('access-control-allow-methods', 'GET, POST, OPTIONS')
      .header('access-control-allow-headers', 'Content-Type, Last-Event-ID, Idempotency-Key, Authorization')
      .header('access-control-max-age', '600')
      .send();
  });
}
