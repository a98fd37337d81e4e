/**
 * HTTP error bodies: `{"error": {"code": "...", "message": "..."}}` with the status from the error
 * table. Fastify's own errors (bad JSON, body too large, …) are mapped onto the same codes.
 */
import type { FastifyError, FastifyReply } from 'fastify';
import { ERROR_CODES, PushError, type ErrorCode } from '../src/errors.js';
import type { Metrics } from '../src/metrics.js';

/** What a body that is not JSON is told (publish takes application/json only). */
export const UNSUPPORTED_BODY = 'send the body as application/json (content-type: application/json)';

export function sendError(reply: FastifyReply, error: PushError): FastifyReply {
  return reply.code(error.status).headers(errorHeaders(error)).send(errorBody(error));
}

/** The headers of every error answer: never cached, and Retry-After when the error has one. */
export function errorHeaders(error: PushError): Record<string, string> {
  return error.retryAfter === undefined ? { 'cache-control': 'no-store' } : { 'cache-control': 'no-store', 'retry-after': String(error.retryAfter) };
}

/** The body of every error answer. */
export function errorBody(error: PushError): { error: ReturnType<PushError['toJSON']> } {
  return { error: error.toJSON() };
}

/** Turns anything thrown in a route into the PushError the client should see. */
export function toPushError(error: unknown): PushError {
  if (error instanceof PushError) return error;
  const fastifyError = error as Partial<FastifyError>;
  switch (fastifyError.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new PushError('bad_json', `request body is not valid JSON: ${fastifyError.message ?? ''}`.trim());
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new PushError('message_too_large', 'request body is over the size limit');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new PushError('unsupported_media_type', UNSUPPORTED_BODY);
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new PushError('bad_request', fastifyError.message ?? 'unsupported request body');
  }
  if (error instanceof SyntaxError) return new PushError('bad_json', `request body is not valid JSON: ${error.message}`);
  const status = fastifyError.statusCode;
  if (status !== undefined && status >= 400 && status < 500) {
    const code: ErrorCode = status === 413 ? 'message_too_large' : status === 404 ? 'not_found' : 'bad_request';
    return new PushError(code, fastifyError.message ?? ERROR_CODES[code].description);
  }
  return new PushError('internal', 'internal server error');
}

/** Codes that are a limit doing its job: counted by edgepush_limited_total where they are raised. */
const LIMIT_CODES: ReadonlySet<ErrorCode> = new Set(['rate_limited', 'too_many_connections', 'over_capacity']);

/**
 * Counts a refusal once, in the series it belongs to: a refused or forbidden credential under
 * edgepush_auth_total, what the client got wrong under edgepush_bad_input_total. A limit, an
 * outage (503) or a server error is not bad input.
 */
export function countRefusal(metrics: Metrics, transport: string, error: PushError, authReason = transport): void {
  if (error.code === 'unauthorized' || error.code === 'forbidden') metrics.auth(error.code === 'forbidden' ? 'forbidden' : 'refused', authReason);
  else if (error.status < 500 && !LIMIT_CODES.has(error.code)) metrics.badInput(transport, error.code);
}
