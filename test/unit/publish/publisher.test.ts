import { InProcessControlLog } from '../../../src/log/control.js';
import { parseCaps } from '../../../src/auth/caps.js';
import { OPEN_IDENTITY, SERVER_IDENTITY } from '../../../src/auth/identity.js';
import { describe, expect, it } from 'vitest';
import { PushError, type ErrorCode } from '../../../src/errors.js';
import { MAX_IDEMPOTENCY_KEY_LENGTH, Publisher } from '../../../src/publish/publisher.js';
import { EmbeddedLog } from '../../../src/log/embedded-log.js';
import type { LogRecord, PublishMessage, Source } from '../../../src/log/source.js';
import { Frontier } from '../../../src/log/position.js';

async function embedded(options: { maxBatch?: number; maxMessageBytes?: number } = {}) {
  const log = new EmbeddedLog('test');
  const records: LogRecord[] = [];
  await log.open((batch) => records.push(...batch));
  let published = 0;
  const publisher = new Publisher(log, { maxMessageBytes: options.maxMessageBytes ?? 100, idempotencyTtl: 60, maxBatch: options.maxBatch }, (n) => (published += n));
  return { publisher, records, published: () => published };
}

/** A source whose publishes stay pending until the test settles them. */
class ManualSource implements Source {
  readonly kind = 'manual';
  readonly control = new InProcessControlLog();
  readonly sessions = new InProcessControlLog();
  readonly epoch = 'test';
  readonly partitions = 1;
  readonly start = Frontier.empty('test', 1);
  writable = true;
  readonly ready = true;
  readonly calls: { messages: readonly PublishMessage[]; resolve: (ids: string[]) => void; reject: (error: Error) => void }[] = [];

  async open(): Promise<void> {}
  async close(): Promise<void> {}
  publish(messages: readonly PublishMessage[]): Promise<string[]> {
    return new Promise((resolve, reject) => this.calls.push({ messages, resolve, reject }));
  }
}

async function rejection(promise: Promise<unknown>): Promise<PushError> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(PushError);
  return error as PushError;
}

async function expectCode(promise: Promise<unknown>, code: ErrorCode, message?: RegExp): Promise<void> {
  const error = await rejection(promise);
  expect(error.code).toBe(code);
  if (message) expect(error.message).toMatch(message);
}

const ALL = parseCaps([{ match: '#', allow: ['sub', 'pub', 'hst'] }], undefined, 'caps');

describe('Publisher', () => {
  describe('#publish', () => {
    it('appends to the log and returns the message ids in order', async () => {
      const { publisher, records, published } = await embedded();
      const ids = await publisher.publish(OPEN_IDENTITY, [{ channel: 'a', data: { x: 1 } }, { channel: 'b/c', data: 'hi' }]);
      expect(ids).toEqual(['0-0', '0-1']);
      expect(records.map((r) => [r.key, r.payload?.json])).toEqual([['a', '{"x":1}'], ['b/c', '"hi"']]);
      expect(published()).toBe(2);
    });

    it('rejects malformed items with bad_request', async () => {
      const { publisher, records } = await embedded();
      await expectCode(publisher.publish(OPEN_IDENTITY, []), 'bad_request', /empty/);
      await expectCode(publisher.publish(OPEN_IDENTITY, ['text']), 'bad_request', /^body must be a JSON object/);
      await expectCode(publisher.publish(OPEN_IDENTITY, [[1]]), 'bad_request');
      await expectCode(publisher.publish(OPEN_IDENTITY, [{ channel: 'a', data: 1 }, null]), 'bad_request', /^messages\[1\] must be a JSON object/);
      await expectCode(publisher.publish(OPEN_IDENTITY, [{ channel: 'a' }]), 'bad_request', /data is required/);
      expect(records).toEqual([]);
    });

    it('rejects a bad channel name with bad_channel, naming the item', async () => {
      const { publisher } = await embedded();
      await expectCode(publisher.publish(OPEN_IDENTITY, [{ channel: 'a//b', data: 1 }]), 'bad_channel', /levels must not be empty/);
      await expectCode(publisher.publish(OPEN_IDENTITY, [{ channel: 5, data: 1 }]), 'bad_channel', /must be a string/);
      // Missing altogether: a malformed request, as on the WebSocket.
      await expectCode(publisher.publish(OPEN_IDENTITY, [{ data: 1 }]), 'bad_request', /channel is required/);
      await expectCode(publisher.publish(OPEN_IDENTITY, [{ channel: 'ok', data: 1 }, { channel: '', data: 1 }]), 'bad_channel', /^messages\[1\]\.channel must not be empty/);
    });

    it('rejects data over maxMessageBytes with message_too_large, and publishes nothing of the batch', async () => {
      const { publisher, records } = await embedded({ maxMessageBytes: 10 });
      expect(await publisher.publish(OPEN_IDENTITY, [{ channel: 'a', data: '12345678' }])).toEqual(['0-0']); // 10 bytes with quotes
      const error = await rejection(publisher.publish(OPEN_IDENTITY, [{ channel: 'a', data: 1 }, { channel: 'a', data: '123456789' }]));
      expect(error.code).toBe('message_too_large');
      expect(error.status).toBe(413);
      expect(error.message).toMatch(/messages\[1\]\.data is 11 bytes, the limit is 10/);
      expect(records).toHaveLength(1);
    });

    it('limits the batch size', async () => {
      const { publisher } = await embedded({ maxBatch: 2 });
      const item = { channel: 'a', data: 1 };
      expect(await publisher.publish(OPEN_IDENTITY, [item, item])).toHaveLength(2);
      await expectCode(publisher.publish(OPEN_IDENTITY, [item, item, item]), 'bad_request', /at most 2 messages per publish, got 3/);
    });

    it('keeps trying a source that reported itself unwritable, so publishing recovers when the log is back', async () => {
      const source = new ManualSource();
      source.writable = false;
      const publisher = new Publisher(source, { maxMessageBytes: 100, idempotencyTtl: 60 });
      const failed = rejection(publisher.publish(OPEN_IDENTITY, [{ channel: 'a', data: 1 }]));
      source.calls[0]?.reject(new PushError('unavailable', 'the log is not reachable'));
      const error = await failed;
      expect(error.code).toBe('unavailable');
      expect(error.retryable).toBe(true);
      const next = publisher.publish(OPEN_IDENTITY, [{ channel: 'a', data: 2 }]);
      source.calls[1]?.resolve(['0-1']);
      expect(await next).toEqual(['0-1']);
    });
  });

  describe('idempotency', () => {
    it('publishes once for the same key and answers retries with the same ids', async () => {
      const { publisher, records, published } = await embedded();
      const first = await publisher.publish(OPEN_IDENTITY, [{ channel: 'a', data: 1 }], 'key-1');
      const retry = await publisher.publish(OPEN_IDENTITY, [{ channel: 'a', data: 1 }], 'key-1');
      expect(retry).toEqual(first);
      expect(records).toHaveLength(1);
      expect(published()).toBe(1);
      expect(await publisher.publish(OPEN_IDENTITY, [{ channel: 'a', data: 1 }], 'key-2')).toEqual(['0-1']);
    });

    it('publishes once when retries arrive while the first attempt is in flight', async () => {
      const source = new ManualSource();
      const publisher = new Publisher(source, { maxMessageBytes: 100, idempotencyTtl: 60 });
      const attempts = [1, 2, 3].map(() => publisher.publish(OPEN_IDENTITY, [{ channel: 'a', data: 1 }], 'k'));
      await Promise.resolve();
      expect(source.calls).toHaveLength(1);
      source.calls[0]?.resolve(['0-7']);
      expect(await Promise.all(attempts)).toEqual([['0-7'], ['0-7'], ['0-7']]);
    });

    it('does not remember a failed attempt: the retry really publishes', async () => {
      const source = new ManualSource();
      const publisher = new Publisher(source, { maxMessageBytes: 100, idempotencyTtl: 60 });
      const first = publisher.publish(OPEN_IDENTITY, [{ channel: 'a', data: 1 }], 'k');
      await Promise.resolve();
      source.calls[0]?.reject(new Error('broker down'));
      await expect(first).rejects.toThrow('broker down');
      const retry = publisher.publish(OPEN_IDENTITY, [{ channel: 'a', data: 1 }], 'k');
      await Promise.resolve();
      expect(source.calls).toHaveLength(2);
      source.calls[1]?.resolve(['0-9']);
      expect(await retry).toEqual(['0-9']);
    });

    it('does not remember a request that failed validation', async () => {
      const { publisher, records } = await embedded();
      await expectCode(publisher.publish(OPEN_IDENTITY, [{ channel: '', data: 1 }], 'k'), 'bad_channel');
      expect(await publisher.publish(OPEN_IDENTITY, [{ channel: 'a', data: 1 }], 'k')).toEqual(['0-0']);
      expect(records).toHaveLength(1);
    });

    it('rejects an empty or over-long key', async () => {
      const { publisher } = await embedded();
      await expectCode(publisher.publish(OPEN_IDENTITY, [{ channel: 'a', data: 1 }], ''), 'bad_request', /Idempotency-Key/);
      await expectCode(publisher.publish(OPEN_IDENTITY, [{ channel: 'a', data: 1 }], 'k'.repeat(MAX_IDEMPOTENCY_KEY_LENGTH + 1)), 'bad_request', /Idempotency-Key/);
      expect(await publisher.publish(OPEN_IDENTITY, [{ channel: 'a', data: 1 }], 'k'.repeat(MAX_IDEMPOTENCY_KEY_LENGTH))).toEqual(['0-0']);
    });

    it('scopes keys to the publisher: two users with the same key each publish', async () => {
      const { publisher, records } = await embedded();
      const u1 = { ...OPEN_IDENTITY, kind: 'user' as const, user: 'u1', scope: 'user:u1', grants: ALL };
      const u2 = { ...u1, user: 'u2', scope: 'user:u2' };
      expect(await publisher.publish(u1, [{ channel: 'a', data: 1 }], 'k')).toEqual(['0-0']);
      expect(await publisher.publish(u2, [{ channel: 'a', data: 1 }], 'k')).toEqual(['0-1']);
      expect(await publisher.publish(u1, [{ channel: 'a', data: 1 }], 'k')).toEqual(['0-0']);
      expect(records).toHaveLength(2);
    });

    it('binds a key to its body: the same key with another body is 422, and publishes nothing', async () => {
      const { publisher, records } = await embedded();
      await publisher.publish(OPEN_IDENTITY, [{ channel: 'a', data: 1 }], 'k');
      await expectCode(publisher.publish(OPEN_IDENTITY, [{ channel: 'a', data: 2 }], 'k'), 'idempotency_conflict');
      await expectCode(publisher.publish(OPEN_IDENTITY, [{ channel: 'b', data: 1 }], 'k'), 'idempotency_conflict');
      expect(records).toHaveLength(1);
    });
  });

  describe('entitlements', () => {
    it('checks pub for every message before publishing any', async () => {
      const { publisher, records } = await embedded();
      const user = { ...OPEN_IDENTITY, kind: 'user' as const, user: 'u1', scope: 'user:u1', grants: parseCaps([{ match: 'mine/#', allow: ['pub'] }], 'u1', 'caps') };
      await expectCode(publisher.publish(user, [{ channel: 'mine/a', data: 1 }, { channel: 'theirs', data: 1 }]), 'forbidden');
      await expectCode(publisher.publish({ ...user, kind: 'anonymous', user: undefined }, [{ channel: 'theirs', data: 1 }]), 'unauthorized');
      expect(records).toHaveLength(0);
      expect(await publisher.publish(user, [{ channel: 'mine/a', data: 1 }])).toEqual(['0-0']);
    });

    it('turns clients away when client publishing is off, but not backends', async () => {
      const source = new EmbeddedLog();
      await source.open(() => {});
      const publisher = new Publisher(source, { maxMessageBytes: 100, idempotencyTtl: 60, allowClientPublish: false });
      await expectCode(publisher.publish(OPEN_IDENTITY, [{ channel: 'a', data: 1 }]), 'publish_disabled');
      expect(await publisher.publish(SERVER_IDENTITY, [{ channel: 'a', data: 1 }])).toEqual(['0-0']);
    });
  });

  describe('outcomes', () => {
    it('reports each request once: ok, duplicate, refused, invalid, too_large, failed', async () => {
      const source = new ManualSource();
      const outcomes: string[] = [];
      const publisher = new Publisher(source, { maxMessageBytes: 10, idempotencyTtl: 60 }, () => {}, (outcome) => outcomes.push(outcome));
      const ok = publisher.publish(OPEN_IDENTITY, [{ channel: 'a', data: 1 }, { channel: 'b', data: 2 }], 'key');
      // A retry while the first is in flight is answered from it, and reported at once.
      const retry = publisher.publish(OPEN_IDENTITY, [{ channel: 'a', data: 1 }, { channel: 'b', data: 2 }], 'key');
      await Promise.resolve();
      expect(outcomes).toEqual(['duplicate']);
      source.calls[0]?.resolve(['0-0', '0-1']);
      expect(await ok).toEqual(await retry);
      const anonymous = { ...OPEN_IDENTITY, kind: 'anonymous' as const, grants: [] };
      await rejection(publisher.publish(anonymous, [{ channel: 'a', data: 1 }]));
      await rejection(publisher.publish(OPEN_IDENTITY, [{ data: 1 }]));
      await rejection(publisher.publish(OPEN_IDENTITY, [{ channel: 'a', data: 'far too long' }]));
      const failing = publisher.publish(OPEN_IDENTITY, [{ channel: 'a', data: 1 }]);
      source.calls[1]?.reject(new PushError('unavailable', 'Kafka is not reachable'));
      await rejection(failing);
      expect(outcomes).toEqual(['duplicate', 'ok', 'refused', 'invalid', 'too_large', 'failed']);
    });
  });
});
