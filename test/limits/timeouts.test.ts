/**
 * headerTimeout and maxJsonDepth, as a client sees them: a connection that sends nothing or
 * dribbles its headers is closed; streams that outlive headerTimeout (SSE, WebSocket, a held poll)
 * are not; JSON nested past the limit is a 400 bad_json (or an error op), never a 500, never a
 * stack trace in the log.
 */
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/start.js';
import { captureLog, closed, errorShapeProblem, httpRequest, metricValue, openWebSocket, scrapeMetrics, type LogCapture } from '../helpers/limit-clients.js';
import { publish, startTestServer } from '../helpers/server.js';
import { SseTestClient } from '../helpers/sse-client.js';
import { WsTestClient } from '../helpers/ws-client.js';

/** Resolves with everything the server sent once it closed the connection. */
function whenClosed(socket: Socket): Promise<string> {
  let received = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (received += chunk));
  socket.on('error', () => {});
  return new Promise((resolve) => socket.once('close', () => resolve(received)));
}

function rawConnection(url: string): Promise<Socket> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port) }, () => resolve(socket));
    socket.once('error', reject);
  });
}

describe('headerTimeout', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startTestServer({ headerTimeout: 1, heartbeatInterval: 0.2, pollTimeout: 3, pollMaxTimeout: 10 });
  });
  afterAll(async () => {
    await server.close();
  });

  it('closes a TCP connection that sends nothing', async () => {
    const socket = await rawConnection(server.url);
    const received = await whenClosed(socket);
    // Nothing to answer: no request ever began.
    expect(received).toBe('');
  });

  it('closes a slowloris: headers dribbled one line at a time, never finished', async () => {
    const socket = await rawConnection(server.url);
    const done = whenClosed(socket);
    let open = true;
    void done.then(() => (open = false));
    socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    // One header line every 100 ms, up to 300 lines (30 s): far longer than headerTimeout, and
    // each line on its own would keep an idle-timeout based server waiting forever.
    let sent = 0;
    const pacing = 100;
    while (open && sent < 300) {
      await new Promise((resolve) => setTimeout(resolve, pacing));
      if (!open) break;
      socket.write(`X-Dribble-${sent}: ${'a'.repeat(10)}\r\n`);
      sent++;
    }
    const received = await done;
    expect(open).toBe(false);
    expect(sent).toBeLessThan(300);
    // Whatever the server said on its way out, it never answered the request as if it were complete.
    expect(received).not.toMatch(/^HTTP\/1\.1 200/);
  });

  it('closes a slowloris on a keep-alive connection after a first request that was quick', async () => {
    const socket = await rawConnection(server.url);
    const done = whenClosed(socket);
    let received = '';
    socket.on('data', (chunk: string) => (received += chunk));
    let open = true;
    void done.then(() => (open = false));
    socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await new Promise<void>((resolve) => {
      const check = (): void => {
        if (!received.includes('"status":"ok"')) return;
        socket.off('data', check);
        resolve();
      };
      socket.on('data', check);
      socket.once('close', () => resolve());
    });
    expect(open).toBe(true);
    // The second request's headers, dribbled.
    socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    let sent = 0;
    while (open && sent < 300) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      if (!open) break;
      socket.write(`X-Dribble-${sent}: ${'a'.repeat(10)}\r\n`);
      sent++;
    }
    await done;
    expect(open).toBe(false);
    expect(sent).toBeLessThan(300);
    // Only the first request was answered.
    expect((received.match(/"status":"ok"/g) ?? []).length).toBe(1);
  });

  it('does not cut an SSE stream that lives longer than headerTimeout and several heartbeats', async () => {
    const client = new SseTestClient(server.url, ['timeouts/sse']);
    await client.ready;
    // headerTimeout is 1 s and heartbeats come every 0.2 s: 15 heartbeats is 3 s, past it by a
    // margin of ten heartbeats, counted as they arrive.
    const heartbeats = (): number => client.events.filter((event) => event === 'id').length;
    await client.waitFor(() => heartbeats() >= 15 || client.ended !== undefined, '15 heartbeats');
    expect(client.ended).toBeUndefined();
    await publish(server.url, [{ channel: 'timeouts/sse', data: 'still here' }]);
    await client.waitFor(() => client.received.length === 1 || client.ended !== undefined, 'the message');
    expect(client.received.map((message) => message.data)).toEqual(['still here']);
    client.drop();
  });

  it('does not cut a WebSocket that lives longer than headerTimeout', async () => {
    const client = new WsTestClient(server.url, ['timeouts/ws']);
    await client.ready;
    // The server pings every heartbeat (0.2 s): 15 of them is 3 s, three times headerTimeout.
    let pings = 0;
    client.socket.on('ping', () => {
      pings++;
      client.emit('change');
    });
    await client.waitFor(() => pings >= 15 || client.ended !== undefined, '15 server pings');
    const pong = client.nextOp('pong');
    client.send({ op: 'ping', id: 'late' });
    expect(await pong).toMatchObject({ id: 'late' });
    expect(client.ended).toBeUndefined();
    await publish(server.url, [{ channel: 'timeouts/ws', data: 'still here' }]);
    await client.waitFor(() => client.received.length === 1, 'the message');
    client.drop();
  });

  it('does not cut a held long-poll that waits longer than headerTimeout', async () => {
    const first = await httpRequest(server.url, '/v1/poll?channel=timeouts/poll&timeout=0');
    const { cursor } = JSON.parse(first.text) as { cursor: string };
    // Held for its full 3 s timeout (three times headerTimeout), then answered: empty, same place.
    const held = await httpRequest(server.url, `/v1/poll?channel=timeouts/poll&timeout=3&cursor=${encodeURIComponent(cursor)}`, { timeoutMs: 20_000 });
    expect(held.status).toBe(200);
    expect(JSON.parse(held.text)).toMatchObject({ messages: [] });
  });
});

describe('maxJsonDepth', () => {
  let server: RunningServer;
  let log: LogCapture;
  beforeAll(async () => {
    server = await startTestServer({ logLevel: 'info' });
    log = captureLog(server);
  });
  afterAll(async () => {
    await server.close();
  });

  const deep = (levels: number): string => '['.repeat(levels) + ']'.repeat(levels);

  it('captures the server log (the capture itself works)', () => {
    server.app.log.error('capture probe');
    expect(log.lines.some((line) => line['msg'] === 'capture probe')).toBe(true);
    log.lines.length = 0;
  });

  it('answers a 10 KB body nested 5,000 levels with 400 bad_json, logs no stack and counts it', async () => {
    const before = metricValue(await scrapeMetrics(server.url), 'edgepush_bad_input_total', { transport: 'http', code: 'bad_json' });
    const body = deep(5000);
    expect(body.length).toBe(10_000);
    for (const path of ['/v1/publish', '/v1/server/publish', '/v1/server/subscribe']) {
      const answer = await httpRequest(server.url, path, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      expect(answer.status, path).toBe(400);
      expect(errorShapeProblem(answer.status, answer.headers, answer.text), path).toBeUndefined();
      expect(JSON.parse(answer.text).error.code, path).toBe('bad_json');
    }
    // The same depth inside a well-formed message, and as objects rather than arrays.
    const inMessage = `{"channel":"deep/a","data":${deep(5000)}}`;
    const objects = '{"a":'.repeat(5000) + '1' + '}'.repeat(5000);
    for (const text of [inMessage, objects]) {
      const answer = await httpRequest(server.url, '/v1/publish', { method: 'POST', headers: { 'content-type': 'application/json; charset=utf-8' }, body: text });
      expect(answer.status).toBe(400);
      expect(JSON.parse(answer.text).error.code).toBe('bad_json');
    }
    const after = metricValue(await scrapeMetrics(server.url), 'edgepush_bad_input_total', { transport: 'http', code: 'bad_json' });
    expect(after - before).toBe(5);
    expect(log.problems()).toEqual([]);
    expect((await httpRequest(server.url, '/healthz')).status).toBe(200);
  });

  it('takes nesting up to maxJsonDepth and refuses one level more', async () => {
    // The body object is one level, so data nested 31 deep makes 32 in all.
    const at = await httpRequest(server.url, '/v1/publish', { method: 'POST', headers: { 'content-type': 'application/json' }, body: `{"channel":"deep/b","data":${deep(31)}}` });
    expect(at.status).toBe(201);
    const over = await httpRequest(server.url, '/v1/publish', { method: 'POST', headers: { 'content-type': 'application/json' }, body: `{"channel":"deep/b","data":${deep(32)}}` });
    expect(over.status).toBe(400);
    expect(JSON.parse(over.text).error.code).toBe('bad_json');
  });

  it('answers a deep WebSocket frame with an error op bad_json and keeps the socket', async () => {
    const attempt = await openWebSocket(server.url);
    if (attempt.kind !== 'open') throw new Error(`upgrade refused: ${attempt.status}`);
    const { socket } = attempt;
    const ops: Record<string, unknown>[] = [];
    socket.on('message', (data) => ops.push(JSON.parse(data.toString()) as Record<string, unknown>));
    const pong = new Promise<void>((resolve) => socket.on('message', (data) => JSON.parse(data.toString()).op === 'pong' && resolve()));
    socket.send(deep(5000));
    socket.send(`{"op":"publish","channel":"deep/ws","id":"d1","data":${deep(40)}}`);
    socket.send('{"op":"ping","id":"after"}');
    await pong;
    expect(ops.filter((op) => op['op'] === 'error')).toEqual([
      { op: 'error', code: 'bad_json', message: expect.any(String) },
      // The id is not read from a frame that was refused before parsing.
      { op: 'error', code: 'bad_json', message: expect.any(String) },
    ]);
    expect(ops.at(-1)).toMatchObject({ op: 'pong', id: 'after' });
    socket.close();
    await closed(socket);
    expect(log.problems()).toEqual([]);
  });
});
