import { execFileSync } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { decode } from '@ably/vcdiff-decoder';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { buildDefaultCodeTable, encodeVcdiff } from '../../../src/delta/vcdiff-encoder.js';

const utf8 = new TextEncoder();
const bytes = (s: string): Uint8Array => utf8.encode(s);

function findXdelta3(): string | null {
  const dirs = ['/usr/bin', ...(process.env['PATH'] ?? '').split(delimiter).filter(Boolean)];
  for (const dir of dirs) {
    const candidate = join(dir, 'xdelta3');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return null;
}

const xdelta3 = findXdelta3();
const hasXdelta3 = xdelta3 !== null;

// Deterministic bytes so a failure reproduces without fast-check's seed.
function pseudoRandom(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Encodes, decodes with the ably decoder and requires a byte-exact round trip. */
function roundTrip(source: Uint8Array, target: Uint8Array): Uint8Array {
  const delta = encodeVcdiff(source, target);
  const decoded = decode(delta, source);
  expect(decoded.length).toBe(target.length);
  expect(Buffer.from(decoded).equals(Buffer.from(target))).toBe(true);
  return delta;
}

function marketJson(overrides: Record<string, number | string> = {}): string {
  const quote: Record<string, number | string | boolean> = {
    type: 'quote',
    instrument: 'EURUSD',
    venue: 'LMAX',
    halted: false,
    sequence: 4_210_998,
    timestamp: '2024-11-21T20:54:03.120Z',
  };
  for (let i = 0; i < 40; i++) {
    quote[`level${i}Bid`] = Math.round((1.0832 - i * 0.0001) * 1e5) / 1e5;
    quote[`level${i}Ask`] = Math.round((1.0833 + i * 0.0001) * 1e5) / 1e5;
    quote[`level${i}Size`] = 1_000_000 + ((i * 7919) % 50) * 250_000;
  }
  return JSON.stringify({ ...quote, ...overrides });
}

const fixedCases: Array<[string, Uint8Array, Uint8Array]> = [
  ['both empty', new Uint8Array(0), new Uint8Array(0)],
  ['empty source', new Uint8Array(0), bytes('{"hello":"world","hello2":"world","hello3":"world"}')],
  ['empty target', bytes('{"hello":"world"}'), new Uint8Array(0)],
  ['source shorter than a block', bytes('ab'), bytes('abababab')],
  ['identical', bytes(marketJson()), bytes(marketJson())],
  ['fully different', pseudoRandom(3000, 1), pseudoRandom(2500, 2)],
  ['one byte changed', bytes(marketJson()), bytes(marketJson()).map((b, i) => (i === 700 ? b ^ 1 : b))],
  ['field inserted into JSON', bytes(marketJson()), bytes(marketJson({ newField: 'inserted value' }))],
  ['field deleted from JSON', bytes(marketJson({ extra: 'to be deleted' })), bytes(marketJson())],
  ['JSON value changed length', bytes(marketJson()), bytes(marketJson({ level7Bid: 1.1, level30Ask: 123456.789 }))],
  ['long run', bytes('abc'), concat(bytes('x'), new Uint8Array(5000).fill(7), bytes('tail'))],
  ['runs next to copies', bytes('prefix----suffix'), bytes('prefix' + '-'.repeat(300) + 'suffix' + ' '.repeat(9))],
  ['target repeats itself', new Uint8Array(0), concat(...Array.from({ length: 20 }, () => pseudoRandom(97, 5)))],
  ['binary random with edits', pseudoRandom(20_000, 9), concat(pseudoRandom(20_000, 9).subarray(0, 7000), pseudoRandom(33, 4), pseudoRandom(20_000, 9).subarray(7100))],
];

describe('encodeVcdiff', () => {
  it('builds the RFC 3284 default code table', () => {
    const t = buildDefaultCodeTable();
    const entry = (i: number) => [t.inst1[i], t.size1[i], t.mode1[i], t.inst2[i], t.size2[i], t.mode2[i]];
    // [inst1, size1, mode1, inst2, size2, mode2] with NOOP=0 ADD=1 RUN=2 COPY=3, spot-checked against RFC 3284 5.6.
    expect(entry(0)).toEqual([2, 0, 0, 0, 0, 0]);
    expect(entry(1)).toEqual([1, 0, 0, 0, 0, 0]);
    expect(entry(18)).toEqual([1, 17, 0, 0, 0, 0]);
    expect(entry(19)).toEqual([3, 0, 0, 0, 0, 0]);
    expect(entry(20)).toEqual([3, 4, 0, 0, 0, 0]);
    expect(entry(34)).toEqual([3, 18, 0, 0, 0, 0]);
    expect(entry(35)).toEqual([3, 0, 1, 0, 0, 0]);
    expect(entry(162)).toEqual([3, 18, 8, 0, 0, 0]);
    expect(entry(163)).toEqual([1, 1, 0, 3, 4, 0]);
    expect(entry(166)).toEqual([1, 2, 0, 3, 4, 0]);
    expect(entry(174)).toEqual([1, 4, 0, 3, 6, 0]);
    expect(entry(234)).toEqual([1, 4, 0, 3, 6, 5]);
    expect(entry(235)).toEqual([1, 1, 0, 3, 4, 6]);
    expect(entry(246)).toEqual([1, 4, 0, 3, 4, 8]);
    expect(entry(247)).toEqual([3, 4, 0, 1, 1, 0]);
    expect(entry(255)).toEqual([3, 4, 8, 1, 1, 0]);
  });

  it('writes the VCDIFF header with no secondary compressor or custom code table', () => {
    const withSource = encodeVcdiff(bytes('source'), bytes('target'));
    expect([...withSource.subarray(0, 5)]).toEqual([0xd6, 0xc3, 0xc4, 0x00, 0x00]);
    expect(withSource[5]).toBe(0x01); // VCD_SOURCE
    const noSource = encodeVcdiff(new Uint8Array(0), bytes('target'));
    expect(noSource[5]).toBe(0x00);
  });

  for (const [name, source, target] of fixedCases) {
    it(`round-trips through @ably/vcdiff-decoder: ${name}`, () => {
      roundTrip(source, target);
    });
  }

  it('round-trips a ~2 MB target split across several windows', () => {
    const source = pseudoRandom(2_000_000, 77);
    const target = concat(source.subarray(0, 900_000), bytes('inserted in the middle'), source.subarray(900_050), pseudoRandom(150_000, 78));
    const delta = roundTrip(source, target);
    expect(delta.length).toBeLessThan(160_000);
  });

  it('never lets a copy reach back across a window boundary', () => {
    // The byte before window 2 equals the byte before a later repeat inside window 2,
    // tempting backward match extension into the previous window.
    const block = pseudoRandom(64, 21);
    const target = concat(pseudoRandom((1 << 20) - 1, 22), bytes('Q'), block, bytes('Q'), block);
    roundTrip(new Uint8Array(0), target);
    roundTrip(bytes('Q'), target);
    const small = concat(pseudoRandom(99, 23), bytes('Q'), block, bytes('Q'), block);
    const delta = encodeVcdiff(new Uint8Array(0), small, 100);
    expect(Buffer.from(decode(delta, new Uint8Array(0))).equals(Buffer.from(small))).toBe(true);
  });

  it('rejects a window size that would never advance', () => {
    expect(() => encodeVcdiff(bytes('a'), bytes('b'), 0)).toThrow(RangeError);
    expect(() => encodeVcdiff(bytes('a'), bytes('b'), 1.5)).toThrow(RangeError);
  });

  it('keeps the delta of a realistic JSON message with one changed field far below the message size', () => {
    const before = bytes(marketJson());
    const after = bytes(marketJson({ level12Bid: 1.07991 }));
    expect(before.length).toBeGreaterThan(2000);
    const delta = roundTrip(before, after);
    expect(delta.length).toBeLessThan(after.length * 0.2);
    expect(delta.length).toBeLessThan(64);
  });

  it('does not depend on state left over from a previous call', () => {
    const big = pseudoRandom(300_000, 3);
    roundTrip(big, big.subarray(1000));
    const source = bytes(marketJson());
    const target = bytes(marketJson({ sequence: 4_210_999 }));
    const first = encodeVcdiff(source, target);
    encodeVcdiff(pseudoRandom(5000, 4), pseudoRandom(6000, 5));
    expect([...encodeVcdiff(source, target)]).toEqual([...first]);
  });
});

// Inputs built to stress the matcher: near-copies, few distinct 4-grams, runs and self-repeats.
const smallAlphabet = fc.uint8Array({ maxLength: 600 }).map((a) => a.map((b) => b & 3));
const anyBytes = fc.oneof(fc.uint8Array({ maxLength: 2000 }), smallAlphabet);

type Edit = { at: number; del: number; ins: Uint8Array };
const editArb: fc.Arbitrary<Edit> = fc.record({
  at: fc.nat(),
  del: fc.nat({ max: 40 }),
  ins: fc.oneof(fc.uint8Array({ maxLength: 20 }), fc.constant(new Uint8Array(9).fill(32))),
});

function applyEdits(source: Uint8Array, edits: Edit[]): Uint8Array {
  let cur = source;
  for (const e of edits) {
    const at = cur.length === 0 ? 0 : e.at % (cur.length + 1);
    cur = concat(cur.subarray(0, at), e.ins, cur.subarray(Math.min(cur.length, at + e.del)));
  }
  return cur;
}

const mutatedPair = fc.tuple(anyBytes, fc.array(editArb, { maxLength: 12 })).map(([s, edits]) => [s, applyEdits(s, edits)] as const);

const repeatedPattern = fc
  .tuple(fc.uint8Array({ minLength: 1, maxLength: 9 }), fc.nat({ max: 300 }), fc.nat({ max: 300 }), fc.uint8Array({ maxLength: 5 }))
  .map(([pattern, n, m, noise]) => {
    const rep = (k: number) => concat(...Array.from({ length: k }, () => pattern));
    return [concat(rep(n), noise), concat(noise, rep(m), noise, rep(n >> 1))] as const;
  });

const concatenation = fc
  .tuple(anyBytes, fc.uint8Array({ maxLength: 200 }), fc.array(fc.tuple(fc.nat(), fc.nat({ max: 300 }), fc.nat({ max: 3 })), { maxLength: 10 }))
  .map(([source, fresh, picks]) => {
    let target: Uint8Array = new Uint8Array(0);
    for (const [start, len, from] of picks) {
      // from: 0,1 slice of the source, 2 slice of the target so far (self-copy), 3 fresh bytes
      const pool = from <= 1 ? source : from === 2 ? target : fresh;
      const s = pool.length === 0 ? 0 : start % pool.length;
      target = concat(target, pool.subarray(s, s + len));
    }
    return [source, target] as const;
  });

const anyPair = fc.oneof(fc.tuple(anyBytes, anyBytes), mutatedPair, repeatedPattern, concatenation);

describe('encodeVcdiff properties (@ably/vcdiff-decoder)', () => {
  it('decode(encode(s, t), s) equals t for random and adversarial inputs', () => {
    fc.assert(
      fc.property(anyPair, ([source, target]) => {
        const delta = encodeVcdiff(source, target);
        expect(Buffer.from(decode(delta, source)).equals(Buffer.from(target))).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('decodes correctly when the target is split into many small windows', () => {
    fc.assert(
      fc.property(anyPair, fc.integer({ min: 1, max: 300 }), ([source, target], maxWindow) => {
        const delta = encodeVcdiff(source, target, maxWindow);
        expect(Buffer.from(decode(delta, source)).equals(Buffer.from(target))).toBe(true);
      }),
      { numRuns: 1000 },
    );
  });
});

describe.skipIf(!hasXdelta3)(
  hasXdelta3 ? 'xdelta3 oracle' : 'xdelta3 oracle (skipped: xdelta3 not installed)',
  () => {
    const dir = hasXdelta3 ? mkdtempSync(join(tmpdir(), 'vcdiff-encoder-')) : '';
    afterAll(() => {
      if (dir) rmSync(dir, { recursive: true, force: true });
    });
    let n = 0;

    function xdelta3Decode(source: Uint8Array, delta: Uint8Array): Uint8Array {
      const id = n++;
      const src = join(dir, `${id}.src`);
      const del = join(dir, `${id}.vcdiff`);
      const out = join(dir, `${id}.out`);
      writeFileSync(src, source);
      writeFileSync(del, delta);
      execFileSync(xdelta3!, ['-d', '-f', '-s', src, del, out], { stdio: ['ignore', 'pipe', 'pipe'] });
      const result = readFileSync(out);
      rmSync(src);
      rmSync(del);
      rmSync(out);
      return result;
    }

    function xdeltaRoundTrip(source: Uint8Array, target: Uint8Array, maxWindow?: number): void {
      const decoded = xdelta3Decode(source, encodeVcdiff(source, target, maxWindow));
      expect(decoded.length).toBe(target.length);
      expect(Buffer.from(decoded).equals(Buffer.from(target))).toBe(true);
    }

    for (const [name, source, target] of fixedCases) {
      it(`round-trips through xdelta3: ${name}`, () => {
        xdeltaRoundTrip(source, target);
      });
    }

    it('round-trips a ~2 MB multi-window target through xdelta3', () => {
      const source = pseudoRandom(2_000_000, 11);
      const target = concat(pseudoRandom(1000, 12), source.subarray(0, 1_200_000), source.subarray(1_200_000).reverse());
      xdeltaRoundTrip(source, target);
    });

    it('decode(encode(s, t)) equals t for random and adversarial inputs', () => {
      fc.assert(
        fc.property(anyPair, ([source, target]) => {
          xdeltaRoundTrip(source, target);
        }),
        { numRuns: 200 },
      );
    });

    it('decodes many small windows', () => {
      fc.assert(
        fc.property(anyPair, fc.integer({ min: 1, max: 300 }), ([source, target], maxWindow) => {
          xdeltaRoundTrip(source, target, maxWindow);
        }),
        { numRuns: 100 },
      );
    });
  },
);
