/**
 * `POST /v1/publish`: one message `{"channel", "data"}` or a batch `{"messages": [...]}` →
 * `201 {"ids": [...]}`. An `Idempotency-Key` header makes a retried request publish once.
 */
import type { FastifyInstance } from 'fastify';
import { PushError } from '../src/errors.js';
import type { TransportContext } from './context.js';
import { UNSUPPORTED_BODY } from './http-errors.js';

const JSON_TYPE = /^application\/json\s*(;|$)/i;

export function registerPublish(app: FastifyInstance, ctx: TransportContext): void {
  // A batch may carry many messages; each one is still held to maxMessageBytes by the publisher.
  const bodyLimit = Math.max(1_048_576, 4 * ctx.options.maxMessageBytes);
  app.post('/v1/publish', { bodyLimit }, async (request, reply) => {
    if (!ctx.options.allowPublish) throw new PushError('publish_disabled', 'publishing from clients is turned off on this server');
    // fastify also parses text/plain; a publish body is JSON only, and says so with HTTP's own code.
    if (!JSON_TYPE.test(request.headers['content-type'] ?? '')) throw new PushError('unsupported_media_type', UNSUPPORTED_BODY);
    const body = request.body;
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new PushError('bad_request', 'body must be a JSON object');
    const batch = (body as { messages?: unknown }).messages;
    if (batch !== undefined && !Array.isArray(batch)) throw new PushError('bad_request', 'messages must be an array');
    const header = request.headers['idempotency-key'];
    const key = Array.isArray(header) ? header[0] : header;
    const ids = await ctx.publisher.publish(batch ?? [body], key);
    return reply.code(201).header('cache-control', 'no-store').send({ ids });
  });
}
