/**
 * Client ops on the WebSocket: parsing and validation only, no socket. Every problem becomes a
 * PushError that the connection turns into an `error` op; the connection itself survives.
 */
import type { DeltaCodec } from '../src/delta/codec.js';
import { deltaCodecOf } from '../src/delta/codecs.js';
import { PushError } from '../src/errors.js';
import { jsonTooDeep } from '../src/protocol/json-depth.js';
import { subscriptionProblem } from '../src/protocol/channel-filter.js';
import { maxRateParam, onSlowParam, snapshotParam } from './request-params.js';

export type ClientOp =
  | { op: 'subscribe'; channel: string; cursor?: string; delta: DeltaCodec | null; snapshot?: 'latest'; maxRate?: number; onSlow?: 'conflate' | 'disconnect'; id?: string }
  | { op: 'unsubscribe'; channel: string; id?: string }
  | { op: 'publish'; channel: string; data: unknown; id?: string }
  | { op: 'ping'; id?: string }
  | { op: 'auth'; token: string; cursor?: string; id?: string };

/** Longest client-chosen op id; it is echoed back in replies. */
export const MAX_OP_ID_LENGTH = 255;

/** The op's id if one can be read, so even an error reply can name the request it answers. */
export function opIdOf(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const id = (value as { id?: unknown }).id;
  return typeof id === 'string' && id.length <= MAX_OP_ID_LENGTH ? id : undefined;
}

export function parseJsonFrame(text: string, maxDepth: number): unknown {
  if (jsonTooDeep(text, maxDepth)) throw new PushError('bad_json', `frame nests arrays and objects more than ${maxDepth} levels deep`);
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new PushError('bad_json', `frame is not valid JSON: ${(error as Error).message}`);
  }
}

export function parseClientOp(value: unknown): ClientOp {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new PushError('bad_request', 'a frame must be a JSON object with an "op" field');
  const fields = value as Record<string, unknown>;
  if (fields['id'] !== undefined && (typeof fields['id'] !== 'string' || fields['id'].length > MAX_OP_ID_LENGTH)) {
    throw new PushError('bad_request', `id must be a string of at most ${MAX_OP_ID_LENGTH} characters`);
  }
  const id = fields['id'] as string | undefined;
  const withId = <T extends object>(op: T): T & { id?: string } => (id === undefined ? op : { ...op, id });
  switch (fields['op']) {
    case 'subscribe': {
      const channel = channelField(fields);
      const cursor = fields['cursor'];
      if (cursor !== undefined && cursor !== null && typeof cursor !== 'string') throw new PushError('bad_request', 'cursor must be a string');
      const delta = deltaCodecOf(fields['delta']);
      const snapshot = snapshotParam(fields['snapshot']);
      if (fields['maxRate'] !== undefined && fields['maxRate'] !== null && typeof fields['maxRate'] !== 'number') throw new PushError('bad_request', 'maxRate must be a number of milliseconds');
      const maxRate = maxRateParam(fields['maxRate']);
      const onSlow = onSlowParam(fields['onSlow']);
      return withId({ op: 'subscribe', channel, delta, ...(typeof cursor === 'string' ? { cursor } : {}), ...(snapshot ? { snapshot } : {}), ...(maxRate ? { maxRate } : {}), ...(onSlow ? { onSlow } : {}) });
    }
    case 'unsubscribe':
      return withId({ op: 'unsubscribe', channel: channelField(fields) });
    case 'publish': {
      const channel = channelField(fields);
      if (fields['data'] === undefined) throw new PushError('bad_request', 'publish needs a data field');
      return withId({ op: 'publish', channel, data: fields['data'] });
    }
    case 'ping':
      return withId({ op: 'ping' });
    case 'auth': {
      const token = fields['token'];
      if (typeof token !== 'string' || token === '') throw new PushError('bad_request', 'auth needs a token field (a non-empty string)');
      const cursor = fields['cursor'];
      if (cursor !== undefined && typeof cursor !== 'string') throw new PushError('bad_request', 'cursor must be a string');
      return withId(cursor === undefined ? { op: 'auth', token } : { op: 'auth', token, cursor });
    }
    case undefined:
      throw new PushError('bad_request', 'a frame must have an "op" field');
    default:
      throw new PushError('unknown_op', `unknown op ${JSON.stringify(fields['op']).slice(0, 64)}; known ops: auth, subscribe, unsubscribe, publish, ping`);
  }
}

function channelField(fields: Record<string, unknown>): string {
  // A missing field is a malformed op; a name that breaks the rules is a bad channel. A publish
  // to a pattern is refused by the publisher, the one place every publish goes through.
  if (fields['channel'] === undefined) throw new PushError('bad_request', 'the op needs a channel field');
  const problem = subscriptionProblem(fields['channel']);
  if (problem) throw new PushError('bad_channel', problem);
  return fields['channel'] as string;
}
