/**
 * `GET /v1/history?channel=A&limit=50` → `{"messages": [...], "cursor": "..."}`, newest last. The
 * cursor is the current one, so "load history, then subscribe from its cursor" has no gap.
 */
import type { FastifyInstance } from 'fastify';
import type { TransportContext } from './context.js';
import { identify } from './credentials.js';
import { pollBody } from './poll-format.js';
import { channelsParam, deltaParam, numberParam } from './request-params.js';

export function registerHistory(app: FastifyInstance, ctx: TransportContext): void {
  const { options } = ctx;
  app.get('/v1/history', async (request, reply) => {
    const identity = await identify(ctx, request);
    const query = request.query as Record<string, string | string[] | undefined>;
    const [channel] = channelsParam(query, 1);
    const limit = Math.floor(numberParam(query, 'limit', 1, options.historyMaxLimit, Math.min(50, options.historyMaxLimit)));
    const delta = deltaParam(query);
    const { messages, cursor } = ctx.resumer.history(identity, channel as string, limit);
    return reply.header('cache-control', 'no-store').type('application/json; charset=utf-8').send(pollBody(messages, cursor.toString(), [], delta));
  });
}
