/**
 * `POST /v1/publish`: one message `{"channel", "data"}` or a batch `{"messages": [...]}` →
 * `201 {"ids": [...]}`. An `Idempotency-Key` header makes a retried request publish once.
 * `POST /v1/server/publish` is the same for backends (API key).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Identity } from '../src/auth/identity.js';
import { PushError } from '../src/errors.js';
import { publishOutcomeOf } from '../src/publish/publisher.js';
import type { TransportContext } from './context.js';
import { identify, requireApiKey } from './credentials.js';
import { UNSUPPORTED_BODY } from './http-errors.js';
import { turnFlushed } from './turn-outbox.js';

const JSON_TYPE = /^application\/json\s*(;|$)/i;

export function registerPublish(app: FastifyInstance, ctx: TransportContext): void {
  // A batch may carry many messages; each one is still held to maxMessageBytes by the publisher.
  const bodyLimit = Math.max(1_048_576, 4 * ctx.options.maxMessageBytes);
  /** The request's identity and messages; a refusal counts as its publish result (the publisher counts the rest). */
  const read = async (request: FastifyRequest, server: boolean): Promise<{ identity: Identity; items: unknown[] }> => {
    try {
      const identity = server ? await requireApiKey(ctx, request) : await identify(ctx, request);
      // fastify also parses text/plain; a publish body is JSON only, and says so with HTTP's own code.
      if (!JSON_TYPE.test(request.headers['content-type'] ?? '')) throw new PushError('unsupported_media_type', UNSUPPORTED_BODY);
      const body = request.body;
      if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new PushError('bad_request', 'body must be a JSON object');
      const batch = (body as { messages?: unknown }).messages;
      if (batch !== undefined && !Array.isArray(batch)) throw new PushError('bad_request', 'messages must be an array');
      return { identity, items: batch ?? [body] };
    } catch (error) {
      ctx.metrics.publishResult(publishOutcomeOf(error));
      throw error;
    }
  };
  const handler = (server: boolean) => async (request: FastifyRequest, reply: FastifyReply) => {
    const { identity, items } = await read(request, server);
    const header = request.headers['idempotency-key'];
    const key = Array.isArray(header) ? header[0] : header;
    // Backends with an API key publish as fast as the log takes it; everyone else is rate limited.
    const limited = identity.kind !== 'api-key' && identity.kind !== 'server';
    const ids = await ctx.publisher.publish(identity, items, key, limited ? () => ctx.guard.publish(identity.kind === 'user' ? identity.scope : `ip:${request.ip}`, items.length) : undefined);
    // The subscribers on this node get the message before its publisher gets the answer.
    const flushed = turnFlushed();
    if (flushed !== undefined) await flushed;
    return reply.code(201).header('cache-control', 'no-store').send({ ids });
  };
  app.post('/v1/publish', { bodyLimit }, handler(false));
  // The server API's publish: the same bodies, API keys only, and not subject to allowPublish.
  app.post('/v1/server/publish', { bodyLimit }, handler(true));
}
