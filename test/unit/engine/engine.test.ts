import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Subscriber } from '../../../src/engine/channel.js';
import { ChannelEngine, mergeBacklogs, type EngineOptions, type Recovery } from '../../../src/engine/engine.js';
import type { RoutedMessage } from '../../../src/log/routed-message.js';
import { Frontier, WHOLE_RECORD, parseCursor } from '../../../src/log/position.js';
import type { PreparedMessage } from '../../../src/engine/prepared-message.js';
import { payloadFromValue } from '../../../src/protocol/envelope.js';
import { KeyRouter } from '../../../src/routing/record-router.js';
import { createIngest } from '../../../src/routing/ingest.js';
import { JSON_PATCH } from '../../../src/delta/json-patch.js';
import type { LogRecord } from '../../../src/log/source.js';

interface Harness {
  engine: ChannelEngine;
  clock: { now: number };
  /** Dispatches a one-message record. */
  send(partition: number, offset: number, channel: string, data?: unknown): void;
}

function harness(options: Partial<EngineOptions> = {}): Harness {
  const clock = { now: 0 };
  const engine = new ChannelEngine({
    epoch: 'test',
    partitions: 1,
    ring: { maxCount: 100, maxBytes: 1e6, maxAgeMs: 60_000 },
    maxIdleChannels: 100,
    maxIdleBytes: 1e8,
    now: () => clock.now,
    ...options,
  });
  const send = (partition: number, offset: number, channel: string, data: unknown = offset): void =>
    engine.dispatchRecord(partition, offset, [{ channel, payload: payloadFromValue(data), ts: 1000 + offset }]);
  return { engine, clock, send };
}

class Collector implements Subscriber {
  readonly received: PreparedMessage[] = [];
  deliver(message: PreparedMessage): void {
    this.received.push(message);
  }
  get ids(): string[] {
    return ids(this.received);
  }
}

const ids = (messages: readonly PreparedMessage[]): string[] => messages.map((m) => m.id);

function cursorOf(text: string, partitions = 1): Frontier {
  const parsed = parseCursor(text, 'test', partitions);
  if (!parsed.ok) throw new Error(parsed.message);
  return parsed.frontier;
}

describe('ChannelEngine', () => {
  describe('#dispatchRecord', () => {
    it('fans each message out to every subscriber of its channel, in order', () => {
      const { engine, send } = harness();
      const a1 = new Collector();
      const a2 = new Collector();
      const b = new Collector();
      engine.subscribe('a', a1, { kind: 'now' });
      engine.subscribe('a', a2, { kind: 'now' });
      engine.subscribe('b', b, { kind: 'now' });
      send(0, 0, 'a');
      send(0, 1, 'b');
      send(0, 2, 'a');
      expect(a1.ids).toEqual(['0-0', '0-2']);
      expect(a2.ids).toEqual(['0-0', '0-2']);
      expect(b.ids).toEqual(['0-1']);
      expect(a1.received[0]).toBe(a2.received[0]);
      expect(a1.received.map((m) => m.cursor)).toEqual(['test.0', 'test.2']);
      expect(engine.stats).toMatchObject({ records: 3, messages: 3, deliveries: 5 });
    });

    it('skips a re-delivered record (offset at or before the frontier) and counts it as a duplicate', () => {
      const { engine, send } = harness();
      const a = new Collector();
      engine.subscribe('a', a, { kind: 'now' });
      send(0, 5, 'a');
      send(0, 5, 'a');
      send(0, 3, 'a');
      send(0, 6, 'a');
      expect(a.ids).toEqual(['0-5', '0-6']);
      expect(engine.stats.duplicateRecords).toBe(2);
      expect(engine.stats.records).toBe(2);
      expect(ids(engine.history('a', 10))).toEqual(['0-5', '0-6']);
    });

    it('advances the frontier for records that route to no channel', () => {
      const { engine, send } = harness({ partitions: 2 });
      engine.dispatchRecord(1, 7, []);
      expect(engine.frontier().toString()).toBe('test._7');
      const a = new Collector();
      engine.subscribe('a', a, { kind: 'now' });
      send(0, 0, 'a');
      expect(a.received[0]?.cursor).toBe('test.0_7');
      engine.dispatchRecord(1, 7, []);
      expect(engine.stats.duplicateRecords).toBe(1);
    });

    it('advances the frontier past records the router refuses (ingest)', () => {
      const { engine } = harness();
      const bad: string[] = [];
      const ingest = createIngest(engine, new KeyRouter(1024), (_record, problem) => bad.push(problem));
      const record = (offset: number, key: string | null, value: string): LogRecord => ({
        partition: 0, offset, key, value: Buffer.from(value), headers: {}, timestamp: 5,
      });
      const a = new Collector();
      engine.subscribe('a', a, { kind: 'now' });
      ingest([record(0, null, '1'), record(1, 'a//b', '1'), record(2, 'a', '{ "x" : 1 }'), record(3, 'a', 'x'.repeat(2000))]);
      expect(bad).toHaveLength(3);
      expect(a.ids).toEqual(['0-2']);
      expect(a.received[0]?.envelope).toBe('{"channel":"a","id":"0-2","ts":5,"data":{ "x" : 1 }}');
      expect(engine.frontier().toString()).toBe('test.3');
    });

    it('gives the items of a split record ids p-o-i and item positions, the last item the whole record', () => {
      const { engine } = harness({ partitions: 2 });
      const a = new Collector();
      const b = new Collector();
      engine.subscribe('a', a, { kind: 'now' });
      engine.subscribe('b', b, { kind: 'now' });
      const items: RoutedMessage[] = ['a', 'b', 'a'].map((channel, item) => ({ channel, item, payload: payloadFromValue(item), ts: 0 }));
      engine.dispatchRecord(1, 4, items);
      expect(a.ids).toEqual(['1-4-0', '1-4-2']);
      expect(b.ids).toEqual(['1-4-1']);
      expect(a.received.map((m) => m.cursor)).toEqual(['test._4~0', 'test._4']);
      expect(b.received[0]?.cursor).toBe('test._4~1');
      expect(engine.frontier().toString()).toBe('test._4');
      // Resuming inside the record gives exactly the later items.
      expect(ids(engine.recover('a', engine.resumePoint('test._4~0')).backlog)).toEqual(['1-4-2']);
      expect(ids(engine.recover('a', engine.resumePoint('test._4~1')).backlog)).toEqual(['1-4-2']);
      expect(ids(engine.recover('b', engine.resumePoint('test._4~0')).backlog)).toEqual(['1-4-1']);
      expect(engine.recover('a', engine.resumePoint('test._4')).backlog).toEqual([]);
    });

    it('rejects a partition outside the log', () => {
      const { engine } = harness({ partitions: 2 });
      expect(() => engine.dispatchRecord(2, 0, [])).toThrow(RangeError);
      expect(() => engine.dispatchRecord(-1, 0, [])).toThrow(RangeError);
    });

    it('keeps delivering to the other subscribers when one throws', () => {
      const { engine, send } = harness();
      const errors: [unknown, string][] = [];
      engine.onDeliveryError = (error, channel) => errors.push([error, channel]);
      const boom = new Error('boom');
      const before = new Collector();
      const after = new Collector();
      engine.subscribe('a', before, { kind: 'now' });
      engine.subscribe('a', { deliver: () => { throw boom; } }, { kind: 'now' });
      engine.subscribe('a', after, { kind: 'now' });
      send(0, 0, 'a');
      send(0, 1, 'a');
      expect(before.ids).toEqual(['0-0', '0-1']);
      expect(after.ids).toEqual(['0-0', '0-1']);
      expect(errors).toEqual([[boom, 'a'], [boom, 'a']]);
      expect(engine.stats.deliveryErrors).toBe(2);
      expect(engine.stats.deliveries).toBe(4);
    });
  });

  describe('#subscribe', () => {
    it('replays exactly the messages after the cursor, then goes live', () => {
      const { engine, send } = harness();
      for (let o = 0; o < 5; o++) send(0, o, o % 2 === 0 ? 'a' : 'b');
      const a = new Collector();
      const recovery = engine.subscribe('a', a, engine.resumePoint('test.1'));
      expect(recovery.reset).toBeUndefined();
      expect(ids(recovery.backlog)).toEqual(['0-2', '0-4']);
      send(0, 5, 'a');
      expect(a.ids).toEqual(['0-5']);
    });

    it('never sends a message at or before the cursor', () => {
      const { engine, send } = harness();
      for (let o = 0; o < 5; o++) send(0, o, 'a');
      expect(engine.subscribe('a', new Collector(), engine.resumePoint('test.4')).backlog).toEqual([]);
      expect(ids(engine.subscribe('a', new Collector(), engine.resumePoint('test.2')).backlog)).toEqual(['0-3', '0-4']);
    });

    it('answers a cursor older than the ring with cursor_expired, from/to and what the ring holds', () => {
      const { engine, send } = harness({ ring: { maxCount: 3, maxBytes: 1e6, maxAgeMs: 60_000 } });
      for (let o = 0; o < 6; o++) send(0, o, 'a');
      const recovery = engine.subscribe('a', new Collector(), engine.resumePoint('test.0'));
      expect(ids(recovery.backlog)).toEqual(['0-3', '0-4', '0-5']);
      expect(recovery.reset).toMatchObject({ reason: 'cursor_expired', channel: 'a', from: 'test.0' });
      // Messages after `from` up to `to` may be missing (0-1, 0-2); what follows is complete.
      const to = cursorOf(recovery.reset?.to as string);
      expect(to.includes(0, 2, 0)).toBe(true);
      expect(to.includes(0, 3, 0)).toBe(false);
      expect(engine.stats.resets.cursor_expired).toBe(1);
    });

    it('answers a cursor past messages that aged out with cursor_expired', () => {
      const { engine, send, clock } = harness({ ring: { maxCount: 100, maxBytes: 1e6, maxAgeMs: 1_000 } });
      send(0, 0, 'a');
      send(0, 1, 'a');
      clock.now = 5_000;
      const recovery = engine.recover('a', engine.resumePoint('test.0'));
      expect(recovery.backlog).toEqual([]);
      expect(recovery.reset?.reason).toBe('cursor_expired');
      expect(engine.recover('a', engine.resumePoint('test.1')).reset).toBeUndefined();
    });

    it('answers a cursor of another epoch with unknown_epoch and the whole ring', () => {
      const { engine, send } = harness();
      for (let o = 0; o < 3; o++) send(0, o, 'a');
      const recovery = engine.subscribe('a', new Collector(), engine.resumePoint('other.2'));
      expect(recovery.reset).toMatchObject({ reason: 'unknown_epoch', channel: 'a' });
      expect(ids(recovery.backlog)).toEqual(['0-0', '0-1', '0-2']);
      expect(engine.stats.resets.unknown_epoch).toBe(1);
    });

    it('answers an unreadable cursor with bad_cursor and starts from now', () => {
      const { engine, send } = harness();
      send(0, 0, 'a');
      const a = new Collector();
      const recovery = engine.subscribe('a', a, engine.resumePoint('not a cursor'));
      expect(recovery.reset).toMatchObject({ reason: 'bad_cursor', channel: 'a' });
      expect(recovery.backlog).toEqual([]);
      send(0, 1, 'a');
      expect(a.ids).toEqual(['0-1']);
    });

    it('treats an absent or empty cursor as "now"', () => {
      const { engine } = harness();
      expect(engine.resumePoint(undefined)).toEqual({ kind: 'now' });
      expect(engine.resumePoint('')).toEqual({ kind: 'now' });
    });

    it('answers a cursor from before the node started reading with cursor_expired', () => {
      const start = Frontier.of('test', [10], [WHOLE_RECORD]);
      const { engine } = harness({ start });
      expect(engine.recover('never-seen', engine.resumePoint('test.3')).reset?.reason).toBe('cursor_expired');
      expect(engine.recover('never-seen', engine.resumePoint('test.10')).reset).toBeUndefined();
    });

    it('resumes across 3 interleaved partitions with exactly the later messages', () => {
      const { engine, send } = harness({ partitions: 3 });
      const live = new Collector();
      engine.subscribe('a', live, { kind: 'now' });
      const order: [number, number, string][] = [
        [0, 0, 'a'], [1, 0, 'a'], [2, 0, 'b'], [1, 1, 'a'], [0, 1, 'a'], [2, 1, 'a'], [2, 2, 'a'], [0, 2, 'b'], [1, 2, 'a'],
      ];
      for (const [p, o, channel] of order) send(p, o, channel);
      expect(live.ids).toEqual(['0-0', '1-0', '1-1', '0-1', '2-1', '2-2', '1-2']);
      for (let k = 0; k < live.received.length; k++) {
        const cursor = (live.received[k] as PreparedMessage).cursor;
        const backlog = engine.recover('a', engine.resumePoint(cursor));
        expect(backlog.reset).toBeUndefined();
        expect(ids(backlog.backlog)).toEqual(live.ids.slice(k + 1));
      }
    });
  });

  describe('idle channels', () => {
    it('a cursor from before an idle channel was evicted gets a reset; one taken after it came back is honoured', () => {
      const { engine, send } = harness({ maxIdleChannels: 2 });
      const first = new Collector();
      engine.subscribe('a', first, { kind: 'now' });
      send(0, 0, 'a');
      const before = (first.received[0] as PreparedMessage).cursor;
      engine.unsubscribe('a', first);
      send(0, 1, 'a'); // missed while away
      send(0, 2, 'b');
      send(0, 3, 'c');
      send(0, 4, 'd'); // 'a' is the least recently used idle channel: evicted
      expect(engine.stats.evictedChannels).toBeGreaterThanOrEqual(1);
      expect(engine.history('a', 10)).toEqual([]);
      send(0, 5, 'a'); // 'a' comes back
      const after = engine.frontier().toString();
      send(0, 6, 'a');

      const stale = engine.subscribe('a', new Collector(), engine.resumePoint(before));
      expect(stale.reset?.reason).toBe('cursor_expired');
      expect(ids(stale.backlog)).toEqual(['0-5', '0-6']);
      const to = cursorOf(stale.reset?.to as string);
      expect(to.includes(0, 1, 0)).toBe(true); // 0-1 is the loss the notice names

      const fresh = engine.subscribe('a', new Collector(), engine.resumePoint(after));
      expect(fresh.reset).toBeUndefined();
      expect(ids(fresh.backlog)).toEqual(['0-6']);
    });

    it('still resets, never loses silently, when more channels are evicted than tombstones are kept', () => {
      const { engine, send } = harness({ maxIdleChannels: 2 });
      send(0, 0, 'a');
      const before = engine.frontier().toString();
      send(0, 1, 'a'); // the message a stale client will miss
      for (let o = 2; o < 20; o++) send(0, o, `noise-${o}`);
      expect(engine.stats.evictedChannels).toBeGreaterThan(4);
      const recovery = engine.subscribe('a', new Collector(), engine.resumePoint(before));
      expect(recovery.reset?.reason).toBe('cursor_expired');
      expect(cursorOf(recovery.reset?.to as string).includes(0, 1, 0)).toBe(true);
    });

    it('leaves a tombstone when an idle channel alone is over the idle byte budget (reset, not silence)', () => {
      const { engine, send } = harness({ ring: { maxCount: 1, maxBytes: 1024, maxAgeMs: 60_000 }, maxIdleBytes: 65_536 });
      send(0, 0, 'a', 1);
      const before = engine.frontier().toString();
      send(0, 1, 'a', 'x'.repeat(65_400)); // fits maxMessageBytes, not the idle budget
      const recovery = engine.subscribe('a', new Collector(), engine.resumePoint(before));
      expect(recovery.reset?.reason).toBe('cursor_expired');
      expect(cursorOf(recovery.reset?.to as string).includes(0, 1, 0)).toBe(true);
    });

    it('keeps idle rings within maxIdleBytes as they grow, evicting the least recently used', () => {
      const { engine, send } = harness({ ring: { maxCount: 100, maxBytes: 1500, maxAgeMs: 60_000 }, maxIdleBytes: 3000 });
      let offset = 0;
      for (let round = 0; round < 10; round++) for (let c = 0; c < 10; c++) send(0, offset++, `ch${c}`, 'x'.repeat(20));
      const held = Array.from({ length: 10 }, (_, c) => engine.history(`ch${c}`, 100).reduce((sum, m) => sum + m.size, 0));
      expect(held.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(3000);
      expect(engine.stats.evictedChannels).toBeGreaterThan(0);
    });

    it('names whole records in reset notices (no item for records that were not split)', () => {
      const { engine, send } = harness({ ring: { maxCount: 2, maxBytes: 1e6, maxAgeMs: 60_000 } });
      send(0, 0, 'a');
      const before = engine.frontier().toString();
      for (let o = 1; o <= 4; o++) send(0, o, 'a');
      const recovery = engine.recover('a', engine.resumePoint(before));
      expect(recovery.reset?.to).toBe('test.2');
    });

    it('keeps an idle channel replayable until it is evicted', () => {
      const { engine, send } = harness({ maxIdleChannels: 2 });
      const sub = new Collector();
      engine.subscribe('a', sub, { kind: 'now' });
      send(0, 0, 'a');
      engine.unsubscribe('a', sub);
      expect(engine.channelCounts).toEqual({ active: 0, idle: 1 });
      send(0, 1, 'a');
      send(0, 2, 'b');
      const recovery = engine.subscribe('a', new Collector(), engine.resumePoint('test.0'));
      expect(recovery.reset).toBeUndefined();
      expect(ids(recovery.backlog)).toEqual(['0-1']);
      expect(engine.channelCounts).toEqual({ active: 1, idle: 1 });
    });
  });

  describe('#startCursor', () => {
    it('is the frontier when there is no backlog', () => {
      const { engine, send } = harness({ partitions: 2 });
      send(0, 3, 'a');
      engine.dispatchRecord(1, 8, []);
      const from = engine.resumePoint(undefined);
      const recovery = engine.subscribe('a', new Collector(), from);
      expect(engine.startCursor(from, recovery.backlog).toString()).toBe('test.3_8');
    });

    it('is just before the first backlog message', () => {
      const { engine, send } = harness({ partitions: 2 });
      send(0, 0, 'a');
      send(1, 0, 'b');
      send(0, 1, 'b');
      send(1, 1, 'a');
      send(0, 2, 'a');
      const from = engine.resumePoint('test.0_');
      const recovery = engine.subscribe('a', new Collector(), from);
      expect(ids(recovery.backlog)).toEqual(['1-1', '0-2']);
      const start = engine.startCursor(from, recovery.backlog);
      expect(start.toString()).toBe('test.1_0');
      // Resuming from the start cursor gives the same backlog: nothing skipped, nothing repeated.
      expect(ids(engine.recover('a', engine.resumePoint(start.toString())).backlog)).toEqual(['1-1', '0-2']);
    });

    it('is just before a split item when the backlog starts inside a record', () => {
      const { engine } = harness();
      engine.dispatchRecord(0, 4, ['b', 'a', 'a'].map((channel, item) => ({ channel, item, payload: payloadFromValue(item), ts: 0 })));
      const from = engine.resumePoint('test.3');
      const recovery = engine.subscribe('a', new Collector(), from);
      expect(ids(recovery.backlog)).toEqual(['0-4-1', '0-4-2']);
      expect(engine.startCursor(from, recovery.backlog).toString()).toBe('test.4~0');
    });

    it('is never behind the client\'s cursor', () => {
      const { engine, send } = harness({ partitions: 3 });
      send(0, 0, 'a');
      send(1, 2, 'a');
      const ahead = engine.resumePoint('test.0_9_');
      const recovery = engine.subscribe('a', new Collector(), ahead);
      expect(recovery.backlog).toEqual([]);
      const start = engine.startCursor(ahead, recovery.backlog);
      expect(start.covers(cursorOf('test.0_9_', 3))).toBe(true);
      expect(start.covers(engine.frontier())).toBe(true);
      expect(start.toString()).toBe('test.0_9_');
    });
  });

  describe('mergeBacklogs', () => {
    it('orders several channels\' backlogs by dispatch order', () => {
      const { engine, send } = harness({ partitions: 2 });
      send(0, 0, 'a');
      send(1, 0, 'b');
      send(1, 1, 'a');
      send(0, 1, 'c');
      send(0, 2, 'b');
      const from = engine.resumePoint('test._');
      const recoveries = ['a', 'b', 'c'].map((channel) => engine.recover(channel, from));
      expect(ids(mergeBacklogs(recoveries))).toEqual(['0-0', '1-0', '1-1', '0-1', '0-2']);
    });

    it('returns a single backlog as is', () => {
      const { engine, send } = harness();
      send(0, 0, 'a');
      const recovery = engine.recover('a', engine.resumePoint('test.'));
      expect(mergeBacklogs([recovery, { backlog: [] }])).toBe(recovery.backlog);
      expect(mergeBacklogs([])).toEqual([]);
    });
  });

  describe('#history and #recover', () => {
    it('history gives the newest messages; recover does not subscribe', () => {
      const { engine, send } = harness();
      for (let o = 0; o < 4; o++) send(0, o, 'a');
      expect(ids(engine.history('a', 2))).toEqual(['0-2', '0-3']);
      expect(engine.history('nope', 2)).toEqual([]);
      engine.recover('a', { kind: 'now' });
      expect(engine.channelCounts.active).toBe(0);
    });
  });

  describe('traffic counters', () => {
    it('observes the delivery latency once per message that reached subscribers, from its log timestamp', () => {
      const { engine, clock, send } = harness();
      for (let i = 0; i < 3; i++) engine.subscribe('a', new Collector(), { kind: 'now' });
      engine.subscribe('a/+', new Collector(), { kind: 'now' });
      engine.subscribe('a/b', new Collector(), { kind: 'now' });
      clock.now = 5000;
      send(0, 0, 'a'); // ts 1000: three subscribers, one observation of 4 s
      send(0, 1, 'a/b'); // ts 1001: its own subscriber and the pattern's, one observation
      send(0, 2, 'nobody'); // no subscriber: not delivered, not observed
      const latency = engine.deliveryLatency;
      expect(engine.stats.deliveries).toBe(5);
      expect(latency.count).toBe(2);
      expect(latency.sum).toBeCloseTo(4 + 3.999, 6);
      // Both fall in the bucket up to 5 s.
      expect(latency.counts[latency.bounds.indexOf(5)]).toBe(2);
    });

    it('counts a timestamp ahead of this node\'s clock as no latency', () => {
      const { engine, send } = harness();
      engine.subscribe('a', new Collector(), { kind: 'now' });
      send(0, 0, 'a'); // ts 1000, clock 0
      expect([engine.deliveryLatency.count, engine.deliveryLatency.sum, engine.deliveryLatency.counts[0]]).toEqual([1, 0, 1]);
    });

    it('names the busiest channels since the previous sample, with their own subscribers', () => {
      const { engine, send } = harness();
      engine.subscribe('a', new Collector(), { kind: 'now' });
      let offset = 0;
      for (let i = 0; i < 3; i++) send(0, offset++, 'a');
      for (let i = 0; i < 5; i++) send(0, offset++, 'b');
      send(0, offset++, 'c');
      expect(engine.busiestChannels(2)).toEqual([
        { channel: 'b', messages: 5, subscribers: 0 },
        { channel: 'a', messages: 3, subscribers: 1 },
      ]);
      send(0, offset++, 'c');
      expect(engine.busiestChannels(2)).toEqual([{ channel: 'c', messages: 1, subscribers: 0 }]);
      expect(engine.busiestChannels(2)).toEqual([]);
    });

    it('counts the bytes a delta saves once per message and codec, however many subscribers are sent it', () => {
      const { engine, send } = harness();
      const collector = new Collector();
      engine.subscribe('a', collector, { kind: 'now' });
      send(0, 0, 'a', { price: 100, name: 'x'.repeat(100) });
      send(0, 1, 'a', { price: 101, name: 'x'.repeat(100) });
      const second = collector.received[1] as PreparedMessage;
      const fields = second.deltaFields(JSON_PATCH) as string;
      second.deltaFields(JSON_PATCH); // a second subscriber: the delta is shared, not computed again
      expect(engine.stats.deltaSavedBytes).toEqual({ 'json-patch': Buffer.byteLength(second.envelopeFields) - Buffer.byteLength(fields), vcdiff: 0 });
      expect(engine.stats.deltaSavedBytes['json-patch']).toBeGreaterThan(0);
      // The first message has no base: nothing computed, nothing saved.
      expect((collector.received[0] as PreparedMessage).deltaFields(JSON_PATCH)).toBeUndefined();
      expect(engine.stats.deltaSavedBytes['json-patch']).toBe(Buffer.byteLength(second.envelopeFields) - Buffer.byteLength(fields));
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Property: resume is exact. A subscriber that disconnects and resumes from its last cursor
// receives every message of its channels exactly once, in dispatch order.
// ---------------------------------------------------------------------------------------------

const CHANNELS = ['a', 'b', 'c'] as const;
const NOISE = ['x', 'y', 'z'] as const;

type Command =
  | { kind: 'record'; partition: number; channels: string[] } // [] routes to nothing; >1 is a split record
  | { kind: 'redeliver'; partition: number; back: number }
  | { kind: 'disconnect' }
  | { kind: 'reconnect' }
  | { kind: 'tick'; ms: number };

const channelArb = fc.constantFrom<string>(...CHANNELS, ...NOISE);
const commandArb: fc.Arbitrary<Command> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('record' as const), partition: fc.nat(2), channels: fc.array(channelArb, { minLength: 0, maxLength: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('redeliver' as const), partition: fc.nat(2), back: fc.nat(3) }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'disconnect' as const }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'reconnect' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('tick' as const), ms: fc.nat(150) }) },
);

interface Dispatched {
  readonly id: string;
  readonly channel: string;
  readonly partition: number;
  readonly offset: number;
  readonly item: number;
}

interface Run {
  /** Every message dispatched on the subscriber's channels after it first subscribed. */
  expected: Dispatched[];
  received: PreparedMessage[];
  /** Per reconnect and channel: the recovery, and what the cursor had missed on that channel. */
  resumes: { channel: string; cursor: string; recovery: Recovery; missed: Dispatched[] }[];
  /** A subscriber got a message after its connection ended. */
  ghostDeliveries: number;
}

function simulate(options: Partial<EngineOptions>, subscribed: readonly string[], prefix: Command[], commands: Command[]): Run {
  const { engine, clock } = harness({ partitions: 3, ...options });
  const nextOffset = [0, 0, 0];
  const all: Dispatched[] = [];
  const run: Run = { expected: [], received: [], resumes: [], ghostDeliveries: 0 };
  let started = false;
  let connection: { open: boolean; subscriber: Subscriber } | null = null;
  let cursor = '';

  const receive = (message: PreparedMessage): void => {
    run.received.push(message);
    cursor = message.cursor;
  };

  const connect = (text: string | undefined): void => {
    const state = { open: true, subscriber: null as unknown as Subscriber };
    state.subscriber = { deliver: (m) => (state.open ? receive(m) : run.ghostDeliveries++) };
    const from = engine.resumePoint(text);
    const recoveries = subscribed.map((channel) => engine.subscribe(channel, state.subscriber, from));
    if (text !== undefined) {
      const parsed = cursorOf(text, 3);
      subscribed.forEach((channel, k) => {
        const missed = all.filter((m) => m.channel === channel && !parsed.includes(m.partition, m.offset, m.item));
        run.resumes.push({ channel, cursor: text, recovery: recoveries[k] as Recovery, missed });
      });
    }
    const backlog = mergeBacklogs(recoveries);
    cursor = engine.startCursor(from, backlog).toString();
    for (const message of backlog) receive(message);
    connection = state;
  };

  const execute = (command: Command): void => {
    switch (command.kind) {
      case 'record': {
        const offset = nextOffset[command.partition] as number;
        nextOffset[command.partition] = offset + 1;
        const split = command.channels.length > 1;
        const routed: RoutedMessage[] = command.channels.map((channel, item) => ({
          channel, payload: payloadFromValue(item), ts: 0, ...(split ? { item } : {}),
        }));
        engine.dispatchRecord(command.partition, offset, routed);
        command.channels.forEach((channel, item) => {
          const message = { id: split ? `${command.partition}-${offset}-${item}` : `${command.partition}-${offset}`, channel, partition: command.partition, offset, item };
          all.push(message);
          if (started && subscribed.includes(channel)) run.expected.push(message);
        });
        break;
      }
      case 'redeliver': {
        const offset = (nextOffset[command.partition] as number) - 1 - command.back;
        if (offset >= 0) engine.dispatchRecord(command.partition, offset, [{ channel: subscribed[0] as string, payload: payloadFromValue('dup'), ts: 0 }]);
        break;
      }
      case 'disconnect':
        if (connection) {
          connection.open = false;
          for (const channel of subscribed) engine.unsubscribe(channel, connection.subscriber);
          connection = null;
        }
        break;
      case 'reconnect':
        if (started && !connection) connect(cursor);
        break;
      case 'tick':
        clock.now += command.ms;
        break;
    }
  };

  for (const command of prefix) execute(command);
  started = true;
  connect(undefined);
  for (const command of commands) execute(command);
  execute({ kind: 'reconnect' }); // the subscriber comes back at the end to collect what it missed
  return run;
}

const subscribedArb = fc.subarray([...CHANNELS], { minLength: 1 });
const commandsArb = fc.array(commandArb, { maxLength: 120, size: 'medium' });

describe('resume (property)', () => {
  it('with rings large enough, a resuming subscriber gets every message of its channels exactly once, in order', () => {
    fc.assert(
      fc.property(subscribedArb, commandsArb, commandsArb, (subscribed, prefix, commands) => {
        const run = simulate(
          { ring: { maxCount: 1_000, maxBytes: 1e9, maxAgeMs: 1e9 }, maxIdleChannels: 100 },
          subscribed, prefix, commands,
        );
        expect(run.ghostDeliveries).toBe(0);
        expect(ids(run.received)).toEqual(run.expected.map((m) => m.id));
        for (const resume of run.resumes) expect(resume.recovery.reset).toBeUndefined();
      }),
      { numRuns: 300 },
    );
  });

  it('with small rings and few idle channels, every loss comes with a reset notice naming it', () => {
    fc.assert(
      fc.property(
        subscribedArb, commandsArb, commandsArb,
        fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 }),
        (subscribed, prefix, commands, maxCount, maxIdleChannels) => {
          const run = simulate(
            { ring: { maxCount, maxBytes: 1e9, maxAgeMs: 100 }, maxIdleChannels, maxIdleBytes: 1e9 },
            subscribed, prefix, commands,
          );
          expect(run.ghostDeliveries).toBe(0);
          // No duplicates, dispatch order: what was received is a subsequence of what was expected.
          const receivedIds = ids(run.received);
          expect(new Set(receivedIds).size).toBe(receivedIds.length);
          const position = new Map(run.expected.map((m, k) => [m.id, k]));
          const order = receivedIds.map((id) => position.get(id));
          expect(order.every((k) => k !== undefined)).toBe(true);
          expect(order).toEqual([...(order as number[])].sort((x, y) => x - y));

          const excused = new Set<string>();
          for (const { channel, cursor, recovery, missed } of run.resumes) {
            const backlog = ids(recovery.backlog);
            if (recovery.reset === undefined) {
              // Rule 2: no notice means the backlog is exactly what the cursor missed.
              expect(backlog).toEqual(missed.map((m) => m.id));
              continue;
            }
            expect(recovery.reset).toMatchObject({ reason: 'cursor_expired', channel, from: cursor });
            const to = cursorOf(recovery.reset.to as string, 3);
            // Rule 4: what may be missing lies up to `to`; everything after it is in the backlog.
            for (const m of missed) {
              if (!backlog.includes(m.id)) {
                expect(to.includes(m.partition, m.offset, m.item)).toBe(true);
                excused.add(m.id);
              }
            }
            expect(backlog).toEqual(missed.filter((m) => backlog.includes(m.id)).map((m) => m.id));
          }
          const received = new Set(receivedIds);
          const silentlyLost = run.expected.filter((m) => !received.has(m.id) && !excused.has(m.id));
          expect(silentlyLost).toEqual([]);
        },
      ),
      { numRuns: 300 },
    );
  });
});
