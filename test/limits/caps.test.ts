/**
 * The connection caps as a client meets them: per address (429 too_many_connections) and in all
 * (503 over_capacity), each with Retry-After, for SSE, the WebSocket upgrade (an HTTP status before
 * the upgrade) and held long-polls; a released connection frees its slot. Then the rate limits a
 * client must be able to satisfy by waiting as it is told.
 *
 * Each test's client comes from its own loopback address (127.0.0.x), as distinct users would.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type WebSocket from 'ws';
import type { RunningServer } from '../../src/start.js';
import {
  closed,
  errorCodeOf,
  errorShapeProblem,
  eventually,
  httpRequest,
  keepAliveAgent,
  metricSum,
  metricValue,
  openSse,
  openWebSocket,
  scrapeMetrics,
  type HttpAnswer,
  type SseAttempt,
} from '../helpers/limit-clients.js';
import { startTestServer } from '../helpers/server.js';

type Transport = 'sse' | 'ws' | 'poll';

/** One streaming connection held from `address`, or the refusal it got. */
interface Held {
  readonly refusal: HttpAnswer | undefined;
  release(): Promise<void>;
}

const CHANNEL = 'caps/a';

async function cursorOf(url: string): Promise<string> {
  const answer = await httpRequest(url, `/v1/poll?channel=${CHANNEL}&timeout=0`);
  return (JSON.parse(answer.text) as { cursor: string }).cursor;
}

async function hold(url: string, transport: Transport, address: string, headers: Record<string, string> = {}): Promise<Held> {
  switch (transport) {
    case 'sse': {
      const attempt: SseAttempt = await openSse(url, `channel=${CHANNEL}`, { localAddress: address, headers });
      if (attempt.status !== 200) return { refusal: attempt, release: async () => {} };
      return { refusal: undefined, release: async () => attempt.close() };
    }
    case 'ws': {
      const attempt = await openWebSocket(url, '', { localAddress: address, headers });
      if (attempt.kind === 'refused') return { refusal: attempt, release: async () => {} };
      const socket: WebSocket = attempt.socket;
      return {
        refusal: undefined,
        release: async () => {
          socket.close();
          await closed(socket);
        },
      };
    }
    case 'poll': {
      // A poll with a cursor and nothing after it is held until its timeout: a connection like a
      // stream. A held poll says nothing until it is answered: a refusal comes at once, an
      // admission shows in the server's gauge of held polls.
      const cursor = await cursorOf(url);
      const before = await connections(url, 'poll');
      const abort = new AbortController();
      let answer: HttpAnswer | undefined;
      let failure: unknown;
      const request = httpRequest(url, `/v1/poll?channel=${CHANNEL}&timeout=30&cursor=${encodeURIComponent(cursor)}`, { localAddress: address, headers, timeoutMs: 60_000, signal: abort.signal });
      request.then(
        (value) => (answer = value),
        (error: unknown) => (failure = error),
      );
      await eventually(async () => answer !== undefined || failure !== undefined || (await connections(url, 'poll')) > before, 'the poll held or refused');
      if (answer !== undefined) return { refusal: answer, release: async () => {} };
      if (failure !== undefined) throw failure;
      return { refusal: undefined, release: async () => abort.abort() };
    }
  }
}

async function connections(url: string, transport: Transport): Promise<number> {
  return metricValue(await scrapeMetrics(url), 'edgepush_connections', { transport });
}

function expectRefusal(refusal: HttpAnswer | undefined, status: number, code: string, retryAfter?: string): void {
  expect(refusal, 'the connection was admitted').toBeDefined();
  const answer = refusal as HttpAnswer;
  expect(answer.status).toBe(status);
  expect(errorShapeProblem(answer.status, answer.headers, answer.text)).toBeUndefined();
  expect(errorCodeOf(answer)).toBe(code);
  const header = answer.headers['retry-after'];
  expect(header, 'Retry-After').toMatch(/^[1-9][0-9]*$/);
  if (retryAfter !== undefined) expect(header).toBe(retryAfter);
}

describe.each<Transport>(['sse', 'ws', 'poll'])('connection caps: %s', (transport) => {
  let server: RunningServer;
  const held: Held[] = [];
  beforeAll(async () => {
    server = await startTestServer({ maxConnections: 5, maxConnectionsPerIp: 2, connectionRatePerIp: 1_000_000, pollMaxTimeout: 60 });
  });
  afterEach(async () => {
    for (const connection of held.splice(0)) await connection.release();
    await eventually(async () => (await connections(server.url, transport)) === 0, 'every connection released');
  });
  afterAll(async () => {
    await server.close();
  });

  it('refuses a third connection from one address with 429 too_many_connections and Retry-After; others still get in', async () => {
    for (let i = 0; i < 2; i++) {
      const connection = await hold(server.url, transport, '127.0.0.10');
      expect(connection.refusal).toBeUndefined();
      held.push(connection);
    }
    const third = await hold(server.url, transport, '127.0.0.10');
    expectRefusal(third.refusal, 429, 'too_many_connections');
    // Another address is another client.
    const other = await hold(server.url, transport, '127.0.0.11');
    expect(other.refusal).toBeUndefined();
    held.push(other);
  });

  it('frees the slot when a connection is released', async () => {
    const first = await hold(server.url, transport, '127.0.0.12');
    const second = await hold(server.url, transport, '127.0.0.12');
    held.push(second);
    expect([first.refusal, second.refusal]).toEqual([undefined, undefined]);
    expectRefusal((await hold(server.url, transport, '127.0.0.12')).refusal, 429, 'too_many_connections');
    await first.release();
    await eventually(async () => (await connections(server.url, transport)) === 1, 'the released connection gone on the server');
    const again = await hold(server.url, transport, '127.0.0.12');
    expect(again.refusal).toBeUndefined();
    held.push(again);
  });

  it('refuses past maxConnections in all with 503 over_capacity and Retry-After: 5, until one is released', async () => {
    // Five connections from three addresses (two each at most): the server is full.
    for (const address of ['127.0.0.20', '127.0.0.20', '127.0.0.21', '127.0.0.21', '127.0.0.22']) {
      const connection = await hold(server.url, transport, address);
      expect(connection.refusal, address).toBeUndefined();
      held.push(connection);
    }
    const over = await hold(server.url, transport, '127.0.0.23');
    expectRefusal(over.refusal, 503, 'over_capacity', '5');
    expect(metricValue(await scrapeMetrics(server.url), 'edgepush_limited_total', { limit: 'connections' })).toBe(1);
    const released = held.shift() as Held;
    await released.release();
    await eventually(async () => (await connections(server.url, transport)) === 4, 'the released connection gone on the server');
    const admitted = await hold(server.url, transport, '127.0.0.23');
    expect(admitted.refusal).toBeUndefined();
    held.push(admitted);
  });

  it('counts the capacity refusal above as a limit, not as bad input', async () => {
    const text = await scrapeMetrics(server.url);
    expect(metricValue(text, 'edgepush_limited_total', { limit: 'connections' })).toBe(1);
    // Capacity is the server's state, not the client's mistake: like every other 503, not bad input.
    expect(metricSum(text, 'edgepush_bad_input_total', { code: 'over_capacity' }), 'edgepush_bad_input_total{code="over_capacity"}').toBe(0);
  });
});

describe('connection caps across transports', () => {
  let server: RunningServer;
  const held: Held[] = [];
  beforeAll(async () => {
    server = await startTestServer({ maxConnections: 100, maxConnectionsPerIp: 3, connectionRatePerIp: 1_000_000, pollMaxTimeout: 60 });
  });
  afterAll(async () => {
    for (const connection of held.splice(0)) await connection.release();
    await server.close();
  });

  it('counts an SSE stream, a WebSocket and a held poll against the same per-address cap', async () => {
    for (const transport of ['sse', 'ws', 'poll'] as const) {
      const connection = await hold(server.url, transport, '127.0.0.30');
      expect(connection.refusal, transport).toBeUndefined();
      held.push(connection);
    }
    for (const transport of ['sse', 'ws', 'poll'] as const) {
      expectRefusal((await hold(server.url, transport, '127.0.0.30')).refusal, 429, 'too_many_connections');
    }
    const text = await scrapeMetrics(server.url);
    expect(metricValue(text, 'edgepush_limited_total', { limit: 'connections_per_ip' })).toBe(3);
  });

  it('does not count requests that hold nothing (history, a poll answered at once, publish)', async () => {
    for (let i = 0; i < 20; i++) {
      expect((await httpRequest(server.url, `/v1/history?channel=${CHANNEL}`, { localAddress: '127.0.0.31' })).status).toBe(200);
      expect((await httpRequest(server.url, `/v1/poll?channel=${CHANNEL}&timeout=0`, { localAddress: '127.0.0.31' })).status).toBe(200);
    }
    for (let i = 0; i < 3; i++) expect((await hold(server.url, 'sse', '127.0.0.31')).refusal).toBeUndefined();
  });
});

describe('connection caps behind a proxy (trustProxy)', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startTestServer({ trustProxy: true, maxConnections: 100, maxConnectionsPerIp: 1, connectionRatePerIp: 1_000_000, pollMaxTimeout: 60 });
  });
  afterAll(async () => {
    await server.close();
  });

  it('counts each transport against the client address X-Forwarded-For names, not the proxy\'s', async () => {
    // Every request comes from one proxy (127.0.0.50); the header names the client before it.
    const proxy = '127.0.0.50';
    for (const transport of ['sse', 'ws', 'poll'] as const) {
      const client = transport === 'sse' ? '198.51.100.1' : transport === 'ws' ? '198.51.100.2' : '198.51.100.3';
      const first = await hold(server.url, transport, proxy, { 'x-forwarded-for': `${client}, 10.0.0.9` });
      expect(first.refusal, transport).toBeUndefined();
      expectRefusal((await hold(server.url, transport, proxy, { 'x-forwarded-for': client })).refusal, 429, 'too_many_connections');
      const other = await hold(server.url, transport, proxy, { 'x-forwarded-for': `${client}0` });
      expect(other.refusal, `${transport}: another client behind the same proxy`).toBeUndefined();
      await first.release();
      await other.release();
    }
  });
});

describe('connectionRatePerIp', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startTestServer({ connectionRatePerIp: 5 });
  });
  afterAll(async () => {
    await server.close();
  });

  it('refuses new connections past the burst with 429, Retry-After and connection: close; keep-alive requests are free', async () => {
    const agent = keepAliveAgent('127.0.0.40', 1);
    // One kept-alive connection, opened first: its requests are not new connections.
    expect((await httpRequest(server.url, '/healthz', { agent })).status).toBe(200);
    const answers: HttpAnswer[] = [];
    for (let i = 0; i < 30; i++) answers.push(await httpRequest(server.url, '/healthz', { localAddress: '127.0.0.40' }));
    const refused = answers.filter((answer) => answer.status === 429);
    // A burst of 2 × 5 per second: at most 10 connections (and whatever trickled in meanwhile) got in.
    expect(refused.length).toBeGreaterThan(0);
    for (const answer of refused) {
      expect(errorCodeOf(answer)).toBe('too_many_connections');
      expect(answer.headers['connection']).toBe('close');
      expect(answer.headers['retry-after']).toMatch(/^[1-9][0-9]*$/);
    }
    for (let i = 0; i < 30; i++) expect((await httpRequest(server.url, '/healthz', { agent })).status).toBe(200);
    agent.destroy();
    const text = await scrapeMetrics(server.url);
    expect(metricValue(text, 'edgepush_limited_total', { limit: 'connection_rate_per_ip' })).toBe(refused.length);
  });

  it('counts a long-poll\'s new connection the same way, and lets kept-alive polls through', async () => {
    const agent = keepAliveAgent('127.0.0.41', 1);
    const path = `/v1/poll?channel=${CHANNEL}&timeout=0`;
    expect((await httpRequest(server.url, path, { agent })).status).toBe(200);
    const answers: HttpAnswer[] = [];
    for (let i = 0; i < 30; i++) answers.push(await httpRequest(server.url, path, { localAddress: '127.0.0.41' }));
    const refused = answers.filter((answer) => answer.status === 429);
    expect(refused.length).toBeGreaterThan(0);
    expect(answers.filter((answer) => answer.status !== 429 && answer.status !== 200)).toEqual([]);
    for (const answer of refused) {
      expect(errorShapeProblem(answer.status, answer.headers, answer.text)).toBeUndefined();
      expect(errorCodeOf(answer)).toBe('too_many_connections');
      expect(answer.headers['connection']).toBe('close');
      expect(answer.headers['retry-after']).toMatch(/^[1-9][0-9]*$/);
      expect(answer.headers['access-control-allow-origin']).toBe('*');
    }
    for (let i = 0; i < 30; i++) expect((await httpRequest(server.url, path, { agent })).status).toBe(200);
    agent.destroy();
  });
});

describe('rate limits a client can satisfy', () => {
  it('lets a fresh address in when connectionRatePerIp is below one per second (0.25: one connection every 4 s)', async () => {
    // The option's minimum is 0.1; the burst is twice the rate. Below 0.5 the burst holds less
    // than one token, so no connection could ever be admitted.
    const server = await startTestServer({ connectionRatePerIp: 0.25 });
    try {
      const answer = await httpRequest(server.url, '/healthz', { localAddress: '127.0.0.50' });
      expect(answer.status, answer.text).toBe(200);
    } finally {
      await server.close();
    }
  });

  it('refuses a batch larger than the publishRate burst with 400 bad_request: a 429 could never be satisfied', async () => {
    // publishRate 1: bursts of 2. A batch of 3 is refused with 429 rate_limited, which says "retry
    // after Retry-After seconds": doing exactly that must eventually work (or the refusal must not
    // be a retryable 429). Three honest retries, each after the time the server asked for.
    const server = await startTestServer({ publishRate: 1 });
    try {
      const body = JSON.stringify({ messages: [1, 2, 3].map((data) => ({ channel: 'caps/batch', data })) });
      const statuses: string[] = [];
      for (let attempt = 0; attempt < 4; attempt++) {
        const answer = await httpRequest(server.url, '/v1/publish', { method: 'POST', headers: { 'content-type': 'application/json' }, body, localAddress: '127.0.0.51' });
        statuses.push(`${answer.status} ${errorCodeOf(answer) ?? ''}`.trim());
        if (answer.status !== 429) break;
        const wait = Number(answer.headers['retry-after']);
        expect(wait).toBeGreaterThan(0);
        expect(wait).toBeLessThanOrEqual(10);
        // Honouring Retry-After is the behaviour under test, not a way to synchronise.
        await new Promise((resolve) => setTimeout(resolve, wait * 1000));
      }
      // Over the burst: a 400 that says so, not a 429 the client would retry for ever.
      expect(statuses, `answers: ${statuses.join(', ')}`).toEqual(['400 bad_request']);
    } finally {
      await server.close();
    }
  });
});
