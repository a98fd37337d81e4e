import { once } from 'node:events';
import http from 'node:http';
import { connect, createServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { detachFromHttpServer } from '../../../transports/http-detach.js';

const cleanups: (() => void)[] = [];
afterEach(() => cleanups.splice(0).forEach((cleanup) => cleanup()));

/** An HTTP server whose every request becomes a stream written to the socket, detached like SSE's. */
async function streamingServer(): Promise<{ port: number; streams: Socket[]; detached: boolean[]; server: http.Server }> {
  const streams: Socket[] = [];
  const detached: boolean[] = [];
  const server = http.createServer((request, response) => {
    // As in the SSE route: the handler goes on after an await, outside the parser's callback.
    void Promise.resolve().then(() => {
      const socket = response.socket as Socket;
      socket.on('error', () => {});
      socket.write('HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n');
      detached.push(detachFromHttpServer(socket));
      streams.push(socket);
      socket.write('data: first\n\n');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(() => {
    for (const stream of streams) stream.destroy();
    server.close();
  });
  return { port: (server.address() as { port: number }).port, streams, detached, server };
}

/** A raw client that collects what it reads. */
async function rawClient(port: number, request: string): Promise<{ socket: Socket; text: () => string; until: (part: string) => Promise<void> }> {
  const socket = connect(port, '127.0.0.1');
  cleanups.push(() => socket.destroy());
  await once(socket, 'connect');
  let text = '';
  const waiters: Array<{ part: string; resolve: () => void }> = [];
  socket.on('data', (chunk: Buffer) => {
    text += chunk.toString();
    for (const waiter of waiters.splice(0)) {
      if (text.includes(waiter.part)) waiter.resolve();
      else waiters.push(waiter);
    }
  });
  socket.write(request);
  return {
    socket,
    text: () => text,
    until: (part) => (text.includes(part) ? Promise.resolve() : new Promise((resolve) => waiters.push({ part, resolve }))),
  };
}

const GET = 'GET /stream HTTP/1.1\r\nHost: x\r\n\r\n';

describe('detachFromHttpServer', () => {
  it('leaves the stream working: what the server writes after the detach reaches the client', async () => {
    const { port, streams, detached } = await streamingServer();
    const client = await rawClient(port, GET);
    await client.until('data: first');
    expect(detached).toEqual([true]);
    streams[0]?.write('data: second\n\n');
    await client.until('data: second');
    expect(client.text()).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*data: first\n\ndata: second\n\n$/);
  });

  it('reads and drops what the client sends, even a second request, and keeps streaming', async () => {
    const { port, streams } = await streamingServer();
    const client = await rawClient(port, GET);
    await client.until('data: first');
    client.socket.write(GET + 'garbage that is no HTTP at all\r\n\r\n'.repeat(100));
    // Once the server has read the bytes it wrote nothing back for, the stream goes on as before.
    const stream = streams[0] as Socket;
    while (stream.bytesRead < GET.length * 2) await once(stream, 'data');
    stream.write('data: after\n\n');
    await client.until('data: after');
    expect(client.text().match(/HTTP\/1\.1/g)).toHaveLength(1);
  });

  it('cuts a client that goes on sending well past any request, instead of reading it for ever', async () => {
    const { port, streams } = await streamingServer();
    const client = await rawClient(port, GET);
    await client.until('data: first');
    const closed = once(streams[0] as Socket, 'close');
    client.socket.on('error', () => {});
    client.socket.write(Buffer.alloc(128 * 1024, 'x'));
    await closed;
    expect((streams[0] as Socket).destroyed).toBe(true);
  });

  it('closes the socket when the client ends its side, so the transport sees the stream end', async () => {
    const { port, streams } = await streamingServer();
    const client = await rawClient(port, GET);
    await client.until('data: first');
    const closed = once(streams[0] as Socket, 'close');
    client.socket.end();
    await closed;
    expect((streams[0] as Socket).destroyed).toBe(true);
  });

  it('leaves the server serving other connections, and closing it waits for the detached stream', async () => {
    const { port, streams, server } = await streamingServer();
    const first = await rawClient(port, GET);
    await first.until('data: first');
    const second = await rawClient(port, GET);
    await second.until('data: first');
    expect(streams).toHaveLength(2);
    let serverClosed = false;
    server.close(() => (serverClosed = true));
    server.closeAllConnections();
    // Node's own connection list no longer holds the detached streams: they stay until they end.
    streams[0]?.write('data: still\n\n');
    await first.until('data: still');
    expect(serverClosed).toBe(false);
    const done = once(server, 'close');
    for (const stream of streams) stream.destroy();
    await done;
    expect(serverClosed).toBe(true);
  });

  it('refuses a socket that no HTTP server holds, and leaves it alone', async () => {
    const listener = createServer();
    listener.listen(0, '127.0.0.1');
    await once(listener, 'listening');
    const accepted = once(listener, 'connection');
    const client = connect((listener.address() as { port: number }).port, '127.0.0.1');
    const [socket] = (await accepted) as [Socket];
    cleanups.push(() => {
      client.destroy();
      socket.destroy();
      listener.close();
    });
    const listeners = socket.eventNames().map((event) => [event, socket.listenerCount(event)]);
    expect(detachFromHttpServer(socket)).toBe(false);
    expect(socket.eventNames().map((event) => [event, socket.listenerCount(event)])).toEqual(listeners);
  });
});
