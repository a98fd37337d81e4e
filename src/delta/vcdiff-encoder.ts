/**
 * VCDIFF delta encoder (RFC 3284).
 *
 * Subset emitted, kept to what every decoder we target accepts (verified
 * against xdelta3 and @ably/vcdiff-decoder):
 *   - header D6 C3 C4 00 with Hdr_Indicator 0: no secondary compressor, no
 *     application header, no custom code table (the ably decoder rejects both);
 *   - windows of at most MAX_WINDOW target bytes, each with the whole source as
 *     its VCD_SOURCE segment (or no segment when the source is empty), no
 *     VCD_TARGET, no checksum, Delta_Indicator 0;
 *   - ADD, RUN and COPY through the default code table (section 5.6), including
 *     its combined ADD+COPY / COPY+ADD opcodes, and all nine address modes of
 *     the default address cache (s_near = 4, s_same = 3).
 *
 * Pure: only Uint8Array and typed arrays, so it bundles for browsers unchanged.
 */

const NOOP = 0;
const ADD = 1;
const RUN = 2;
const COPY = 3;

const S_NEAR = 4;
const S_SAME = 3;
const SAME_SLOTS = S_SAME * 256;
const MODE_COUNT = 2 + S_NEAR + S_SAME;

const MIN_MATCH = 4;
// A RUN splitting an ADD costs a RUN opcode, a size and a fresh ADD opcode, so
// only runs longer than that overhead are worth cutting out.
const MIN_RUN = 6;
// Bounded chain walks keep adversarial inputs (one repeated byte, few distinct
// 4-grams) linear; a match this long is unlikely to be beaten by walking on.
const MAX_CHAIN = 16;
const GOOD_MATCH = 64;
// Bounds encoder scratch memory and decoder window buffers for huge targets.
const MAX_WINDOW = 1 << 20;
// "VCD\0" with the high bits set, then Hdr_Indicator 0.
const HEADER = [0xd6, 0xc3, 0xc4, 0x00, 0x00];

export interface CodeTable {
  inst1: Uint8Array;
  size1: Uint8Array;
  mode1: Uint8Array;
  inst2: Uint8Array;
  size2: Uint8Array;
  mode2: Uint8Array;
}

/** The 256-entry default instruction code table, built as in RFC 3284 section 5.6. */
export function buildDefaultCodeTable(): CodeTable {
  const col = (): Uint8Array => new Uint8Array(256);
  const t: CodeTable = { inst1: col(), size1: col(), mode1: col(), inst2: col(), size2: col(), mode2: col() };
  let i = 0;
  const set = (a: number, sa: number, ma: number, b: number, sb: number, mb: number): void => {
    [t.inst1[i], t.size1[i], t.mode1[i]] = [a, sa, ma];
    [t.inst2[i], t.size2[i], t.mode2[i]] = [b, sb, mb];
    i++;
  };
  set(RUN, 0, 0, NOOP, 0, 0);
  for (let s = 0; s <= 17; s++) set(ADD, s, 0, NOOP, 0, 0);
  for (let m = 0; m < MODE_COUNT; m++) {
    set(COPY, 0, m, NOOP, 0, 0);
    for (let s = 4; s <= 18; s++) set(COPY, s, m, NOOP, 0, 0);
  }
  for (let m = 0; m < 6; m++) for (let a = 1; a <= 4; a++) for (let c = 4; c <= 6; c++) set(ADD, a, 0, COPY, c, m);
  for (let m = 6; m < MODE_COUNT; m++) for (let a = 1; a <= 4; a++) set(ADD, a, 0, COPY, 4, m);
  for (let m = 0; m < MODE_COUNT; m++) set(COPY, 4, m, ADD, 1, 0);
  return t;
}

// Opcode lookups are derived from the table rather than hand-written, so the
// choice of opcode can never disagree with what a decoder's table says.
const MAX_ADD = 18; // exclusive bound on ADD sizes in the table
const MAX_COPY = 19; // exclusive bound on COPY sizes in the table
const ADD_OP = new Int16Array(MAX_ADD).fill(-1);
const COPY_OP = new Int16Array(MODE_COUNT * MAX_COPY).fill(-1);
const ADD_COPY_OP = new Int16Array(MODE_COUNT * MAX_ADD * MAX_COPY).fill(-1);
const COPY_ADD_OP = new Int16Array(MODE_COUNT * MAX_COPY * MAX_ADD).fill(-1);
let RUN_OP = -1;
{
  const t = buildDefaultCodeTable();
  for (let op = 0; op < 256; op++) {
    const a = t.inst1[op]!, sa = t.size1[op]!, ma = t.mode1[op]!;
    const b = t.inst2[op]!, sb = t.size2[op]!, mb = t.mode2[op]!;
    if (b === NOOP) {
      if (a === RUN && sa === 0) RUN_OP = op;
      else if (a === ADD) ADD_OP[sa] = op;
      else if (a === COPY) COPY_OP[ma * MAX_COPY + sa] = op;
    } else if (a === ADD && b === COPY) {
      ADD_COPY_OP[(mb * MAX_ADD + sa) * MAX_COPY + sb] = op;
    } else if (a === COPY && b === ADD) {
      COPY_ADD_OP[(ma * MAX_COPY + sa) * MAX_ADD + sb] = op;
    }
  }
}

function varintLength(n: number): number {
  return n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5;
}

/** Append-only byte sink; grows by doubling so appends are amortised O(1). */
class ByteSink {
  bytes: Uint8Array;
  len = 0;

  constructor(capacity: number) {
    this.bytes = new Uint8Array(Math.max(16, capacity));
  }

  reserve(extra: number): void {
    const need = this.len + extra;
    if (need <= this.bytes.length) return;
    let cap = this.bytes.length * 2;
    while (cap < need) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.bytes.subarray(0, this.len));
    this.bytes = next;
  }

  byte(b: number): void {
    if (this.len === this.bytes.length) this.reserve(1);
    this.bytes[this.len++] = b;
  }

  // RFC 3284 section 2: big-endian base-128 digits, continuation bit on all but the last.
  varint(n: number): void {
    const k = varintLength(n);
    this.reserve(k);
    const b = this.bytes;
    let p = this.len + k - 1;
    b[p] = n & 0x7f;
    // Division, not >>>, so sizes beyond 2^31 stay correct.
    n = Math.floor(n / 128);
    while (p > this.len) {
      b[--p] = (n & 0x7f) | 0x80;
      n = Math.floor(n / 128);
    }
    this.len += k;
  }

  append(src: Uint8Array, start: number, end: number): void {
    const n = end - start;
    this.reserve(n);
    if (n < 16) {
      // set() on a subarray allocates a view; short ADDs are the common case.
      const b = this.bytes;
      for (let i = 0; i < n; i++) b[this.len + i] = src[start + i]!;
    } else {
      this.bytes.set(src.subarray(start, end), this.len);
    }
    this.len += n;
  }
}

/**
 * Per-window instruction stream. The address caches and the "previous opcode
 * may still absorb this instruction" state live here because both must be
 * replayed by the decoder in exactly the order instructions are emitted.
 */
class WindowWriter {
  readonly data = new ByteSink(256);
  readonly inst = new ByteSink(256);
  readonly addr = new ByteSink(256);
  private readonly near = new Int32Array(S_NEAR);
  private nextSlot = 0;
  private readonly same = new Int32Array(SAME_SLOTS);
  // Index in inst of a lone ADD / COPY opcode the next instruction may merge into.
  private addAt = -1;
  private addSize = 0;
  private copyAt = -1;
  private copyKey = 0;

  reset(): void {
    this.data.len = this.inst.len = this.addr.len = 0;
    this.near.fill(0);
    this.nextSlot = 0;
    this.same.fill(0);
    this.addAt = this.copyAt = -1;
  }

  add(src: Uint8Array, start: number, end: number): void {
    const size = end - start;
    if (size <= 0) return;
    this.data.append(src, start, end);
    if (size < MAX_ADD) {
      if (this.copyAt >= 0) {
        const op = COPY_ADD_OP[this.copyKey * MAX_ADD + size]!;
        if (op >= 0) {
          this.inst.bytes[this.copyAt] = op;
          this.copyAt = -1;
          return;
        }
      }
      this.inst.byte(ADD_OP[size]!);
      this.addAt = this.inst.len - 1;
      this.addSize = size;
    } else {
      this.inst.byte(ADD_OP[0]!);
      this.inst.varint(size);
      this.addAt = -1;
    }
    this.copyAt = -1;
  }

  run(size: number, value: number): void {
    this.data.byte(value);
    this.inst.byte(RUN_OP);
    this.inst.varint(size);
    this.addAt = this.copyAt = -1;
  }

  /** here: position in the source+target address space where the copy lands. */
  copy(size: number, address: number, here: number): void {
    // Section 5.3: pick the mode giving the smallest encoded address.
    let mode = 0;
    let value = address;
    if (here - address < value) {
      mode = 1;
      value = here - address;
    }
    const near = this.near;
    for (let i = 0; i < S_NEAR; i++) {
      const d = address - near[i]!;
      if (d >= 0 && d < value) {
        mode = 2 + i;
        value = d;
      }
    }
    const slot = address % SAME_SLOTS;
    if (this.same[slot] === address) {
      mode = 2 + S_NEAR + (slot >>> 8);
      this.addr.byte(slot & 0xff);
    } else {
      this.addr.varint(value);
    }
    near[this.nextSlot] = address;
    this.nextSlot = (this.nextSlot + 1) % S_NEAR;
    this.same[slot] = address;

    if (size < MAX_COPY) {
      if (this.addAt >= 0) {
        const op = ADD_COPY_OP[(mode * MAX_ADD + this.addSize) * MAX_COPY + size]!;
        if (op >= 0) {
          this.inst.bytes[this.addAt] = op;
          this.addAt = -1;
          return;
        }
      }
      const op = COPY_OP[mode * MAX_COPY + size]!;
      if (op >= 0) {
        this.inst.byte(op);
        this.copyAt = this.inst.len - 1;
        this.copyKey = mode * MAX_COPY + size;
        this.addAt = -1;
        return;
      }
    }
    this.inst.byte(COPY_OP[mode * MAX_COPY]!);
    this.inst.varint(size);
    this.addAt = this.copyAt = -1;
  }
}

function load32(b: Uint8Array, i: number): number {
  return (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0;
}

function hashBits(n: number): number {
  let bits = 8;
  while (bits < 22 && 1 << bits < n) bits++;
  return bits;
}

/** Length of the common prefix of a[ai..] and b[bi..], capped at max. */
function matchLength(a: Uint8Array, ai: number, b: Uint8Array, bi: number, start: number, max: number): number {
  let n = start;
  while (n < max && a[ai + n] === b[bi + n]) n++;
  return n;
}

// Scratch reused across calls: on the hot path (one encode per small message)
// allocating and collecting the tables cost as much as the encoding itself.
// encodeVcdiff never yields, so one set per realm is safe; big ones are not kept.
const KEEP_SCRATCH = 1 << 16;
let scratchA: Int32Array = new Int32Array(1 << 10);
let scratchB: Int32Array = new Int32Array(1 << 10);
let scratchC: Int32Array = new Int32Array(1 << 10);
let scratchWriter: WindowWriter | null = null;
let scratchOut: ByteSink | null = null;

function table(cached: Int32Array, size: number, clear: boolean): Int32Array {
  if (size > cached.length) return new Int32Array(size);
  return clear ? cached.subarray(0, size).fill(0) : cached.subarray(0, size);
}

/**
 * Returns a VCDIFF delta that turns `source` into `target`.
 * `maxWindow` (target bytes per window) exists for tests and tuning.
 */
export function encodeVcdiff(source: Uint8Array, target: Uint8Array, maxWindow: number = MAX_WINDOW): Uint8Array {
  if (!Number.isInteger(maxWindow) || maxWindow < 1) throw new RangeError(`maxWindow must be a positive integer, got ${maxWindow}`);
  const srcLen = source.length;

  // Every source 4-gram is indexed, newest first, with a chain to older ones:
  // JSON repeats its keys, so the newest hit alone is often the wrong record.
  const srcShift = 32 - hashBits(srcLen);
  const srcHead = table(scratchA, 1 << (32 - srcShift), true);
  const srcPrev = table(scratchB, srcLen, false);
  if (srcLen >= MIN_MATCH) {
    // Rolling the 4-byte window costs one load per position instead of four.
    let x = (source[0]! << 8) | (source[1]! << 16) | (source[2]! << 24);
    for (let i = 0; i + MIN_MATCH <= srcLen; i++) {
      x = (x >>> 8) | (source[i + 3]! << 24);
      const h = Math.imul(x, 0x9e3779b1) >>> srcShift;
      srcPrev[i] = srcHead[h]!;
      srcHead[h] = i + 1; // 0 marks an empty slot
    }
  }

  const tgtShift = 32 - hashBits(Math.min(target.length, maxWindow));
  const tgtHead = table(scratchC, 1 << (32 - tgtShift), true);
  const w = scratchWriter ?? new WindowWriter();
  scratchWriter = null;
  const out = scratchOut ?? new ByteSink(1024);
  scratchOut = null;
  out.len = 0;
  for (const b of HEADER) out.byte(b);

  // Source address expected to line up with target position t, i.e. the
  // diagonal of the last source copy: after a changed value in an otherwise
  // identical message, the copy resumes right there without a hash lookup.
  let diag = 0, ws = 0;
  // do-while: an empty target still gets one window; the ably decoder always reads one.
  do {
    const we = Math.min(target.length, ws + maxWindow);
    w.reset();
    if (ws > 0) tgtHead.fill(0);
    let t = ws, misses = 0;
    let pending = ws; // start of bytes not yet covered by an instruction
    const last = we - MIN_MATCH;
    while (t <= last) {
      const x = load32(target, t);
      let bestLen = 0;
      let bestAddr = 0;
      let bestInSource = false;

      const p = t + diag;
      if (p >= 0 && p + MIN_MATCH <= srcLen && load32(source, p) === x) {
        bestLen = matchLength(source, p, target, t, MIN_MATCH, Math.min(srcLen - p, we - t));
        bestAddr = p;
        bestInSource = true;
      }
      const hx = Math.imul(x, 0x9e3779b1);
      if (bestLen < GOOD_MATCH && srcLen >= MIN_MATCH) {
        let c = srcHead[hx >>> srcShift]! - 1;
        for (let depth = MAX_CHAIN; c >= 0 && depth > 0; depth--) {
          if (c !== p && load32(source, c) === x) {
            // Copies never straddle the source/target boundary: not every decoder allows it.
            const len = matchLength(source, c, target, t, MIN_MATCH, Math.min(srcLen - c, we - t));
            if (len > bestLen) {
              bestLen = len;
              bestAddr = c;
              bestInSource = true;
              if (len >= GOOD_MATCH) break;
            }
          }
          c = srcPrev[c]! - 1;
        }
      }
      const th = hx >>> tgtShift;
      if (bestLen < GOOD_MATCH) {
        const c = ws + tgtHead[th]! - 1;
        if (c >= ws && load32(target, c) === x) {
          // May run past t: overlapping copies are legal and encode repeats.
          const len = matchLength(target, c, target, t, MIN_MATCH, we - t);
          if (len > bestLen) {
            bestLen = len;
            bestAddr = c;
            bestInSource = false;
          }
        }
      }

      // A run of one byte is encoded more cheaply by RUN than by a copy of equal length.
      if ((x >>> 8) === (x & 0xffffff)) {
        const v = x & 0xff;
        let r = MIN_MATCH;
        while (t + r < we && target[t + r] === v) r++;
        if (r >= MIN_RUN && r >= bestLen) {
          let start = t; // the scan may have stepped past the run's first bytes
          while (start > pending && target[start - 1] === v) start--;
          w.add(target, pending, start);
          w.run(r + t - start, v);
          t += r;
          pending = t;
          misses = 0;
          continue;
        }
      }

      if (bestLen >= MIN_MATCH) {
        // Grow the match backwards over bytes that would otherwise be ADDed.
        let back = 0;
        if (bestInSource) {
          while (t - back > pending && bestAddr - back > 0 && source[bestAddr - back - 1] === target[t - back - 1]) back++;
        } else {
          while (t - back > pending && bestAddr - back > ws && target[bestAddr - back - 1] === target[t - back - 1]) back++;
        }
        const start = t - back;
        w.add(target, pending, start);
        const addr = bestInSource ? bestAddr - back : srcLen + bestAddr - back - ws;
        w.copy(bestLen + back, addr, srcLen + start - ws);
        if (bestInSource) diag = bestAddr - t;
        t += bestLen;
        pending = t;
        misses = 0;
        continue;
      }

      tgtHead[th] = t - ws + 1;
      // Incompressible stretches are scanned with a growing stride (as LZ4 does);
      // a match the stride lands inside is still found and grown backwards.
      t += 1 + Math.min(misses++ >>> 5, 7);
    }
    w.add(target, pending, we);

    const dl = w.data.len, il = w.inst.len, al = w.addr.len;
    const n = we - ws;
    const deltaLen = varintLength(n) + 1 + varintLength(dl) + varintLength(il) + varintLength(al) + dl + il + al;
    out.reserve(deltaLen + 32);
    out.byte(srcLen > 0 ? 0x01 : 0); // VCD_SOURCE: the whole source is the segment
    if (srcLen > 0) for (const v of [srcLen, 0]) out.varint(v);
    out.varint(deltaLen);
    out.varint(n);
    out.byte(0); // Delta_Indicator: sections are not compressed
    for (const v of [dl, il, al]) out.varint(v);
    for (const sink of [w.data, w.inst, w.addr]) out.append(sink.bytes, 0, sink.len);
    ws = we;
  } while (ws < target.length);

  if (srcHead.length <= KEEP_SCRATCH && srcHead.length > scratchA.length) scratchA = srcHead;
  if (srcPrev.length <= KEEP_SCRATCH && srcPrev.length > scratchB.length) scratchB = srcPrev;
  if (tgtHead.length <= KEEP_SCRATCH && tgtHead.length > scratchC.length) scratchC = tgtHead;
  if (w.data.bytes.length + w.inst.bytes.length + w.addr.bytes.length <= 4 * KEEP_SCRATCH) scratchWriter = w;
  const result = out.bytes.slice(0, out.len);
  if (out.bytes.length <= 4 * KEEP_SCRATCH) scratchOut = out;
  return result;
}
