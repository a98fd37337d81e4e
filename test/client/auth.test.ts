/**
 * The client's side of authentication (docs/client.md "Authentication"), against fake servers that
 * speak the contract: in memory through the `WebSocket` and `fetch` options under fake timers, and
 * one real `ws` server for the expiry-and-resume path. Math.random is pinned to 1, so every backoff
 * delay is its cap (1 s, 2 s, 4 s, 8 s, 8 s, ...) and the fake clock can be advanced exactly.
 */
import { WebSocketServer, type WebSocket as ServerSocket } from 'ws';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { EdgePush, EdgePushError, type EdgePushOptions } from '../../src/client/index.js';
import { ClientWatch } from '../helpers/client-watch.js';
import { deferred, fakeFetch, fakeWebSockets, type FakeSocket, type Op } from './fake-edge.js';

const URL = 'http://edge.test';
/** No keepalive traffic in these tests: the fake server answers only what each test scripts. */
const QUIET: EdgePushOptions = { rememberTransport: false, heartbeatInterval: 3600_000, backoff: { initialDelay: 1000, maxDelay: 8000 } };

function tokens(): { getToken: () => string; calls: () => number } {
  let n = 0;
  return { getToken: () => `jwt-${++n}`, calls: () => n };
}

const nowSeconds = (): number => Math.floor(Date.now() / 1000);

/** Plays the server through one WebSocket handshake: hello, then `authenticated` for `token`. */
async function handshake(socket: FakeSocket, token: string, expires?: number): Promise<void> {
  socket.accept();
  socket.reply({ op: 'hello', session: `s-${token}`, version: '0.1.0', heartbeat: 15 });
  const auth = await socket.nextOp('auth');
  expect(auth).toEqual({ op: 'auth', token, id: expect.any(String) });
  socket.reply({ op: 'authenticated', id: auth['id'], user: 'u42', ...(expires === undefined ? {} : { expires }) });
}

/** Answers the next subscribe with `subscribed`; returns the subscribe op. */
async function acceptSubscribe(socket: FakeSocket, cursor: string): Promise<Op> {
  const subscribe = await socket.nextOp('subscribe');
  socket.reply({ op: 'subscribed', channel: subscribe['channel'], cursor, resumed: subscribe['cursor'] !== undefined });
  return subscribe;
}

function sseMessage(channel: string, id: string, data: unknown): string {
  return `id: ${id}\ndata: ${JSON.stringify({ channel, id, ts: 1_790_000_000_000, data })}\n\n`;
}

describe('identity in the client, against fake servers', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'], now: new Date('2026-11-21T10:00:00Z') });
    vi.spyOn(Math, 'random').mockReturnValue(1);
  });
  afterEach(() => {
    vi.restoreAllMocks();
    vi.useRealTimers();
  });

  describe('WebSocket', () => {
    it('opens without a token in the URL, sends auth first, and subscribes once authenticated', async () => {
      const { WebSocket, sockets } = fakeWebSockets();
      const getToken = vi.fn(() => 'jwt-1');
      const client = new EdgePush(URL, { ...QUIET, transports: ['ws'], WebSocket, getToken });
      client.subscribe('news/a', () => {});
      const socket = await sockets.next();
      expect(socket.url).toBe('ws://edge.test/v1/ws');
      socket.accept();
      socket.reply({ op: 'hello', session: 'session-1', version: '0.1.0', heartbeat: 15 });
      socket.reply({ op: 'some-future-op', detail: true });
      const auth = await socket.nextOp('auth');
      expect(socket.frames.all).toEqual([{ op: 'auth', token: 'jwt-1', id: expect.any(String) }]);
      expect(client.session).toBe('session-1');
      socket.reply({ op: 'authenticated', id: auth['id'], user: 'u42', expires: nowSeconds() + 3600 });
      expect(await acceptSubscribe(socket, 'c0')).toEqual({ op: 'subscribe', channel: 'news/a' });
      expect(client.state).toBe('connected');
      expect(getToken).toHaveBeenCalledTimes(1);
      client.close();
    });

    it('refreshes the token on the open socket some time before it expires', async () => {
      const { WebSocket, sockets } = fakeWebSockets();
      const { getToken, calls } = tokens();
      const client = new EdgePush(URL, { ...QUIET, transports: ['ws'], WebSocket, getToken });
      client.subscribe('news/a', () => {});
      const socket = await sockets.next();
      await handshake(socket, 'jwt-1', nowSeconds() + 100);
      await acceptSubscribe(socket, 'c0');
      // 80% of the 100 s left.
      await vi.advanceTimersByTimeAsync(79_999);
      expect(calls()).toBe(1);
      await vi.advanceTimersByTimeAsync(1);
      const refresh = await socket.nextOp('auth');
      expect(refresh['token']).toBe('jwt-2');
      expect(calls()).toBe(2);
      // A 10 s token is refreshed 5 s before it ends; all on the one socket.
      socket.reply({ op: 'authenticated', id: refresh['id'], user: 'u42', expires: nowSeconds() + 10 });
      await vi.advanceTimersByTimeAsync(5000);
      expect((await socket.nextOp('auth'))['token']).toBe('jwt-3');
      expect(sockets.all).toHaveLength(1);
      expect(client.state).toBe('connected');
      client.close();
    });

    it('ends a subscription whose grant a refresh lost, and does not resubscribe it', async () => {
      const { WebSocket, sockets } = fakeWebSockets();
      const { getToken } = tokens();
      const client = new EdgePush(URL, { ...QUIET, transports: ['ws'], WebSocket, getToken });
      const watch = new ClientWatch(client);
      const kept = client.subscribe('news/a', watch.handler);
      const lost = client.subscribe('news/b', watch.handler);
      const socket = await sockets.next();
      await handshake(socket, 'jwt-1', nowSeconds() + 100);
      await acceptSubscribe(socket, 'c0');
      await acceptSubscribe(socket, 'c0');
      await vi.advanceTimersByTimeAsync(80_000);
      const refresh = await socket.nextOp('auth');
      socket.reply({ op: 'unsubscribed', channel: 'news/b', server: true });
      socket.reply({ op: 'error', code: 'forbidden', message: 'the new token does not grant news/b', channel: 'news/b', id: refresh['id'] });
      socket.reply({ op: 'authenticated', id: refresh['id'], user: 'u42', expires: nowSeconds() + 100 });
      expect(watch.errors).toHaveLength(1);
      expect(watch.errors[0]).toBeInstanceOf(EdgePushError);
      expect(watch.errors[0]).toMatchObject({ code: 'forbidden', channel: 'news/b' });
      expect([kept.active, lost.active]).toEqual([true, false]);
      expect(client.state).toBe('connected');
      // The next connection carries only what is left.
      socket.drop(4001, 'server shutting down');
      await vi.advanceTimersByTimeAsync(1000);
      const next = await sockets.next();
      await handshake(next, 'jwt-2');
      await acceptSubscribe(next, 'c1');
      expect(next.ops('subscribe').map((op) => op['channel'])).toEqual(['news/a']);
      client.close();
    });

    it('tells its own unsubscribe apart from the server dropping a channel', async () => {
      const { WebSocket, sockets } = fakeWebSockets();
      const client = new EdgePush(URL, { ...QUIET, transports: ['ws'], WebSocket, token: 'jwt-1' });
      const watch = new ClientWatch(client);
      client.subscribe('news/a', watch.handler).unsubscribe();
      client.subscribe('news/b', watch.handler);
      const socket = await sockets.next();
      await handshake(socket, 'jwt-1');
      await acceptSubscribe(socket, 'c0');
      const again = client.subscribe('news/b2', watch.handler);
      await acceptSubscribe(socket, 'c0');
      again.unsubscribe();
      const resubscribed = client.subscribe('news/b2', watch.handler);
      await socket.nextOp('unsubscribe');
      // The answer to the unsubscribe arrives after the new subscribe went out.
      socket.reply({ op: 'unsubscribed', channel: 'news/b2' });
      await acceptSubscribe(socket, 'c0');
      socket.reply({ op: 'message', channel: 'news/b2', id: 'm1', ts: 1, data: 'still here', cursor: 'c1' });
      expect(watch.dataOf('news/b2')).toEqual(['still here']);
      expect(resubscribed.active).toBe(true);
      expect(watch.errors).toEqual([]);
      client.close();
    });

    it('a token the server refuses (4501) stops a client without getToken', async () => {
      const { WebSocket, sockets } = fakeWebSockets();
      const client = new EdgePush(URL, { ...QUIET, transports: ['ws'], WebSocket, token: 'jwt-bad' });
      const watch = new ClientWatch(client);
      client.subscribe('news/a', watch.handler);
      const socket = await sockets.next();
      socket.accept();
      const auth = await socket.nextOp('auth');
      socket.reply({ op: 'error', code: 'unauthorized', message: 'bad signature', id: auth['id'] });
      socket.drop(4501, 'unauthorized: no valid token');
      expect(client.state).toBe('closed');
      expect(watch.states.at(-1)?.error).toMatchObject({ code: '4501', status: 4501 });
      await vi.advanceTimersByTimeAsync(60_000);
      expect(sockets.all).toHaveLength(1);
    });

    it('a refused token (4501) with getToken: a new token after the backoff, then subscribe', async () => {
      const { WebSocket, sockets } = fakeWebSockets();
      const { getToken, calls } = tokens();
      const client = new EdgePush(URL, { ...QUIET, transports: ['ws'], WebSocket, getToken });
      client.subscribe('news/a', () => {});
      const socket = await sockets.next();
      socket.accept();
      await socket.nextOp('auth');
      socket.drop(4501, 'unauthorized: no valid token');
      expect(client.state).toBe('reconnecting');
      await vi.advanceTimersByTimeAsync(999);
      expect([sockets.all.length, calls()]).toEqual([1, 1]);
      await vi.advanceTimersByTimeAsync(1);
      const next = await sockets.next();
      await handshake(next, 'jwt-2');
      await acceptSubscribe(next, 'c0');
      expect(client.state).toBe('connected');
      client.close();
    });

    it('an expired token (4003) without getToken stops the client', async () => {
      const { WebSocket, sockets } = fakeWebSockets();
      const client = new EdgePush(URL, { ...QUIET, transports: ['ws'], WebSocket, token: 'jwt-1' });
      const watch = new ClientWatch(client);
      client.subscribe('news/a', watch.handler);
      const socket = await sockets.next();
      await handshake(socket, 'jwt-1');
      await acceptSubscribe(socket, 'c0');
      socket.drop(4003, 'token expired: reconnect with a new token and resume');
      expect(client.state).toBe('closed');
      expect(watch.states.at(-1)?.error).toMatchObject({ code: '4003' });
    });
  });

  describe('SSE and long-poll', () => {
    it('SSE: the token in the Authorization header; hello is recorded; 4003 → a new token, resume from the cursor', async () => {
      const { fetch, requests } = fakeFetch();
      const { getToken, calls } = tokens();
      const client = new EdgePush(URL, { ...QUIET, transports: ['sse'], fetch, getToken });
      const watch = new ClientWatch(client);
      client.subscribe('news/a', watch.handler);
      const first = await requests.next();
      expect([first.url.pathname, first.token, first.url.searchParams.has('token')]).toEqual(['/v1/sse', 'jwt-1', false]);
      const stream = first.openStream();
      stream.write('event: hello\ndata: {"session":"sse-1"}\n\nid: c1\n\n');
      stream.write(sseMessage('news/a', 'c2', 1));
      await vi.advanceTimersByTimeAsync(0);
      expect([client.session, client.state, watch.dataOf('news/a')]).toEqual(['sse-1', 'connected', [1]]);
      stream.write('event: disconnect\ndata: {"code":4003,"reason":"token expired","reconnect":true}\n\n');
      await vi.advanceTimersByTimeAsync(1000);
      const second = await requests.next();
      expect([second.token, second.url.searchParams.get('lastEventId'), calls()]).toEqual(['jwt-2', 'c2', 2]);
      second.openStream().write(`id: c2\n\n${sseMessage('news/a', 'c3', 2)}`);
      await vi.advanceTimersByTimeAsync(0);
      expect(watch.dataOf('news/a')).toEqual([1, 2]);
      client.close();
    });

    it('long-poll: a 401 gets a new token and is retried after the backoff, with the new token', async () => {
      const { fetch, requests } = fakeFetch();
      const { getToken, calls } = tokens();
      const client = new EdgePush(URL, { ...QUIET, transports: ['poll'], fetch, getToken });
      const watch = new ClientWatch(client);
      client.subscribe('news/a', watch.handler);
      const first = await requests.next();
      expect([first.url.pathname, first.token]).toEqual(['/v1/poll', 'jwt-1']);
      first.respond(401, { error: { code: 'unauthorized', message: 'token expired' } });
      await vi.advanceTimersByTimeAsync(999);
      expect([requests.all.length, calls(), client.state]).toEqual([1, 1, 'reconnecting']);
      await vi.advanceTimersByTimeAsync(1);
      const second = await requests.next();
      expect(second.token).toBe('jwt-2');
      second.respond(200, { messages: [{ channel: 'news/a', id: 'c1', ts: 1, data: 'hi' }], cursor: 'c1' });
      const third = await requests.next();
      expect([third.token, third.url.searchParams.get('cursor')]).toEqual(['jwt-2', 'c1']);
      expect(watch.dataOf('news/a')).toEqual(['hi']);
      client.close();
    });

    it('long-poll: a 401 stops a client without getToken', async () => {
      const { fetch, requests } = fakeFetch();
      const client = new EdgePush(URL, { ...QUIET, transports: ['poll'], fetch, token: 'jwt-1' });
      const watch = new ClientWatch(client);
      client.subscribe('news/a', watch.handler);
      (await requests.next()).respond(401, { error: { code: 'unauthorized', message: 'bad signature' } });
      await vi.advanceTimersByTimeAsync(0);
      expect(client.state).toBe('closed');
      expect(watch.states.at(-1)?.error).toMatchObject({ code: 'unauthorized', status: 401 });
    });

    it.each(['sse', 'poll'] as const)('%s: a 403 forbidden on subscribe ends that subscription, not the connection', async (transport) => {
      const { fetch, requests } = fakeFetch();
      const client = new EdgePush(URL, { ...QUIET, transports: [transport], fetch, token: 'jwt-1' });
      const watch = new ClientWatch(client);
      const kept = client.subscribe('news/a', watch.handler);
      const refused = client.subscribe('news/b', watch.handler);
      const first = await requests.next();
      expect(first.channels).toEqual(['news/a', 'news/b']);
      first.respond(403, { error: { code: 'forbidden', message: 'your token does not grant news/b', channel: 'news/b' } });
      // At once, without the refused channel: no backoff, the connection was never at fault.
      const second = await requests.next();
      expect(second.channels).toEqual(['news/a']);
      expect(watch.errors).toEqual([expect.objectContaining({ code: 'forbidden', status: 403, channel: 'news/b' })]);
      expect([kept.active, refused.active, client.state]).toEqual([true, false, 'connecting']);
      client.close();
    });

    it.each([
      ['sse', 429, 'too_many_connections'],
      ['poll', 503, 'over_capacity'],
    ] as const)('%s: waits at least Retry-After after a %i', async (transport, status, code) => {
      const { fetch, requests } = fakeFetch();
      const client = new EdgePush(URL, { ...QUIET, transports: [transport], fetch });
      const watch = new ClientWatch(client);
      client.subscribe('news/a', watch.handler);
      (await requests.next()).respond(status, { error: { code, message: 'slow down' } }, { 'retry-after': '7' });
      await vi.advanceTimersByTimeAsync(0);
      expect(watch.states.at(-1)).toMatchObject({ state: 'reconnecting', delayMs: 7000 });
      await vi.advanceTimersByTimeAsync(6999);
      expect(requests.all).toHaveLength(1);
      await vi.advanceTimersByTimeAsync(1);
      await requests.next();
      client.close();
    });
  });

  describe('publish', () => {
    it('honours Retry-After on a 429, and retries a 401 with a new token and the same key', async () => {
      const { fetch, requests } = fakeFetch();
      const { getToken } = tokens();
      const client = new EdgePush(URL, { ...QUIET, fetch, getToken, transports: ['poll'] });
      const published = client.publish('chat/room1', { text: 'hello' });
      const first = await requests.next();
      first.respond(429, { error: { code: 'rate_limited', message: 'too many publishes' } }, { 'retry-after': '3' });
      await vi.advanceTimersByTimeAsync(2999);
      expect(requests.all).toHaveLength(1);
      await vi.advanceTimersByTimeAsync(1);
      const second = await requests.next();
      second.respond(401, { error: { code: 'unauthorized', message: 'token expired' } });
      await vi.advanceTimersByTimeAsync(2000);
      const third = await requests.next();
      third.respond(201, { ids: ['c9'] });
      expect(await published).toBe('c9');
      expect([first, second, third].map((r) => r.token)).toEqual(['jwt-1', 'jwt-1', 'jwt-2']);
      expect(new Set([first, second, third].map((r) => r.headers.get('idempotency-key'))).size).toBe(1);
      client.close();
    });

    it('a 401 without getToken rejects at once', async () => {
      const { fetch, requests } = fakeFetch();
      const client = new EdgePush(URL, { ...QUIET, fetch, token: 'jwt-1', transports: ['poll'] });
      const published = client.publish('chat/room1', 'hello');
      (await requests.next()).respond(401, { error: { code: 'unauthorized', message: 'bad signature' } });
      await expect(published).rejects.toMatchObject({ code: 'unauthorized', status: 401 });
      expect(requests.all).toHaveLength(1);
      client.close();
    });
  });

  describe('a getToken that fails', () => {
    it('is called with a backoff, one call at a time, however many parts of the client need a token', async () => {
      const { WebSocket, sockets } = fakeWebSockets();
      const calls: number[] = [];
      let inFlight = 0;
      let mostInFlight = 0;
      const start = Date.now();
      const getToken = async (): Promise<string> => {
        calls.push(Date.now() - start);
        mostInFlight = Math.max(mostInFlight, ++inFlight);
        await Promise.resolve();
        inFlight--;
        throw new Error('the backend is down');
      };
      const client = new EdgePush(URL, { ...QUIET, transports: ['ws'], WebSocket, getToken, publishRetries: 5 });
      const watch = new ClientWatch(client);
      client.subscribe('news/a', watch.handler);
      const published = client.publish('chat/room1', 'hello');
      published.catch(() => {});
      await vi.advanceTimersByTimeAsync(60_000);
      // 1 s, 2 s, 4 s, then 8 s apart (the cap), whether the connection or the publish asked.
      expect(calls).toEqual([0, 1000, 3000, 7000, 15_000, 23_000, 31_000, 39_000, 47_000, 55_000]);
      expect(mostInFlight).toBe(1);
      await expect(published).rejects.toMatchObject({ code: 'unavailable', message: /getToken\(\) failed: the backend is down/ });
      expect(sockets.all).toEqual([]);
      expect(watch.states.at(-1)).toMatchObject({ state: 'reconnecting', reason: expect.stringMatching(/getToken/) });
      client.close();
      await vi.advanceTimersByTimeAsync(60_000);
      expect(calls).toHaveLength(10);
    });

    it('shares one call between a connection and a publish that need a token at the same time', async () => {
      const { fetch, requests } = fakeFetch();
      const answer = deferred<string>();
      const getToken = vi.fn(() => answer.promise);
      const client = new EdgePush(URL, { ...QUIET, transports: ['poll'], fetch, getToken });
      client.subscribe('news/a', () => {});
      const published = client.publish('chat/room1', 'hello');
      await vi.advanceTimersByTimeAsync(0);
      expect(getToken).toHaveBeenCalledTimes(1);
      answer.resolve('jwt-1');
      const both = [await requests.next(), await requests.next()];
      expect(both.map((r) => [r.url.pathname, r.token]).sort()).toEqual([
        ['/v1/poll', 'jwt-1'],
        ['/v1/publish', 'jwt-1'],
      ]);
      both.find((r) => r.url.pathname === '/v1/publish')?.respond(201, { ids: ['c1'] });
      expect(await published).toBe('c1');
      client.close();
    });
  });
});

describe('identity over a real WebSocket', () => {
  it('an expired token (4003): getToken, reconnect, resume from the cursor, nothing lost or twice', async () => {
    const server = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise((resolve) => server.once('listening', resolve));
    const seen: { token: unknown; subscribe: Op | undefined }[] = [];
    // Connection 1 delivers two messages, then the token expires; connection 2 resumes after them.
    const script = (socket: ServerSocket, connection: number): void => {
      const send = (op: Op): void => socket.send(JSON.stringify(op));
      const record = { token: undefined as unknown, subscribe: undefined as Op | undefined };
      seen.push(record);
      send({ op: 'hello', session: `s${connection}`, version: '0.1.0', heartbeat: 15 });
      socket.on('message', (raw) => {
        const op = JSON.parse(String(raw)) as Op;
        if (op.op === 'auth') {
          record.token = op['token'];
          send({ op: 'authenticated', id: op['id'], user: 'u42', expires: nowSeconds() + 3600 });
        } else if (op.op === 'subscribe') {
          record.subscribe = op;
          if (connection === 1) {
            send({ op: 'subscribed', channel: 'jobs/1', cursor: 'c0', resumed: false });
            send({ op: 'message', channel: 'jobs/1', id: 'c1', ts: 1, data: 1, cursor: 'c1' });
            send({ op: 'message', channel: 'jobs/1', id: 'c2', ts: 2, data: 2, cursor: 'c2' });
            socket.close(4003, 'token expired: reconnect with a new token and resume');
          } else {
            send({ op: 'subscribed', channel: 'jobs/1', cursor: String(op['cursor']), resumed: true });
            send({ op: 'message', channel: 'jobs/1', id: 'c3', ts: 3, data: 3, cursor: 'c3' });
          }
        } else if (op.op === 'ping') {
          send({ op: 'pong', id: op['id'] });
        }
      });
    };
    let connections = 0;
    server.on('connection', (socket) => script(socket, ++connections));
    const { port } = server.address() as { port: number };
    const { getToken, calls } = tokens();
    const client = new EdgePush(`http://127.0.0.1:${port}`, { transports: ['ws'], getToken, rememberTransport: false, backoff: { initialDelay: 10, maxDelay: 50 } });
    const watch = new ClientWatch(client);
    try {
      client.subscribe('jobs/1', watch.handler);
      await watch.waitFor(() => watch.messages.length >= 3, 'three messages across the expiry');
      expect(watch.dataOf('jobs/1')).toEqual([1, 2, 3]);
      expect(seen.map((s) => s.token)).toEqual(['jwt-1', 'jwt-2']);
      expect(seen[1]?.subscribe).toMatchObject({ channel: 'jobs/1', cursor: 'c2' });
      expect(calls()).toBe(2);
      expect(watch.states.map((s) => s.state)).toEqual(['connecting', 'connected', 'reconnecting', 'connecting', 'connected']);
    } finally {
      client.close();
      for (const socket of server.clients) socket.terminate();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
