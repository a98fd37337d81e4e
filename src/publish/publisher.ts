/**
 * Publishing, shared by HTTP (POST /v1/publish), the WebSocket publish op and MQTT PUBLISH:
 * validation, limits, and idempotency (a retried request with the same key publishes once and gets
 * the same ids).
 */
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { authorize } from '../auth/entitlements.js';
import type { Identity } from '../auth/identity.js';
import { PushError, type ErrorCode } from '../errors.js';
import { publishedChannelProblem } from '../protocol/channel-filter.js';
import { payloadFromValue } from '../protocol/envelope.js';
import type { PublishMessage, Source } from '../log/source.js';

export interface PublisherOptions {
  readonly maxMessageBytes: number;
  /** Seconds an idempotency key is remembered. */
  readonly idempotencyTtl: number;
  readonly maxIdempotencyKeys?: number;
  /** Most messages in one publish request. */
  readonly maxBatch?: number;
  /**
   * Whether clients (users, anonymous, everyone in open mode) may publish at all; backends with an
   * API key and the server itself always may. Default true.
   */
  readonly allowClientPublish?: boolean;
}

/** What an idempotency key remembers: the request it was first used with, and its outcome. */
interface Remembered {
  readonly request: string;
  readonly ids: Promise<string[]>;
}

export const MAX_IDEMPOTENCY_KEY_LENGTH = 255;

/**
 * How a publish request was answered (the metrics' `outcome`): published; answered from an earlier
 * request with the same Idempotency-Key; refused by the credentials or entitlements; not a valid
 * request; a message over maxMessageBytes; over a rate limit; or the log did not take it.
 */
export type PublishOutcome = 'ok' | 'duplicate' | 'refused' | 'invalid' | 'too_large' | 'rate_limited' | 'failed';

const REFUSED: ReadonlySet<ErrorCode> = new Set(['unauthorized', 'forbidden', 'publish_disabled']);

/** The outcome of a publish request that failed with `error`. */
export function publishOutcomeOf(error: unknown): PublishOutcome {
  if (!(error instanceof PushError)) return 'failed';
  if (REFUSED.has(error.code)) return 'refused';
  if (error.code === 'message_too_large') return 'too_large';
  if (error.code === 'rate_limited') return 'rate_limited';
  // The log's refusals (unavailable: Kafka unreachable or slow) and our own faults.
  if (error.status >= 500) return 'failed';
  return 'invalid';
}

export class Publisher {
  // The promise, not the result, is remembered: a retry that arrives while the first attempt is
  // still in flight waits for it instead of publishing again. Keys are scoped to the publisher's
  // identity: two users choosing the same key never see each other's ids.
  readonly #recent: LRUCache<string, Remembered>;
  readonly #maxBatch: number;

  constructor(
    private readonly source: Source,
    private readonly options: PublisherOptions,
    private readonly onPublished: (count: number) => void = () => {},
    /** Every request's outcome, once (the transports report their own refusals before they call). */
    private readonly onResult: (outcome: PublishOutcome) => void = () => {},
  ) {
    this.#maxBatch = options.maxBatch ?? 1000;
    this.#recent = new LRUCache({ max: options.maxIdempotencyKeys ?? 100_000, ttl: options.idempotencyTtl * 1000 });
  }

  /** Validates without publishing: every problem is found before anything reaches the log. */
  prepare(items: readonly unknown[]): PublishMessage[] {
    if (items.length === 0) throw new PushError('bad_request', 'nothing to publish: "messages" is empty');
    if (items.length > this.#maxBatch) throw new PushError('bad_request', `at most ${this.#maxBatch} messages per publish, got ${items.length}`);
    return items.map((item, index) => {
      const where = items.length > 1 ? `messages[${index}].` : '';
      if (typeof item !== 'object' || item === null || Array.isArray(item)) {
        throw new PushError('bad_request', `${items.length > 1 ? `messages[${index}]` : 'body'} must be a JSON object`);
      }
      const { channel, data } = item as { channel?: unknown; data?: unknown };
      // A missing field is a malformed request (as on the WebSocket); a name that breaks the rules is a bad channel.
      if (channel === undefined) throw new PushError('bad_request', `${where}channel is required`);
      const problem = publishedChannelProblem(channel);
      if (problem) throw new PushError('bad_channel', `${where}${problem}`);
      if (data === undefined) throw new PushError('bad_request', `${where}data is required`);
      const payload = payloadFromValue(data);
      if (payload.bytes > this.options.maxMessageBytes) {
        throw new PushError('message_too_large', `${where}data is ${payload.bytes} bytes, the limit is ${this.options.maxMessageBytes}`);
      }
      return { channel: channel as string, payload };
    });
  }

  /**
   * Publishes for `identity`: the publish switch and the `pub` grants are checked for every
   * message before anything reaches the log. `admit`, the transport's own check (a rate limit),
   * runs first; a refusal of its counts as the request's outcome like the publisher's own.
   */
  async publish(identity: Identity, items: readonly unknown[], idempotencyKey?: string, admit?: () => void): Promise<string[]> {
    let answered: { ids: Promise<string[]>; duplicate: boolean };
    try {
      admit?.();
      answered = this.#publish(identity, items, idempotencyKey);
    } catch (error) {
      this.onResult(publishOutcomeOf(error));
      throw error;
    }
    if (answered.duplicate) {
      this.onResult('duplicate');
      return answered.ids;
    }
    return answered.ids.then(
      (ids) => {
        this.onResult('ok');
        return ids;
      },
      (error: unknown) => {
        this.onResult(publishOutcomeOf(error));
        throw error;
      },
    );
  }

  /** Checks everything and hands the messages to the log, or finds the earlier request a retry repeats. */
  #publish(identity: Identity, items: readonly unknown[], idempotencyKey: string | undefined): { ids: Promise<string[]>; duplicate: boolean } {
    const isBackend = identity.kind === 'api-key' || identity.kind === 'server';
    if (!isBackend && this.options.allowClientPublish === false) throw new PushError('publish_disabled', 'publishing from clients is turned off on this server');
    if (idempotencyKey !== undefined && (idempotencyKey.length === 0 || idempotencyKey.length > MAX_IDEMPOTENCY_KEY_LENGTH)) {
      throw new PushError('bad_request', `Idempotency-Key must be 1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} characters`);
    }
    const messages = this.prepare(items);
    for (const message of messages) authorize(identity, 'pub', message.channel);
    const scopedKey = idempotencyKey === undefined ? undefined : `${identity.scope}\u0000${idempotencyKey}`;
    const request = scopedKey === undefined ? '' : requestDigest(messages);
    if (scopedKey !== undefined) {
      const earlier = this.#recent.get(scopedKey);
      if (earlier) {
        if (earlier.request !== request) throw new PushError('idempotency_conflict', 'this Idempotency-Key was used with a different request body; use a new key for a new request');
        return { ids: earlier.ids, duplicate: true };
      }
    }
    // Always try, even when the last attempt failed: refusing up front would never find out that
    // the log is back. The source answers `unavailable` itself, within its own time bound.
    const attempt = this.source.publish(messages).then((ids) => {
      this.onPublished(ids.length);
      return ids;
    });
    if (scopedKey !== undefined) {
      const remembered = { request, ids: attempt };
      this.#recent.set(scopedKey, remembered);
      // A failed attempt must not be remembered: the retry has to really publish.
      attempt.catch(() => {
        if (this.#recent.peek(scopedKey) === remembered) this.#recent.delete(scopedKey);
      });
    }
    return { ids: attempt, duplicate: false };
  }
}

/** The request an idempotency key is bound to: each message's channel and exact payload bytes. */
function requestDigest(messages: readonly PublishMessage[]): string {
  const hash = createHash('sha256');
  for (const message of messages) {
    hash.update(message.channel).update('\u0000').update(message.payload.encoding ?? '').update('\u0000').update(message.payload.json).update('\u0001');
  }
  return hash.digest('base64url');
}
