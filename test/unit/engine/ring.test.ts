import { describe, expect, it } from 'vitest';
import { Frontier, MutableFrontier, WHOLE_RECORD } from '../../../src/log/position.js';
import { PreparedMessage } from '../../../src/engine/prepared-message.js';
import { Ring, type RingLimits } from '../../../src/engine/ring.js';
import { payloadFromValue } from '../../../src/protocol/envelope.js';
import { seededRandom } from '../../../src/demo/seeded-random.js';

const BIG: RingLimits = { maxCount: 1_000, maxBytes: 1e9, maxAgeMs: 1e9 };

/** Builds messages as the engine would: each carries the frontier right after it. */
function messageFactory(partitions = 1) {
  const frontier = new MutableFrontier('test', Frontier.empty('test', partitions));
  let seq = 0;
  return (partition: number, offset: number, opts: { receivedAt?: number; data?: unknown } = {}): PreparedMessage => {
    frontier.advance(partition, offset, WHOLE_RECORD);
    seq++;
    return new PreparedMessage('c', partition, offset, 0, `${partition}-${offset}`, 0, payloadFromValue(opts.data ?? seq), frontier.snapshot(), seq, opts.receivedAt ?? 0);
  };
}

function ringOf(limits: Partial<RingLimits> = {}) {
  const evicted: string[] = [];
  const ring = new Ring({ ...BIG, ...limits }, (m) => evicted.push(m.id));
  return { ring, evicted };
}

const ids = (messages: readonly PreparedMessage[]): string[] => messages.map((m) => m.id);

describe('Ring', () => {
  describe('#push', () => {
    it('keeps at most maxCount messages, dropping the oldest', () => {
      const make = messageFactory();
      const { ring, evicted } = ringOf({ maxCount: 3 });
      for (let o = 0; o < 5; o++) ring.push(make(0, o), 0);
      expect(ring.count).toBe(3);
      expect(ids(ring.latest(10))).toEqual(['0-2', '0-3', '0-4']);
      expect(evicted).toEqual(['0-0', '0-1']);
    });

    it('keeps exactly one message when maxCount is 1', () => {
      const make = messageFactory();
      const { ring, evicted } = ringOf({ maxCount: 1 });
      for (let o = 0; o < 3; o++) ring.push(make(0, o), 0);
      expect(ids(ring.latest(10))).toEqual(['0-2']);
      expect(evicted).toEqual(['0-0', '0-1']);
    });

    it('grows beyond its initial slots up to maxCount, keeping order', () => {
      const make = messageFactory();
      const { ring, evicted } = ringOf({ maxCount: 37 });
      for (let o = 0; o < 37; o++) ring.push(make(0, o), 0);
      expect(ring.count).toBe(37);
      expect(evicted).toEqual([]);
      expect(ids(ring.latest(37))).toEqual(Array.from({ length: 37 }, (_, o) => `0-${o}`));
      ring.push(make(0, 37), 0);
      expect(ring.count).toBe(37);
      expect(evicted).toEqual(['0-0']);
      expect(ring.latest(1)[0]?.id).toBe('0-37');
    });

    it('keeps its bytes within maxBytes, tracking the total', () => {
      const make = messageFactory();
      const messages = [0, 1, 2, 3].map((o) => make(0, o, { data: 'x'.repeat(100) }));
      const size = (messages[0] as PreparedMessage).size;
      const { ring, evicted } = ringOf({ maxBytes: size * 2 + 10 });
      for (const m of messages) ring.push(m, 0);
      expect(ring.count).toBe(2);
      expect(ring.bytes).toBe(size * 2);
      expect(ids(ring.latest(10))).toEqual(['0-2', '0-3']);
      expect(evicted).toEqual(['0-0', '0-1']);
    });

    it('keeps the newest message even when it alone is over the byte limit', () => {
      const make = messageFactory();
      const { ring, evicted } = ringOf({ maxBytes: 100 });
      ring.push(make(0, 0, { data: 'small' }), 0);
      ring.push(make(0, 1, { data: 'x'.repeat(500) }), 0);
      expect(ids(ring.latest(10))).toEqual(['0-1']);
      expect(evicted).toEqual(['0-0']);
      expect(ring.newest?.id).toBe('0-1');
    });

    it('drops messages older than maxAgeMs when touched', () => {
      const make = messageFactory();
      const { ring, evicted } = ringOf({ maxAgeMs: 15 });
      ring.push(make(0, 0, { receivedAt: 0 }), 0);
      ring.push(make(0, 1, { receivedAt: 10 }), 10);
      ring.push(make(0, 2, { receivedAt: 20 }), 20);
      expect(ids(ring.latest(10))).toEqual(['0-1', '0-2']);
      ring.expire(25); // 0-1 is exactly maxAgeMs old: kept
      expect(ids(ring.latest(10))).toEqual(['0-1', '0-2']);
      ring.expire(26);
      expect(ids(ring.latest(10))).toEqual(['0-2']);
      ring.expire(1_000);
      expect(ring.count).toBe(0);
      expect(ring.bytes).toBe(0);
      expect(ring.newest).toBeUndefined();
      expect(evicted).toEqual(['0-0', '0-1', '0-2']);
    });

    it('tells onEvict of every evicted message, oldest first, exactly once', () => {
      const make = messageFactory();
      const { ring, evicted } = ringOf({ maxCount: 4 });
      const pushed: string[] = [];
      for (let o = 0; o < 50; o++) {
        const m = make(0, o);
        pushed.push(m.id);
        ring.push(m, 0);
      }
      expect([...evicted, ...ids(ring.latest(4))]).toEqual(pushed);
    });
  });

  describe('#since', () => {
    it('returns what a multi-partition cursor has not seen, oldest first', () => {
      const make = messageFactory(3);
      const { ring } = ringOf();
      const order: [number, number][] = [[0, 0], [1, 0], [2, 0], [0, 1], [1, 1], [2, 1], [0, 2]];
      const messages = order.map(([p, o]) => make(p, o));
      for (const m of messages) ring.push(m, 0);
      // The cursor of the 4th message has seen everything up to it.
      expect(ids(ring.since((messages[3] as PreparedMessage).frontier))).toEqual(['1-1', '2-1', '0-2']);
      // A cursor from elsewhere: far ahead on partition 1, nothing on partition 2.
      const mixed = Frontier.of('test', [0, 9, -1], [WHOLE_RECORD, WHOLE_RECORD, WHOLE_RECORD]);
      expect(ids(ring.since(mixed))).toEqual(['2-0', '0-1', '2-1', '0-2']);
      expect(ids(ring.since(Frontier.empty('test', 3)))).toEqual(ids(messages));
      expect(ring.since((messages[6] as PreparedMessage).frontier)).toEqual([]);
    });

    it('agrees with a check of every message for random cursors, on one partition and after others join and leave (seeded)', () => {
      const seed = 20261203;
      const random = seededRandom(seed);
      const partitions = 3;
      const make = messageFactory(partitions);
      const { ring } = ringOf({ maxCount: 40, maxAgeMs: 1_000 });
      const offsets = [0, 0, 0];
      let now = 0;
      for (let step = 0; step < 3_000; step++) {
        // Long stretches on partition 0 alone, others joining at times; now and then a quiet spell
        // ages everything out, and the ring starts again from empty.
        if (random() < 0.01) now += 2_000;
        const partition = step % 600 < 300 ? 0 : Math.floor(random() * partitions);
        const offset = offsets[partition] as number;
        offsets[partition] = offset + 1;
        ring.push(make(partition, offset, { receivedAt: now }), now);
        const held = ring.latest(ring.count);
        const cursor = Frontier.of(
          'test',
          offsets.map((next) => Math.floor(random() * (next + 2)) - 1),
          offsets.map(() => (random() < 0.5 ? WHOLE_RECORD : 0)),
        );
        expect(ids(ring.since(cursor)), `seed ${seed}, step ${step}`).toEqual(ids(held.filter((message) => !message.isCoveredBy(cursor))));
      }
    });
  });

  describe('#latest', () => {
    it('returns the newest messages, oldest first', () => {
      const make = messageFactory();
      const { ring } = ringOf({ maxCount: 5 });
      expect(ring.latest(3)).toEqual([]);
      for (let o = 0; o < 8; o++) ring.push(make(0, o), 0);
      expect(ids(ring.latest(2))).toEqual(['0-6', '0-7']);
      expect(ids(ring.latest(100))).toEqual(['0-3', '0-4', '0-5', '0-6', '0-7']);
      expect(ring.latest(0)).toEqual([]);
    });
  });
});
