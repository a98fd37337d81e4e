/**
 * The server API, for backends with an API key: change a live connection's subscriptions or end it,
 * by user (every connection of a token `sub`) or by session (one connection), on every node:
 *
 *   POST /v1/server/subscribe   {"user" | "session", "channel", "cursor"?}
 *   POST /v1/server/unsubscribe {"user" | "session", "channel"}
 *   POST /v1/server/disconnect  {"user" | "session", "code"?, "reason"?}
 *
 * Each command is written to the control log that every node reads and answered `202` once the
 * log has it; each node then acts on the connections it holds. (`POST /v1/server/publish` lives
 * with publish.) No grant is checked for the user: the backend did that before it called.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DISCONNECTS, PushError } from '../src/errors.js';
import type { ControlCommand, ControlLog, ControlTarget } from '../src/log/control.js';
import { channelNameProblem } from '../src/protocol/channel-name.js';
import { filterProblem } from '../src/protocol/channel-filter.js';
import type { TransportContext } from './context.js';
import { requireApiKey } from './credentials.js';

/** The commands a backend sends through the server API. */
type ServerApiType = 'subscribe' | 'unsubscribe' | 'disconnect';

const MAX_ID_LENGTH = 255;
const MAX_REASON_BYTES = 123;

export function registerServerApi(app: FastifyInstance, ctx: TransportContext, control: ControlLog): void {
  control.onCommand((command) => {
    if (command.type === 'mqtt-session') return;
    const reached = ctx.registry.apply(command);
    ctx.metrics.controlApplied(command.type, reached);
  });

  const route = (type: ServerApiType) => async (request: FastifyRequest, reply: FastifyReply) => {
    await requireApiKey(ctx, request);
    const body = request.body;
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new PushError('bad_request', 'body must be a JSON object');
    const fields = body as Record<string, unknown>;
    await control.send(commandOf(type, targetOf(fields), fields));
    return reply.code(202).header('cache-control', 'no-store').send({ status: 'accepted' });
  };
  app.post('/v1/server/subscribe', route('subscribe'));
  app.post('/v1/server/unsubscribe', route('unsubscribe'));
  app.post('/v1/server/disconnect', route('disconnect'));
}

function targetOf(fields: Record<string, unknown>): ControlTarget {
  const { user, session } = fields;
  if ((user === undefined) === (session === undefined)) throw new PushError('bad_request', 'name exactly one of "user" (a token sub) or "session" (a session id)');
  const [name, value] = user !== undefined ? ['user', user] : ['session', session];
  if (typeof value !== 'string' || value === '' || value.length > MAX_ID_LENGTH) throw new PushError('bad_request', `${name} must be a string of 1 to ${MAX_ID_LENGTH} characters`);
  return name === 'user' ? { user: value } : { session: value };
}

function commandOf(type: ServerApiType, target: ControlTarget, fields: Record<string, unknown>): ControlCommand {
  if (type === 'disconnect') {
    const { code = DISCONNECTS.byServer.code, reason = DISCONNECTS.byServer.reason } = fields;
    if (typeof code !== 'number' || !Number.isInteger(code) || code < 4000 || code > 4999) throw new PushError('bad_request', 'code must be an integer from 4000 to 4999 (4000–4499: the client reconnects and resumes; 4500–4999: it does not)');
    if (typeof reason !== 'string' || Buffer.byteLength(reason) > MAX_REASON_BYTES) throw new PushError('bad_request', `reason must be a string of at most ${MAX_REASON_BYTES} bytes`);
    return { type, target, code, reason };
  }
  const { channel, cursor } = fields;
  if (channel === undefined) throw new PushError('bad_request', 'channel is required');
  const problem = channelNameProblem(channel) ?? filterProblem(channel as string);
  if (problem) throw new PushError('bad_channel', problem);
  if (type === 'unsubscribe') return { type, target, channel: channel as string };
  if (cursor !== undefined && typeof cursor !== 'string') throw new PushError('bad_request', 'cursor must be a string');
  return cursor === undefined ? { type, target, channel: channel as string } : { type, target, channel: channel as string, cursor };
}
