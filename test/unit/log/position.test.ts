import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Frontier, MAX_CURSOR_LENGTH, MutableFrontier, WHOLE_RECORD, messageId, parseCursor } from '../../../src/log/position.js';

const W = WHOLE_RECORD;

describe('Frontier', () => {
  describe('#includes', () => {
    const f = Frontier.of('test', [5, 3, -1], [W, 2, W]);

    it('includes earlier offsets and the whole last record', () => {
      expect(f.includes(0, 0, 0)).toBe(true);
      expect(f.includes(0, 5, 0)).toBe(true);
      expect(f.includes(0, 5, 1_000)).toBe(true);
      expect(f.includes(0, 6, 0)).toBe(false);
    });

    it('includes a split record only up to its item', () => {
      expect(f.includes(1, 2, 99)).toBe(true);
      expect(f.includes(1, 3, 2)).toBe(true);
      expect(f.includes(1, 3, 3)).toBe(false);
    });

    it('includes nothing on a partition where nothing was seen, nor on an unknown partition', () => {
      expect(f.includes(2, 0, 0)).toBe(false);
      expect(f.includes(3, 0, 0)).toBe(false);
    });
  });

  describe('#covers', () => {
    it('is true when at or past the other frontier on every partition', () => {
      const a = Frontier.of('test', [5, 3], [W, 2]);
      expect(a.covers(a)).toBe(true);
      expect(a.covers(Frontier.of('test', [4, 3], [W, 1]))).toBe(true);
      expect(a.covers(Frontier.empty('test', 2))).toBe(true);
      expect(a.covers(Frontier.of('test', [5, 3], [W, W]))).toBe(false);
      expect(a.covers(Frontier.of('test', [6, 0], [W, W]))).toBe(false);
    });

    it('an empty frontier covers only empty frontiers', () => {
      const empty = Frontier.empty('test', 3);
      expect(empty.covers(Frontier.empty('test', 3))).toBe(true);
      expect(empty.covers(Frontier.of('test', [-1, 0, -1], [W, W, W]))).toBe(false);
    });
  });

  describe('#max', () => {
    it('takes the later position on each partition', () => {
      const a = Frontier.of('test', [5, 1, -1], [W, W, W]);
      const b = Frontier.of('test', [2, 4, 7], [W, 0, W]);
      const m = a.max(b);
      expect(m.offsets).toEqual([5, 4, 7]);
      expect(m.items).toEqual([W, 0, W]);
      expect(m.covers(a) && m.covers(b)).toBe(true);
      expect(b.max(a).toString()).toBe(m.toString());
    });

    it('prefers the further item within the same record', () => {
      const a = Frontier.of('test', [3], [1]);
      const b = Frontier.of('test', [3], [W]);
      expect(a.max(b).toString()).toBe('test.3');
      expect(b.max(a).toString()).toBe('test.3');
    });

    it('returns the covering frontier itself', () => {
      const a = Frontier.of('test', [5, 5], [W, W]);
      const b = Frontier.of('test', [1, 2], [W, W]);
      expect(a.max(b)).toBe(a);
      expect(b.max(a)).toBe(a);
    });
  });

  describe('#withPosition', () => {
    it('replaces one partition and leaves the original untouched', () => {
      const a = Frontier.of('test', [5, 3], [W, W]);
      const b = a.withPosition(1, 9, 2);
      expect(b.offsets).toEqual([5, 9]);
      expect(b.items).toEqual([W, 2]);
      expect(a.toString()).toBe('test.5_3');
    });
  });

  describe('#toString', () => {
    it('writes base-36 offsets, ~item for split records and empty parts for nothing seen', () => {
      expect(Frontier.empty('test', 1).toString()).toBe('test.');
      expect(Frontier.empty('test', 3).toString()).toBe('test.__');
      expect(Frontier.of('test', [35, -1, 36], [W, W, 10]).toString()).toBe('test.z__10~a');
    });

    it('is URL-safe', () => {
      const text = Frontier.of('e0', [2 ** 40, 7, -1], [W, 123456, W]).toString();
      expect(encodeURIComponent(text)).toBe(text);
    });
  });
});

describe('parseCursor', () => {
  const frontierArb = fc.integer({ min: 1, max: 8 }).chain((partitions) =>
    fc.tuple(
      fc.constant(partitions),
      fc.array(
        fc.oneof(
          fc.constant<[number, number]>([-1, W]),
          fc.tuple(fc.integer({ min: 0, max: 2 ** 40 }), fc.constant(W)),
          fc.tuple(fc.integer({ min: 0, max: 2 ** 40 }), fc.integer({ min: 0, max: 36 ** 6 - 1 })),
        ),
        { minLength: partitions, maxLength: partitions },
      ),
    ),
  );

  it('round-trips every frontier through toString', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[0-9a-z]{1,40}$/), frontierArb, (epoch, [partitions, positions]) => {
        const frontier = Frontier.of(epoch, positions.map((p) => p[0]), positions.map((p) => p[1]));
        const parsed = parseCursor(frontier.toString(), epoch, partitions);
        expect(parsed.ok).toBe(true);
        if (!parsed.ok) return;
        expect(parsed.frontier.epoch).toBe(epoch);
        expect(parsed.frontier.offsets).toEqual(frontier.offsets);
        expect(parsed.frontier.items).toEqual(frontier.items);
        expect(parsed.frontier.toString()).toBe(frontier.toString());
      }),
    );
  });

  it('answers a cursor of another epoch with unknown_epoch', () => {
    const parsed = parseCursor('other.5', 'test', 1);
    expect(parsed).toMatchObject({ ok: false, reason: 'unknown_epoch' });
  });

  it.each([
    ['no dot', 'test5'],
    ['empty epoch', '.5'],
    ['uppercase epoch', 'TEST.5'],
    ['uppercase offset', 'test.A'],
    ['negative offset', 'test.-1'],
    ['item without offset', 'test.~1'],
    ['two items', 'test.1~2~3'],
    ['offset too long', 'test.' + '1'.repeat(12)],
    ['item too long', 'test.1~' + '1'.repeat(7)],
    ['stray characters', 'test.1 '],
  ])('rejects bad syntax (%s) as bad_cursor', (_what, text) => {
    expect(parseCursor(text, 'test', 2)).toMatchObject({ ok: false, reason: 'bad_cursor' });
  });

  it('rejects a cursor naming more partitions than the log has', () => {
    expect(parseCursor('test.1_2_3', 'test', 2)).toMatchObject({ ok: false, reason: 'bad_cursor' });
    expect(parseCursor('test.1_2', 'test', 2).ok).toBe(true);
  });

  it('rejects a cursor longer than the limit before reading it', () => {
    const long = 'test.' + '_'.repeat(MAX_CURSOR_LENGTH);
    expect(parseCursor(long, 'test', MAX_CURSOR_LENGTH * 2)).toMatchObject({ ok: false, reason: 'bad_cursor' });
  });

  it('reads partitions missing from the cursor as nothing seen', () => {
    const parsed = parseCursor('test.5~2', 'test', 3);
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(parsed.frontier.offsets).toEqual([5, -1, -1]);
    expect(parsed.frontier.items).toEqual([2, W, W]);
    expect(parsed.frontier.includes(1, 0, 0)).toBe(false);
  });
});

describe('MutableFrontier', () => {
  describe('#snapshot', () => {
    it('returns the same object until the frontier advances', () => {
      const mutable = new MutableFrontier('test', Frontier.empty('test', 2));
      const first = mutable.snapshot();
      expect(mutable.snapshot()).toBe(first);
      mutable.advance(1, 4, W);
      const second = mutable.snapshot();
      expect(second).not.toBe(first);
      expect(mutable.snapshot()).toBe(second);
      expect(first.toString()).toBe('test._');
      expect(second.toString()).toBe('test._4');
    });

    it('starts from the given frontier without sharing its arrays', () => {
      const start = Frontier.of('test', [3], [W]);
      const mutable = new MutableFrontier('test', start);
      mutable.advance(0, 9, 1);
      expect(start.toString()).toBe('test.3');
      expect(mutable.snapshot().toString()).toBe('test.9~1');
    });
  });
});

describe('messageId', () => {
  it('is partition-offset, plus the item for split records', () => {
    expect(messageId(0, 12, undefined)).toBe('0-12');
    expect(messageId(2, 7, 0)).toBe('2-7-0');
    expect(messageId(1, 7, 3)).toBe('1-7-3');
  });
});
