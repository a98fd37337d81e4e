/**
 * Query-string parameters shared by the subscribing routes: channel lists, cursors, numbers.
 * Each problem becomes a PushError naming the parameter.
 */
import type { DeltaCodec } from '../src/delta/codec.js';
import { deltaCodecOf } from '../src/delta/codecs.js';
import { PushError } from '../src/errors.js';
import { subscriptionProblem } from '../src/protocol/channel-filter.js';

type Query = Record<string, string | string[] | undefined>;

/**
 * `?channel=A&channel=B`: at least one (unless `optional`: the token brings its own), at most
 * `max`, each valid, duplicates folded.
 */
export function channelsParam(query: Query, max: number, optional = false): string[] {
  const raw = query['channel'];
  // One channel, the usual poll: no set to fold duplicates.
  if (typeof raw === 'string' && max >= 1) return [checkedChannel(raw)];
  const list = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
  if (list.length === 0 && !optional) throw new PushError('bad_request', 'at least one channel parameter is required');
  const channels = [...new Set(list)];
  if (channels.length > max) throw new PushError('too_many_channels', `at most ${max} channels per subscription, got ${channels.length}`);
  for (const channel of channels) checkedChannel(channel);
  return channels;
}

function checkedChannel(channel: string): string {
  const problem = subscriptionProblem(channel);
  if (problem) throw new PushError('bad_channel', `${problem}: ${JSON.stringify(channel.slice(0, 64))}`);
  return channel;
}

/** A single-valued string parameter; repeating it is an error rather than a silent pick. */
export function stringParam(query: Query, name: string): string | undefined {
  const raw = query[name];
  if (Array.isArray(raw)) throw new PushError('bad_request', `${name} may be given once`);
  return raw;
}

export function numberParam(query: Query, name: string, min: number, max: number, fallback: number): number {
  const raw = stringParam(query, name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(value) || value < min || value > max) {
    throw new PushError('bad_request', `${name} must be a number from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

/** Longest eliding interval a subscription may ask for: a day. */
export const MAX_RATE_MS = 86_400_000;

/** `maxRate=<ms>` (query parameter or WebSocket field): eliding; 0 or absent for every message. */
export function maxRateParam(value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined;
  const number = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (typeof number !== 'number' || !Number.isInteger(number) || number < 0 || number > MAX_RATE_MS) {
    throw new PushError('bad_request', `maxRate must be a whole number of milliseconds from 0 to ${MAX_RATE_MS}, got ${JSON.stringify(value).slice(0, 64)}`);
  }
  return number;
}

/** `onSlow=conflate|disconnect`: what happens to a client that cannot keep up. */
export function onSlowParam(value: unknown): 'conflate' | 'disconnect' | undefined {
  if (value === undefined || value === null) return undefined;
  if (value === 'conflate' || value === 'disconnect') return value;
  throw new PushError('bad_request', `onSlow must be "conflate" or "disconnect", got ${JSON.stringify(value).slice(0, 64)}`);
}

/** `?snapshot=latest`: the newest message of each channel first (on a subscribe without a cursor). */
export function snapshotParam(value: unknown): 'latest' | undefined {
  if (value === undefined || value === null || value === 'none') return undefined;
  if (value === 'latest') return 'latest';
  throw new PushError('bad_request', `snapshot must be "latest" or "none", got ${JSON.stringify(value).slice(0, 64)}`);
}

/** `?delta=json-patch|vcdiff|none`: the codec, or null for full messages. */
export function deltaParam(query: Query): DeltaCodec | null {
  return deltaCodecOf(stringParam(query, 'delta'));
}
