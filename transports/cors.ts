/**
 * Which pages may use the server: CORS for the /v1 routes, and the same list checked against the
 * `Origin` of a WebSocket upgrade (browsers send WebSockets across origins without asking, so the
 * server must). `*` is for open mode only; a closed server names its origins, or allows its own.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ServerOptions } from '../src/config.js';
import { PushError } from '../src/errors.js';

export class CorsPolicy {
  readonly #any: boolean;
  readonly #origins: ReadonlySet<string>;

  constructor(options: Pick<ServerOptions, 'corsOrigin'>, open: boolean) {
    const listed = options.corsOrigin.split(',').map((origin) => origin.trim().replace(/\/$/, '')).filter((origin) => origin !== '');
    this.#any = listed.includes('*') || (listed.length === 0 && open);
    this.#origins = new Set(listed);
  }

  /** The CORS headers for a request from `origin` (none when it is not allowed: the browser then refuses). */
  headers(origin: string | undefined): Record<string, string> {
    if (this.#any) return { 'access-control-allow-origin': '*' };
    if (origin !== undefined && this.#origins.has(origin)) return { 'access-control-allow-origin': origin, vary: 'Origin' };
    return { vary: 'Origin' };
  }

  /** Throws 403 for a browser page on an origin that is neither listed nor the server's own. */
  check(request: FastifyRequest): void {
    const origin = request.headers.origin;
    if (this.#any || origin === undefined || this.#origins.has(origin)) return;
    if (sameOrigin(origin, request.headers.host)) return;
    throw new PushError('forbidden', `pages from ${JSON.stringify(origin.slice(0, 100))} may not connect to this server (corsOrigin)`);
  }
}

function sameOrigin(origin: string, host: string | undefined): boolean {
  try {
    return host !== undefined && new URL(origin).host === host;
  } catch {
    return false;
  }
}

export function registerCors(app: FastifyInstance, policy: CorsPolicy): void {
  app.addHook('onRequest', async (request, reply) => {
    if (request.url.startsWith('/v1/')) reply.headers(policy.headers(request.headers.origin));
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
