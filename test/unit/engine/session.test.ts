import { describe, expect, it } from 'vitest';
import { ChannelEngine, mergeBacklogs } from '../../../src/engine/engine.js';
import { parseCursor, type Frontier } from '../../../src/log/position.js';
import { defineWireFormat, type PreparedMessage } from '../../../src/engine/prepared-message.js';
import { Session, type SessionSink } from '../../../src/engine/session.js';
import { DISCONNECTS, type Disconnect } from '../../../src/errors.js';
import { payloadFromValue } from '../../../src/protocol/envelope.js';

/** One line with the cursor, one with the envelope: enough to see what a client would store. */
const LINES = defineWireFormat('test-lines', (fields, cursor) => Buffer.from(`${cursor}\n{${fields}}\n`));

class FakeSink implements SessionSink {
  readonly format = LINES;
  readonly streamPerSubscription = false;
  readonly written: Buffer[] = [];
  readonly disconnects: Disconnect[] = [];
  /** Grows with every write; tests drain it by assigning a lower value. */
  bufferedAmount = 0;

  write(bytes: Buffer): void {
    this.written.push(bytes);
    this.bufferedAmount += bytes.length;
  }

  disconnect(reason: Disconnect): void {
    this.disconnects.push(reason);
  }

  get texts(): string[] {
    return this.written.map((b) => b.toString());
  }

  /** The cursor and message id of every write. */
  get sent(): { cursor: string; id: string }[] {
    return this.texts.map((text) => {
      const [cursor, envelope] = text.split('\n');
      return { cursor: cursor as string, id: (JSON.parse(envelope as string) as { id: string }).id };
    });
  }
}

function setup(partitions = 1, maxBufferedBytes = 1_000_000) {
  const engine = new ChannelEngine({
    epoch: 'test',
    partitions,
    ring: { maxCount: 1_000, maxBytes: 1e9, maxAgeMs: 1e9 },
    maxIdleChannels: 100,
    maxIdleBytes: 1e9,
    now: () => 0,
  });
  const send = (partition: number, offset: number, channel: string, data: unknown = offset): void =>
    engine.dispatchRecord(partition, offset, [{ channel, payload: payloadFromValue(data), ts: 0 }]);
  const open = (): { session: Session; sink: FakeSink } => {
    const sink = new FakeSink();
    return { session: new Session(engine, sink, { maxBufferedBytes }), sink };
  };
  return { engine, send, open };
}

function frontier(text: string, partitions: number): Frontier {
  const parsed = parseCursor(text, 'test', partitions);
  if (!parsed.ok) throw new Error(parsed.message);
  return parsed.frontier;
}

/** Records what the engine dispatched, to compare the session's bytes with the shared ones. */
function watch(engine: ChannelEngine, channel: string): PreparedMessage[] {
  const seen: PreparedMessage[] = [];
  engine.subscribe(channel, { deliver: (m) => seen.push(m) }, { kind: 'now' });
  return seen;
}

describe('Session', () => {
  describe('#send', () => {
    it('writes the encoded message with its cursor', () => {
      const { send, open } = setup();
      const { session, sink } = open();
      session.subscribe('a', { kind: 'now' });
      send(0, 0, 'a', { price: 1 });
      send(0, 1, 'b');
      expect(sink.texts).toEqual(['test.0\n{"channel":"a","id":"0-0","ts":0,"data":{"price":1}}\n']);
      expect(session.delivered).toBe(1);
    });

    it('shares one Buffer between sessions for the same message (encode once)', () => {
      const { engine, send, open } = setup();
      const seen = watch(engine, 'a');
      const one = open();
      const two = open();
      one.session.subscribe('a', { kind: 'now' });
      two.session.subscribe('a', { kind: 'now' });
      send(0, 0, 'a');
      expect(one.sink.written).toHaveLength(1);
      expect(one.sink.written[0]).toBe(two.sink.written[0]);
      expect(one.sink.written[0]).toBe((seen[0] as PreparedMessage).encoded(LINES));
    });
  });

  describe('slow clients', () => {
    it('disconnects with code 4008 once the outbox goes over the limit, and sends nothing more', () => {
      const { engine, send, open } = setup(1, 100);
      const { session, sink } = open();
      session.subscribe('a', { kind: 'now' });
      let offset = 0;
      while (sink.disconnects.length === 0 && offset < 100) send(0, offset++, 'a');
      expect(sink.bufferedAmount).toBeGreaterThan(100);
      expect(sink.disconnects).toEqual([DISCONNECTS.slow]);
      expect(sink.disconnects[0]?.code).toBe(4008);
      expect(session.closed).toBe(true);
      const writes = sink.written.length;
      send(0, offset++, 'a');
      expect(sink.written.length).toBe(writes);
      expect(engine.channelCounts.active).toBe(0);
    });

    it('conflates a client that asked onSlow=conflate: latest per channel with elided counts once drained, no cursor meanwhile', () => {
      const { engine, send, open } = setup(1, 100);
      const { session, sink } = open();
      session.subscribe('a', { kind: 'now' }, null, { onSlow: 'conflate' });
      session.subscribe('b', { kind: 'now' }, null, { onSlow: 'conflate' });
      let offset = 0;
      while (sink.bufferedAmount <= 100) send(0, offset++, 'a');
      const written = sink.written.length;
      for (let i = 0; i < 10; i++) send(0, offset++, i % 3 === 0 ? 'b' : 'a');
      expect(sink.written.length).toBe(written);
      expect(sink.disconnects).toEqual([]);
      expect(session.idleCursor()).toBeUndefined();
      // Still full: nothing yet.
      session.drained();
      expect(sink.written.length).toBe(written);
      sink.bufferedAmount = 0;
      session.drained();
      const flushed = sink.texts.slice(written).map((text) => JSON.parse(text.split('\n')[1] as string) as { channel: string; data: number; elided: number });
      // b got offsets w, w+3, w+6, w+9; a the other six: the latest of each, counting the rest.
      expect(flushed.map((m) => [m.channel, m.data, m.elided])).toEqual([
        ['a', offset - 2, 5],
        ['b', offset - 1, 3],
      ]);
      // The metrics count the ones replaced.
      expect(engine.stats.conflatedMessages).toBe(8);
      // Those two filled the small outbox again; once it drains, it is live again, with a cursor.
      sink.bufferedAmount = 0;
      session.drained();
      expect(session.idleCursor()?.toString()).toBe(`test.${(offset - 1).toString(36)}`);
    });

    it('tolerates an outbox of exactly the limit', () => {
      const line = 'test.0\n{"channel":"a","id":"0-0","ts":0,"data":0}\n';
      const { send, open } = setup(1, 100);
      const { session, sink } = open();
      session.subscribe('a', { kind: 'now' });
      sink.bufferedAmount = 100 - Buffer.byteLength(line);
      send(0, 0, 'a');
      expect(sink.texts).toEqual([line]);
      expect(sink.bufferedAmount).toBe(100);
      expect(sink.disconnects).toEqual([]);
    });

    it('lets a replayed backlog exceed the limit, but not live traffic beyond the limit plus that allowance', () => {
      const { engine, send, open } = setup(1, 100);
      for (let o = 0; o < 10; o++) send(0, o, 'a'); // about 50 bytes each
      const { session, sink } = open();
      const recovery = session.subscribe('a', engine.resumePoint('test.'));
      session.replay(recovery.backlog);
      expect(sink.written).toHaveLength(10);
      const replayed = sink.bufferedAmount;
      expect(replayed).toBeGreaterThan(300);
      expect(sink.disconnects).toEqual([]);

      // The network takes a little; live messages fit within limit + allowance (replayed - limit).
      sink.bufferedAmount = replayed - 60;
      send(0, 10, 'a');
      expect(sink.bufferedAmount).toBeLessThanOrEqual(replayed);
      expect(sink.disconnects).toEqual([]);
      send(0, 11, 'a');
      expect(sink.bufferedAmount).toBeGreaterThan(replayed);
      expect(sink.disconnects).toEqual([DISCONNECTS.slow]);
    });

    it('spends the allowance once the outbox drains below the limit', () => {
      const { engine, send, open } = setup(1, 100);
      for (let o = 0; o < 10; o++) send(0, o, 'a');
      const { session, sink } = open();
      session.replay(session.subscribe('a', engine.resumePoint('test.')).backlog);
      const replayed = sink.bufferedAmount;
      sink.bufferedAmount = 0;
      send(0, 10, 'a'); // drained: the allowance is gone
      expect(sink.disconnects).toEqual([]);
      sink.bufferedAmount = 90; // far below the old allowance, but the next write crosses the limit
      send(0, 11, 'a');
      expect(sink.bufferedAmount).toBeLessThan(replayed);
      expect(sink.disconnects).toEqual([DISCONNECTS.slow]);
    });

    it('counts control writes against the same limit', () => {
      const { open } = setup(1, 100);
      const { session, sink } = open();
      session.writeControl(Buffer.alloc(60));
      expect(sink.disconnects).toEqual([]);
      session.writeControl(Buffer.alloc(60));
      expect(sink.disconnects).toEqual([DISCONNECTS.slow]);
      session.writeControl(Buffer.alloc(1));
      expect(sink.written).toHaveLength(2);
    });
  });

  describe('lagging subscriptions', () => {
    it('skips what the client has, never moves its cursor back, and shares bytes again once caught up', () => {
      const { engine, send, open } = setup(3);
      const seen = watch(engine, 'a');
      send(0, 0, 'a');
      send(1, 0, 'a');
      send(1, 1, 'a');
      // The client comes from a node that had read partition 1 up to offset 3.
      const clientText = 'test.0_3_';
      const client = frontier(clientText, 3);
      const { session, sink } = open();
      const from = engine.resumePoint(clientText);
      const recovery = session.subscribe('a', from);
      expect(recovery.backlog).toEqual([]);
      expect(engine.startCursor(from, recovery.backlog).covers(client)).toBe(true);
      expect(session.idleCursor()?.covers(client)).toBe(true);

      send(1, 2, 'a'); // the client has it
      send(0, 1, 'a'); // new to the client, but the node is still behind on partition 1
      send(1, 3, 'a'); // the client has it
      send(1, 4, 'a'); // the node has caught up
      send(2, 0, 'a');
      expect(sink.sent.map((s) => s.id)).toEqual(['0-1', '1-4', '2-0']);
      for (const { cursor } of sink.sent) expect(frontier(cursor, 3).covers(client)).toBe(true);
      expect(sink.sent[0]?.cursor).toBe('test.1_3_');

      const byId = new Map(seen.map((m) => [m.id, m]));
      expect(sink.written[0]).not.toBe(byId.get('0-1')?.encoded(LINES));
      expect(sink.written[1]).toBe(byId.get('1-4')?.encoded(LINES));
      expect(sink.written[2]).toBe(byId.get('2-0')?.encoded(LINES));
      expect(session.idleCursor()?.toString()).toBe(engine.frontier().toString());
    });

    it('skips backlog messages the client already has', () => {
      const { engine, send, open } = setup(2);
      send(0, 0, 'a');
      send(1, 0, 'a');
      send(0, 1, 'a');
      const { session, sink } = open();
      const recovery = session.subscribe('a', engine.resumePoint('test.0_5'));
      session.replay(recovery.backlog);
      expect(sink.sent).toEqual([{ id: '0-1', cursor: 'test.1_5' }]);
    });
  });

  describe('#idleCursor', () => {
    it('is the engine frontier when no subscription is ahead of it', () => {
      const { engine, send, open } = setup(2);
      const { session } = open();
      expect(session.idleCursor()?.toString()).toBe('test._');
      session.subscribe('a', { kind: 'now' });
      send(1, 4, 'b');
      expect(session.idleCursor()?.toString()).toBe(engine.frontier().toString());
    });

    it('is raised to a cursor ahead of the node, shared by several channels', () => {
      const { engine, send, open } = setup(2);
      send(0, 2, 'a');
      const { session } = open();
      const from = engine.resumePoint('test.1_6');
      session.subscribe('a', from);
      session.subscribe('b', from);
      expect(session.idleCursor()?.toString()).toBe('test.2_6');
    });

    it('is undefined while one channel\'s cursor is ahead of the node and another\'s is not', () => {
      const { engine, send, open } = setup(2);
      send(0, 0, 'a');
      const { session } = open();
      session.subscribe('a', { kind: 'now' });
      session.subscribe('b', engine.resumePoint('test.0_4'));
      // Raising the cursor to b's would claim, for a, messages a never received.
      expect(session.idleCursor()).toBeUndefined();
      engine.dispatchRecord(1, 4, []);
      expect(session.idleCursor()?.toString()).toBe('test.0_4');
    });

    it('is undefined while channels hold different cursors ahead of the node, until it catches up', () => {
      const { engine, send, open } = setup(2);
      const { session } = open();
      session.subscribe('a', engine.resumePoint('test._3'));
      session.subscribe('b', engine.resumePoint('test._5'));
      expect(session.idleCursor()).toBeUndefined();
      engine.dispatchRecord(1, 5, []);
      send(0, 0, 'c');
      expect(session.idleCursor()?.toString()).toBe('test.0_5');
    });
  });

  describe('#subscribe', () => {
    it('replaces an existing subscription to the same channel', () => {
      const { engine, send, open } = setup();
      const { session, sink } = open();
      session.subscribe('a', { kind: 'now' });
      session.subscribe('a', { kind: 'now' });
      expect(session.channelCount).toBe(1);
      send(0, 0, 'a');
      expect(sink.written).toHaveLength(1);
      expect(engine.channelCounts).toEqual({ active: 1, idle: 0 });
    });

    it('replays a merged backlog in dispatch order, only for subscribed channels', () => {
      const { engine, send, open } = setup(2);
      send(0, 0, 'a');
      send(1, 0, 'b');
      send(0, 1, 'a');
      send(1, 1, 'b');
      const { session, sink } = open();
      const from = engine.resumePoint('test._');
      const backlog = mergeBacklogs([session.subscribe('a', from), session.subscribe('b', from)]);
      session.unsubscribe('b');
      session.replay(backlog);
      expect(sink.sent.map((s) => s.id)).toEqual(['0-0', '0-1']);
    });
  });

  describe('#close', () => {
    it('unsubscribes every channel and is idempotent', () => {
      const { engine, send, open } = setup();
      const { session, sink } = open();
      session.subscribe('a', { kind: 'now' });
      session.subscribe('b', { kind: 'now' });
      expect(engine.channelCounts.active).toBe(2);
      session.close();
      session.close();
      expect(session.closed).toBe(true);
      expect(session.channelCount).toBe(0);
      expect(engine.channelCounts).toEqual({ active: 0, idle: 2 });
      send(0, 0, 'a');
      expect(sink.written).toEqual([]);
      expect(sink.disconnects).toEqual([]);
    });

    it('disconnect tells the sink once and closes', () => {
      const { open } = setup();
      const { session, sink } = open();
      session.subscribe('a', { kind: 'now' });
      session.disconnect(DISCONNECTS.shutdown);
      session.disconnect(DISCONNECTS.slow);
      expect(sink.disconnects).toEqual([DISCONNECTS.shutdown]);
      expect(session.closed).toBe(true);
      expect(session.has('a')).toBe(false);
    });
  });
});
