/**
 * Positions and cursors: the heart of exact resume.
 *
 * A message's position comes from the source log, never from the node: (partition index, record
 * offset, item index within a split record). Every node that reads the same log therefore gives the
 * same message the same position, and a cursor minted by one node means the same on another.
 *
 * A cursor is a {@link Frontier}: for every partition, the last position the holder has seen. It
 * travels as one opaque, URL-safe string `<epoch>.<part>_<part>_…` where a part is empty (nothing
 * seen), `<offset>` (the whole record seen) or `<offset>~<item>` (a split record seen up to that
 * item), numbers in base 36. The epoch names the log, so a cursor from another log is recognised.
 */

/** Item index meaning "every item of the record": the last item of a record advances to it. */
export const WHOLE_RECORD = Number.POSITIVE_INFINITY;

const EPOCH_PATTERN = /^[0-9a-z]{1,40}$/;
const PART_PATTERN = /^(?:([0-9a-z]{1,11})(?:~([0-9a-z]{1,6}))?)?$/;
/** Longest cursor string accepted; longer input is rejected before any parsing work. */
export const MAX_CURSOR_LENGTH = 8192;

/**
 * The last position seen per partition. Immutable: a message keeps the frontier that was current
 * right after it was dispatched, and that snapshot is what its cursor says.
 */
export class Frontier {
  #cursor: string | undefined;

  private constructor(
    readonly epoch: string,
    /** Last record offset per partition; -1 when nothing was seen. */
    readonly offsets: readonly number[],
    /** Last item seen of that record; {@link WHOLE_RECORD} when the record was seen whole. */
    readonly items: readonly number[],
  ) {}

  static empty(epoch: string, partitions: number): Frontier {
    return new Frontier(epoch, new Array<number>(partitions).fill(-1), new Array<number>(partitions).fill(WHOLE_RECORD));
  }

  static of(epoch: string, offsets: readonly number[], items: readonly number[]): Frontier {
    return new Frontier(epoch, offsets.slice(), items.slice());
  }

  get partitions(): number {
    return this.offsets.length;
  }

  /** True when the message at (partition, offset, item) is at or before this frontier. */
  includes(partition: number, offset: number, item: number): boolean {
    const seen = this.offsets[partition];
    if (seen === undefined || offset > seen) return false;
    return offset < seen || item <= (this.items[partition] as number);
  }

  /** True when this frontier is at or past `other` on every partition. */
  covers(other: Frontier): boolean {
    for (let p = 0; p < other.offsets.length; p++) {
      if (!this.includes(p, other.offsets[p] as number, other.items[p] as number)) return false;
    }
    return true;
  }

  /** This frontier with one partition's position replaced. */
  withPosition(partition: number, offset: number, item: number): Frontier {
    const offsets = this.offsets.slice();
    const items = this.items.slice();
    offsets[partition] = offset;
    items[partition] = item;
    return new Frontier(this.epoch, offsets, items);
  }

  /** The later of the two positions on each partition. */
  max(other: Frontier): Frontier {
    if (this.covers(other)) return this;
    if (other.covers(this) && other.partitions >= this.partitions) return other;
    const n = Math.max(this.partitions, other.partitions);
    const offsets: number[] = [];
    const items: number[] = [];
    for (let p = 0; p < n; p++) {
      const a = this.offsets[p] ?? -1;
      const b = other.offsets[p] ?? -1;
      const ai = this.items[p] ?? WHOLE_RECORD;
      const bi = other.items[p] ?? WHOLE_RECORD;
      const takeA = a > b || (a === b && ai >= bi);
      offsets.push(takeA ? a : b);
      items.push(takeA ? ai : bi);
    }
    return new Frontier(this.epoch, offsets, items);
  }

  /** The opaque cursor string; computed once per frontier and shared by every message using it. */
  toString(): string {
    if (this.#cursor === undefined) {
      let parts = '';
      for (let p = 0; p < this.offsets.length; p++) {
        if (p > 0) parts += '_';
        const offset = this.offsets[p] as number;
        if (offset < 0) continue;
        parts += offset.toString(36);
        const item = this.items[p] as number;
        if (item !== WHOLE_RECORD) parts += '~' + item.toString(36);
      }
      this.#cursor = this.epoch + '.' + parts;
    }
    return this.#cursor;
  }
}

/**
 * A frontier that the engine advances in place as records arrive; snapshots are taken only when a
 * message needs one, so records that route to no channel cost no allocation.
 */
export class MutableFrontier {
  readonly offsets: number[];
  readonly items: number[];
  #snapshot: Frontier | undefined;

  constructor(readonly epoch: string, start: Frontier) {
    this.offsets = start.offsets.slice();
    this.items = start.items.slice();
  }

  advance(partition: number, offset: number, item: number): void {
    this.offsets[partition] = offset;
    this.items[partition] = item;
    this.#snapshot = undefined;
  }

  snapshot(): Frontier {
    this.#snapshot ??= Frontier.of(this.epoch, this.offsets, this.items);
    return this.#snapshot;
  }
}

export type CursorParse =
  | { ok: true; frontier: Frontier }
  | { ok: false; reason: 'bad_cursor' | 'unknown_epoch'; message: string };

/**
 * Reads a cursor string against the current log. A cursor naming another epoch is not an error of
 * the client's: the log was replaced (a restart of the embedded log, another Kafka cluster) and the
 * caller answers with a reset.
 */
export function parseCursor(text: string, epoch: string, partitions: number): CursorParse {
  if (text.length > MAX_CURSOR_LENGTH) {
    return { ok: false, reason: 'bad_cursor', message: `cursor is longer than ${MAX_CURSOR_LENGTH} characters` };
  }
  const dot = text.indexOf('.');
  const cursorEpoch = dot < 0 ? '' : text.slice(0, dot);
  if (dot < 0 || !EPOCH_PATTERN.test(cursorEpoch)) {
    return { ok: false, reason: 'bad_cursor', message: 'cursor is not of the form <epoch>.<positions>' };
  }
  if (cursorEpoch !== epoch) {
    return { ok: false, reason: 'unknown_epoch', message: `cursor belongs to log epoch ${cursorEpoch}, this log is ${epoch}` };
  }
  const parts = text.slice(dot + 1).split('_');
  if (parts.length > partitions) {
    return { ok: false, reason: 'bad_cursor', message: `cursor names ${parts.length} partitions, the log has ${partitions}` };
  }
  const offsets = new Array<number>(partitions).fill(-1);
  const items = new Array<number>(partitions).fill(WHOLE_RECORD);
  for (let p = 0; p < parts.length; p++) {
    const match = PART_PATTERN.exec(parts[p] as string);
    if (!match) return { ok: false, reason: 'bad_cursor', message: `cursor part ${p} is malformed` };
    if (match[1] === undefined) continue;
    offsets[p] = parseInt(match[1], 36);
    if (match[2] !== undefined) items[p] = parseInt(match[2], 36);
  }
  // Partitions added to the log after the cursor was minted read as "nothing seen yet".
  return { ok: true, frontier: Frontier.of(epoch, offsets, items) };
}

/** A message id is its position: `<partition>-<offset>`, plus `-<item>` for items of a split record. */
export function messageId(partition: number, offset: number, item: number | undefined): string {
  return item === undefined ? `${partition}-${offset}` : `${partition}-${offset}-${item}`;
}
