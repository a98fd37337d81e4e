// SIGTERM drains a real `edgepush` process: every client is told to reconnect elsewhere with its
// cursor, new connections are turned away at once, a client that never leaves is cut when
// --drain-timeout passes, and the process exits 0 (what an orchestrator's rollout relies on).
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { EdgepushProcess, getJson } from '../helpers/edgepush-process.js';
import { PollTestClient } from '../helpers/poll-client.js';
import { SseTestClient } from '../helpers/sse-client.js';
import { WsTestClient } from '../helpers/ws-client.js';

/** A WebSocket peer that completes the upgrade, then never answers anything (not even a close frame). */
async function silentWebSocket(port: number): Promise<{ socket: Socket; closed: Promise<unknown> }> {
  const socket = connect(port, '127.0.0.1');
  socket.write(
    `GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  );
  const closed = once(socket, 'close');
  let head = '';
  while (!head.includes('\r\n\r\n')) head += ((await once(socket, 'data')) as [Buffer])[0].toString('latin1');
  expect(head).toMatch(/^HTTP\/1\.1 101 /);
  socket.resume();
  return { socket, closed };
}

/** Resolves once the server counts `count` open connections of `transport` (/metrics, open mode). */
async function connectionsOpen(url: string, transport: string, count: number): Promise<void> {
  const line = `edgepush_connections{transport="${transport}"} ${count}`;
  const deadline = Date.now() + 30_000;
  // Nothing outside the process signals that a request has arrived: ask until it says so.
  while (!(await (await fetch(`${url}/metrics`)).text()).split('\n').includes(line)) {
    if (Date.now() > deadline) throw new Error(`no ${line} within 30 s`);
  }
}

/** What a new client meets: 'refused' when nothing listens any more, else the /readyz status. */
async function readiness(url: string): Promise<number | 'refused'> {
  try {
    return (await getJson(`${url}/readyz`)).status;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ECONNREFUSED') return 'refused';
    throw error;
  }
}

let node: EdgepushProcess | undefined;
afterEach(async () => {
  await node?.stop();
  node = undefined;
});

describe('SIGTERM: graceful drain', () => {
  it('tells SSE, WebSocket and long-poll clients to resume elsewhere, turns new ones away, cuts the last at --drain-timeout and exits 0', async () => {
    node = await EdgepushProcess.start({ config: { drainTimeout: 2 } });
    expect(await readiness(node.url)).toBe(200);
    const sse = new SseTestClient(node.url, ['jobs/1']);
    const ws = new WsTestClient(node.url, ['jobs/1']);
    const poll = new PollTestClient(node.url, ['jobs/1'], {}, 60);
    await Promise.all([sse.ready, ws.ready, poll.ready]);
    // After its first reply (the starting cursor) the poll client's next request is held.
    await connectionsOpen(node.url, 'poll', 1);
    const holder = await silentWebSocket(node.port);

    const exit = node.kill('SIGTERM');

    // SSE: the newest cursor (an id-only event), then `disconnect` 4001 "reconnect".
    await sse.waitFor(() => sse.ended !== undefined, 'the SSE goodbye');
    expect(sse.ended).toEqual({ code: 4001 });
    expect(sse.events.slice(-2)).toEqual(['id', 'disconnect']);
    expect(sse.cursor).toMatch(/^[0-9a-z]+\./);
    // WebSocket: close code 4001; its cursor came with `subscribed`.
    await ws.waitFor(() => ws.ended !== undefined, 'the WebSocket close');
    expect(ws.ended).toEqual({ code: 4001 });
    expect(ws.cursor).toMatch(/^[0-9a-z]+\./);
    // Long-poll: the held request is answered at once, with its cursor; the next one is turned away.
    await poll.waitFor(() => poll.polls >= 2 && poll.ended !== undefined, 'the held poll answered, then the next refused');
    expect(poll.cursor).toMatch(/^[0-9a-z]+\./);

    // The silent peer keeps the drain going: a new client is refused (or, on a kept-alive
    // connection, gets 503), never served.
    expect(['refused', 503]).toContain(await readiness(node.url));
    // At --drain-timeout the server cuts it, and exits 0.
    await holder.closed;
    expect(await exit).toEqual({ code: 0, signal: null });
  });

  it('with every client gone, it exits 0 without waiting for --drain-timeout', async () => {
    node = await EdgepushProcess.start({ config: { drainTimeout: 3600 } });
    const sse = new SseTestClient(node.url, ['jobs/1']);
    await sse.ready;
    // The kill helper gives a process 15 s before SIGKILL: an exit 0 is a drain that did not wait an hour.
    expect(await node.kill('SIGTERM')).toEqual({ code: 0, signal: null });
    await sse.waitFor(() => sse.ended !== undefined, 'the SSE goodbye');
    expect(sse.ended).toEqual({ code: 4001 });
  });
});
