import { once } from 'node:events';
import { createServer, connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { TurnOutbox, turnFlushed } from '../../../transports/turn-outbox.js';
import { textFrame } from '../../../transports/websocket-format.js';

/** A connected loopback pair: the server side is the one written to. */
async function socketPair(): Promise<{ server: Socket; client: Socket; close: () => void }> {
  const listener = createServer();
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  const address = listener.address() as { port: number };
  const accepted = once(listener, 'connection');
  const client = connect(address.port, '127.0.0.1');
  const [server] = (await accepted) as [Socket];
  return {
    server,
    client,
    close: () => {
      client.destroy();
      server.destroy();
      listener.close();
    },
  };
}

const cleanups: (() => void)[] = [];
afterEach(() => cleanups.splice(0).forEach((cleanup) => cleanup()));

describe('TurnOutbox', () => {
  it('hands everything written in one turn to the socket in one write, in order, after the turn', async () => {
    const pair = await socketPair();
    cleanups.push(pair.close);
    const writes: Buffer[] = [];
    const write = pair.server.write.bind(pair.server);
    pair.server.write = ((chunk: Buffer) => {
      writes.push(Buffer.from(chunk));
      return write(chunk);
    }) as Socket['write'];
    const outbox = new TurnOutbox(pair.server, true);
    outbox.write(Buffer.from('one '));
    outbox.write(Buffer.from('two '));
    outbox.write(Buffer.from('three'));
    // Nothing reaches the socket during the turn; the outbox counts it as buffered.
    expect(writes).toHaveLength(0);
    expect(outbox.bufferedAmount).toBe(13);
    let received = '';
    pair.client.on('data', (data: Buffer) => (received += data.toString()));
    await new Promise((resolve) => setImmediate(resolve));
    expect(writes.map(String)).toEqual(['one two three']);
    while (received.length < 13) await once(pair.client, 'data');
    expect(received).toBe('one two three');
  });

  it('writes at once on flush(), so bytes written around it (a close frame, the end) stay in order', async () => {
    const pair = await socketPair();
    cleanups.push(pair.close);
    const outbox = new TurnOutbox(pair.server, true);
    outbox.write(Buffer.from('last words'));
    outbox.flush();
    pair.server.end('.');
    let received = '';
    pair.client.on('data', (data: Buffer) => (received += data.toString()));
    await once(pair.client, 'end');
    expect(received).toBe('last words.');
  });

  it('turnFlushed settles once every outbox of the turn has handed its bytes to its socket', async () => {
    expect(turnFlushed()).toBeUndefined();
    const pairs = [await socketPair(), await socketPair()];
    for (const pair of pairs) cleanups.push(pair.close);
    const written: string[] = [];
    const outboxes = pairs.map((pair, index) => {
      const write = pair.server.write.bind(pair.server);
      pair.server.write = ((chunk: Buffer) => {
        written.push(`${index}:${chunk}`);
        return write(chunk);
      }) as Socket['write'];
      return new TurnOutbox(pair.server, true);
    });
    outboxes[0]!.write(Buffer.from('a'));
    const flushed = turnFlushed();
    outboxes[1]!.write(Buffer.from('b'));
    // Everyone waiting in one turn shares one promise.
    expect(turnFlushed()).toBe(flushed);
    expect(written).toEqual([]);
    await flushed;
    expect(written).toEqual(['0:a', '1:b']);
    expect(turnFlushed()).toBeUndefined();
  });

  it('drops the turn when the protocol above is closed, and says when the socket took a flush', async () => {
    const pair = await socketPair();
    cleanups.push(pair.close);
    let open = true;
    let writable = 0;
    const outbox = new TurnOutbox(pair.server, true, () => writable++, () => open);
    outbox.write(Buffer.from('sent'));
    outbox.flush();
    expect(writable).toBe(1);
    open = false;
    outbox.write(Buffer.from('not sent'));
    outbox.flush();
    expect(writable).toBe(1);
    expect(outbox.bufferedAmount).toBe(pair.server.writableLength);
  });
});

describe('textFrame', () => {
  it('frames text as a final unmasked text frame with the right length encoding', () => {
    for (const length of [0, 125, 126, 65_535, 65_536]) {
      const text = 'é'.repeat(length / 2) + 'x'.repeat(length % 2);
      const frame = textFrame(text);
      const bytes = Buffer.byteLength(text);
      expect(frame[0]).toBe(0x81);
      const declared = frame[1]! < 126 ? frame[1]! : frame[1] === 126 ? frame.readUInt16BE(2) : Number(frame.readBigUInt64BE(2));
      const header = frame[1]! < 126 ? 2 : frame[1] === 126 ? 4 : 10;
      expect(declared).toBe(bytes);
      expect(frame.subarray(header).toString()).toBe(text);
    }
  });
});
