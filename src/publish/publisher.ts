/**
 * Publishing, shared by HTTP (POST /v1/publish) and the WebSocket publish op: validation, limits,
 * and idempotency (a retried request with the same key publishes once and gets the same ids).
 */
import { LRUCache } from 'lru-cache';
import { PushError } from '../errors.js';
import { channelNameProblem } from '../protocol/channel-name.js';
import { payloadFromValue } from '../protocol/envelope.js';
import type { PublishMessage, Source } from '../log/source.js';

export interface PublisherOptions {
  readonly maxMessageBytes: number;
  /** Seconds an idempotency key is remembered. */
  readonly idempotencyTtl: number;
  readonly maxIdempotencyKeys?: number;
  /** Most messages in one publish request. */
  readonly maxBatch?: number;
}

export const MAX_IDEMPOTENCY_KEY_LENGTH = 255;

export class Publisher {
  // The promise, not the result, is remembered: a retry that arrives while the first attempt is
  // still in flight waits for it instead of publishing again.
  readonly #recent: LRUCache<string, Promise<string[]>>;
  readonly #maxBatch: number;

  constructor(
    private readonly source: Source,
    private readonly options: PublisherOptions,
    private readonly onPublished: (count: number) => void = () => {},
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
      const problem = channelNameProblem(channel);
      if (problem) throw new PushError('bad_channel', `${where}${problem}`);
      if (data === undefined) throw new PushError('bad_request', `${where}data is required`);
      const payload = payloadFromValue(data);
      if (payload.bytes > this.options.maxMessageBytes) {
        throw new PushError('message_too_large', `${where}data is ${payload.bytes} bytes, the limit is ${this.options.maxMessageBytes}`);
      }
      return { channel: channel as string, payload };
    });
  }

  async publish(items: readonly unknown[], idempotencyKey?: string): Promise<string[]> {
    if (idempotencyKey !== undefined) {
      if (idempotencyKey.length === 0 || idempotencyKey.length > MAX_IDEMPOTENCY_KEY_LENGTH) {
        throw new PushError('bad_request', `Idempotency-Key must be 1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} characters`);
      }
      const earlier = this.#recent.get(idempotencyKey);
      if (earlier) return earlier;
    }
    const messages = this.prepare(items);
    // Always try, even when the last attempt failed: refusing up front would never find out that
    // the log is back. The source answers `unavailable` itself, within its own time bound.
    const attempt = this.source.publish(messages).then((ids) => {
      this.onPublished(ids.length);
      return ids;
    });
    if (idempotencyKey !== undefined) {
      this.#recent.set(idempotencyKey, attempt);
      // A failed attempt must not be remembered: the retry has to really publish.
      attempt.catch(() => this.#recent.delete(idempotencyKey));
    }
    return attempt;
  }
}
