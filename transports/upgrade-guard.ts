/**
 * What every WebSocket endpoint (`/v1/ws`, `/mqtt`) checks before the upgrade, answered as HTTP:
 * the client address's connection limits and the page's origin; and the `426` for a plain GET.
 * The admission is released when the socket closes (or at once for a request that did not upgrade).
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { PushError } from '../src/errors.js';
import type { TransportContext } from './context.js';
import { sendError } from './http-errors.js';

export interface UpgradeGuard {
  preHandler(request: FastifyRequest): Promise<void>;
  /** The route's plain-HTTP handler: `426 upgrade_required`. */
  handler(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply>;
  /** The admission of an upgraded request, to call when its socket closes. */
  releaseOf(request: FastifyRequest): () => void;
}

export function upgradeGuard(ctx: TransportContext, notAnUpgrade: string): UpgradeGuard {
  const releases = new WeakMap<object, () => void>();
  return {
    preHandler: async (request) => {
      ctx.cors.check(request);
      releases.set(request, ctx.guard.admit(request.ip));
    },
    handler: async (request, reply) => {
      releases.get(request)?.();
      return sendError(reply, new PushError('upgrade_required', notAnUpgrade));
    },
    releaseOf: (request) => releases.get(request) ?? (() => {}),
  };
}
