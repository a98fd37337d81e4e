/**
 * Eliding with a hand-driven clock: at most one message per channel per interval (counted against
 * the clock, not measured), the first at once, the final value always sent, `sent + Σ elided =
 * published` per channel, bytes and timers shared by every subscriber of a class, and no cursor
 * that claims a message still waiting for its interval's end. Seeded: ELISION_SEED reproduces.
 */
import { describe, expect, it } from 'vitest';
import type { Scheduler } from '../../../src/engine/elision.js';
import { ChannelEngine } from '../../../src/engine/engine.js';
import { defineWireFormat } from '../../../src/engine/prepared-message.js';
import { Session, type SessionSink } from '../../../src/engine/session.js';
import type { Disconnect } from '../../../src/errors.js';
import { parseCursor } from '../../../src/log/position.js';
import { payloadFromValue } from '../../../src/protocol/envelope.js';
import { deltaCodecOf } from '../../../src/delta/codecs.js';

const SEED = Number(process.env['ELISION_SEED'] ?? 11);
const FORMAT = defineWireFormat('elision-test', (fields, cursor) => Buffer.from(`${cursor}\n{${fields}}`));

/** Timers that fire only when the test moves the clock. */
class ManualClock implements Scheduler {
  time = 0;
  readonly #timers: { at: number; run: () => void; live: boolean }[] = [];

  now(): number {
    return this.time;
  }

  schedule(ms: number, run: () => void): { cancel(): void } {
    const timer = { at: this.time + ms, run, live: true };
    this.#timers.push(timer);
    return { cancel: () => (timer.live = false) };
  }

  get pending(): number {
    return this.#timers.filter((t) => t.live).length;
  }

  /** Moves the clock to `to`, firing due timers in time order. */
  advance(to: number): void {
    for (;;) {
      const due = this.#timers.filter((t) => t.live && t.at <= to).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      due.live = false;
      this.time = due.at;
      due.run();
    }
    this.time = to;
  }
}

interface Written {
  at: number;
  bytes: Buffer;
  cursor: string;
  envelope: { channel: string; id: string; data: unknown; elided?: number };
}

class Sink implements SessionSink {
  readonly format = FORMAT;
  readonly streamPerSubscription = false;
  readonly bufferedAmount = 0;
  readonly written: Written[] = [];
  constructor(private readonly clock: ManualClock) {}
  write(bytes: Buffer): void {
    const [cursor, envelope] = bytes.toString().split('\n') as [string, string];
    this.written.push({ at: this.clock.time, bytes, cursor, envelope: JSON.parse(envelope) as Written['envelope'] });
  }
  disconnect(_reason: Disconnect): void {}
}

function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

function setup(partitions = 2) {
  const clock = new ManualClock();
  const engine = new ChannelEngine({ epoch: 'el', partitions, ring: { maxCount: 1000, maxBytes: 1e9, maxAgeMs: 1e12 }, maxIdleChannels: 100, maxIdleBytes: 1e9, now: () => clock.time, scheduler: clock });
  const offsets = new Array<number>(partitions).fill(-1);
  const publish = (partition: number, channel: string, data: unknown): void => {
    offsets[partition] = (offsets[partition] as number) + 1;
    engine.dispatchRecord(partition, offsets[partition] as number, [{ channel, payload: payloadFromValue(data), ts: clock.time }]);
  };
  const open = (channels: string[], maxRate: number, delta: string | null = null): Sink => {
    const sink = new Sink(clock);
    const session = new Session(engine, sink, { maxBufferedBytes: 1e9 });
    for (const channel of channels) session.subscribe(channel, { kind: 'now' }, deltaCodecOf(delta), { maxRate });
    return sink;
  };
  return { clock, engine, publish, open };
}

describe('eliding', () => {
  it('sends at most one message per channel per interval, the first at once and the last always, with sent + elided = published (seeded)', () => {
    const next = random(SEED);
    const { clock, publish, open, engine } = setup();
    const INTERVAL = 1000;
    const channels = ['e/a', 'e/b', 'e/c'];
    const sinks = [open(['e/a', 'e/b', 'e/c'], INTERVAL), open(['e/+'], INTERVAL)];
    const published = new Map<string, unknown[]>(channels.map((c) => [c, []]));
    for (let step = 0; step < 3000; step++) {
      clock.advance(clock.time + Math.floor(next() * (next() < 0.1 ? 3000 : 60)));
      const channel = channels[Math.floor(next() * channels.length)] as string;
      published.get(channel)!.push(step);
      publish(channel === 'e/a' ? 0 : 1, channel, step);
    }
    clock.advance(clock.time + 10 * INTERVAL);
    expect(clock.pending).toBe(0);
    for (const sink of sinks) {
      for (const channel of channels) {
        const sent = sink.written.filter((w) => w.envelope.channel === channel);
        const all = published.get(channel)!;
        // Every message is either sent or counted by the one that replaced it.
        expect(sent.length + sent.reduce((sum, w) => sum + (w.envelope.elided ?? 0), 0)).toBe(all.length);
        // The final value is never lost.
        expect(sent.at(-1)?.envelope.data).toBe(all.at(-1));
        // At most one per interval, by the clock.
        for (let i = 1; i < sent.length; i++) expect(sent[i]!.at - sent[i - 1]!.at).toBeGreaterThanOrEqual(INTERVAL);
        // In log order.
        const order = sent.map((w) => w.envelope.data as number);
        expect(order).toEqual([...order].sort((x, y) => x - y));
      }
    }
    expect(engine.elider.stats.elided).toBeGreaterThan(1000);
  });

  it('shares bytes and timers per class: two subscribers of one (channel, interval) get the same Buffer', () => {
    const { clock, publish, open, engine } = setup(1);
    const one = open(['s/a'], 500);
    const two = open(['s/a'], 500);
    for (let i = 0; i < 10; i++) publish(0, 's/a', i);
    expect(clock.pending).toBe(1);
    expect(engine.elider.classCount).toBe(1);
    clock.advance(500);
    expect(one.written.map((w) => w.envelope.data)).toEqual([0, 9]);
    expect(one.written.map((w) => w.envelope.elided)).toEqual([0, 8]);
    expect(one.written.map((w) => w.bytes)).toEqual(two.written.map((w) => w.bytes));
    expect(one.written[1]!.bytes).toBe(two.written[1]!.bytes);
  });

  it('computes a delta once per class, against what the class sent last on the channel', () => {
    const { clock, publish, open } = setup(1);
    const one = open(['d/a'], 100, 'json-patch');
    const two = open(['d/a'], 100, 'json-patch');
    const record = (n: number): unknown => ({ route: 'R7', stops: ['A', 'B', 'C', 'D', 'E'], position: { lat: 52.37, lon: 4.89 }, seq: n });
    for (let n = 0; n < 5; n++) publish(0, 'd/a', record(n));
    clock.advance(100);
    publish(0, 'd/a', record(5));
    clock.advance(300);
    const sent = one.written.map((w) => w.envelope as { data: unknown; delta?: { base: string } });
    // 0 at once; 4 at the first interval's end (a delta against 0); 5 at the next (against 4).
    expect(sent.map((m) => m.delta !== undefined)).toEqual([false, true, true]);
    expect(sent[1]!.delta!.base).toBe('0-0');
    expect(sent[2]!.delta!.base).toBe('0-4');
    expect(one.written.map((w) => w.bytes)).toEqual(two.written.map((w) => w.bytes));
    expect(one.written[2]!.bytes).toBe(two.written[2]!.bytes);
  });

  it('never sends a cursor that covers a message still waiting for its interval', () => {
    const { clock, publish, open } = setup(1);
    const sink = open(['w/a', 'w/b'], 1000);
    publish(0, 'w/a', 'a0'); // at once
    publish(0, 'w/a', 'a1'); // waits (offset 1)
    publish(0, 'w/b', 'b0'); // at once, offset 2: its cursor must stay before offset 1
    const b0 = sink.written.find((w) => w.envelope.data === 'b0')!;
    const cursor = parseCursor(b0.cursor, 'el', 1);
    expect(cursor.ok && cursor.frontier.includes(0, 1, 0)).toBe(false);
    clock.advance(1000);
    const a1 = sink.written.find((w) => w.envelope.data === 'a1')!;
    const after = parseCursor(a1.cursor, 'el', 1);
    expect(after.ok && after.frontier.includes(0, 1, 0)).toBe(true);
  });

  it('never sends a cursor that covers a message replaced while waiting: its count goes out with the final value', () => {
    const { clock, publish, open } = setup(1);
    const sink = open(['w/a', 'w/b'], 1000);
    publish(0, 'w/a', 'a0'); // at once
    publish(0, 'w/a', 'a1'); // waits (offset 1)...
    publish(0, 'w/a', 'a2'); // ...and is replaced by this one (offset 2), which will say elided: 1
    publish(0, 'w/b', 'b0'); // at once, offset 3: a client resuming from its cursor must still learn of a1
    const b0 = sink.written.find((w) => w.envelope.data === 'b0')!;
    const cursor = parseCursor(b0.cursor, 'el', 1);
    expect(cursor.ok && cursor.frontier.includes(0, 1, 0)).toBe(false);
    clock.advance(1000);
    const a2 = sink.written.find((w) => w.envelope.data === 'a2')!;
    expect(a2.envelope.elided).toBe(1);
    const after = parseCursor(a2.cursor, 'el', 1);
    expect(after.ok && after.frontier.includes(0, 2, 0)).toBe(true);
  });
});
