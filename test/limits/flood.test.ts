/**
 * Flood: one abusive client opens connections as fast as it can and publishes as fast as it can
 * over HTTP and over a WebSocket, while well-behaved subscribers (a WebSocket and an SSE stream)
 * receive a known sequence published by a backend at a modest pace. The abuser must be refused
 * with the documented codes (counted, and matched by /metrics), the subscribers must get every
 * message exactly once and in order, and the server must still answer afterwards.
 *
 * Limits are per client address. The abuser uses its own loopback addresses (127.0.0.2-4), as a
 * real one would come from elsewhere; the good clients and the backend come from 127.0.0.1, and
 * are connected before the flood starts anyway. Every loop is bounded in count and in time.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type WebSocket from 'ws';
import type { RunningServer } from '../../src/start.js';
import {
  closed,
  errorCodeOf,
  errorShapeProblem,
  httpRequest,
  keepAliveAgent,
  metricValue,
  openSse,
  openWebSocket,
  scrapeMetrics,
  type HttpAnswer,
  type SseAttempt,
} from '../helpers/limit-clients.js';
import { startTestServer } from '../helpers/server.js';
import { SseTestClient } from '../helpers/sse-client.js';
import { WsTestClient } from '../helpers/ws-client.js';

const API_KEY = 'flood-test-backend-api-key-0001';
/** Messages the backend publishes to the good subscribers. */
const N = 200;
const LIMITS = { maxConnections: 80, maxConnectionsPerIp: 50, connectionRatePerIp: 20, opRate: 50, publishRate: 20 } as const;
/** The whole flood stops after this long, whatever is left of its budgets. */
const FLOOD_MS = 10_000;

/** Answers counted by `status code` (e.g. `429 too_many_connections`), plus anything unexpected. */
class Tally {
  readonly counts = new Map<string, number>();
  readonly problems: string[] = [];

  add(key: string): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  get(key: string): number {
    return this.counts.get(key) ?? 0;
  }

  /** An HTTP refusal: counted by status and code, and checked for the documented shape and Retry-After. */
  refusal(answer: HttpAnswer): string | undefined {
    const code = errorCodeOf(answer);
    this.add(`${answer.status} ${code ?? '?'}`);
    const problem = errorShapeProblem(answer.status, answer.headers, answer.text);
    if (problem) this.problems.push(`${answer.status}: ${problem}`);
    else if (answer.status === 429 || answer.status === 503) {
      if (!/^[1-9][0-9]*$/.test(String(answer.headers['retry-after']))) this.problems.push(`${answer.status} ${code} without a Retry-After`);
    }
    return code;
  }

  toJSON(): Record<string, number> {
    return Object.fromEntries(this.counts);
  }
}

describe('flood', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startTestServer({
      ...LIMITS,
      apiKeys: API_KEY,
      anonymousCaps: [
        { match: 'flood/#', allow: ['sub', 'pub'] },
        { match: 'good/#', allow: ['sub'] },
      ],
    });
  });
  afterAll(async () => {
    await server.close();
  });

  it('refuses the abuser with the documented codes while well-behaved subscribers get every message once, in order', async () => {
    // The well-behaved clients hold their connections before anything starts.
    const goodWs = new WsTestClient(server.url, ['good/seq']);
    const goodSse = new SseTestClient(server.url, ['good/seq']);
    await Promise.all([goodWs.ready, goodSse.ready]);

    const deadline = Date.now() + FLOOD_MS;
    const http = new Tally();
    const ws = new Tally();
    const network: string[] = [];
    const held = new Map<string, SseAttempt[]>();

    // The abuser's own WebSocket and keep-alive HTTP connections, opened before its connection flood.
    const abuserWs = await openWebSocket(server.url, '', { localAddress: '127.0.0.4' });
    if (abuserWs.kind !== 'open') throw new Error(`the abuser's WebSocket was refused: ${abuserWs.status}`);
    const abuserAgent = keepAliveAgent('127.0.0.4', 8);

    /** New connections as fast as possible from `address` (32 at a time), holding every stream admitted. */
    const connectionFlood = async (address: string, budget: number, done: () => boolean): Promise<void> => {
      const streams: SseAttempt[] = [];
      held.set(address, streams);
      let left = budget;
      const worker = async (): Promise<void> => {
        while (left > 0 && Date.now() < deadline && !done()) {
          left--;
          try {
            const attempt = await openSse(server.url, 'channel=flood/streams', { localAddress: address });
            if (attempt.status === 200) {
              streams.push(attempt);
              http.add('200 stream');
            } else {
              const code = http.refusal(attempt);
              if (code === 'too_many_connections') http.add(/per second/.test(attempt.text) ? 'rate refusal' : 'cap refusal');
              if (code === 'too_many_connections' && attempt.headers['connection'] !== 'close' && /per second/.test(attempt.text)) http.problems.push('a connection-rate refusal without connection: close');
            }
          } catch (error) {
            network.push(`${address}: ${(error as Error).message}`);
          }
        }
      };
      await Promise.all(Array.from({ length: 32 }, worker));
    };

    const connectionFloods = (async () => {
      // One address until it meets its per-address cap (new connections per second refused on the way)...
      await connectionFlood('127.0.0.2', 5_000, () => http.get('cap refusal') > 0);
      // ...then another, until the server is full.
      await connectionFlood('127.0.0.3', 1_000, () => http.get('503 over_capacity') > 0);
    })();

    const httpPublishFlood = (async () => {
      let left = 3_000;
      const worker = async (): Promise<void> => {
        while (left > 0 && Date.now() < deadline) {
          const n = left--;
          try {
            const answer = await httpRequest(server.url, '/v1/publish', {
              method: 'POST',
              agent: abuserAgent,
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify({ channel: 'flood/http', data: { n } }),
            });
            if (answer.status === 201) http.add('201 published');
            else http.refusal(answer);
          } catch (error) {
            network.push(`publish: ${(error as Error).message}`);
          }
        }
      };
      await Promise.all(Array.from({ length: 8 }, worker));
    })();

    let wsCloseCode: number | undefined;
    let wsFrames = 0;
    const wsFlood = (async () => {
      const socket: WebSocket = abuserWs.socket;
      socket.on('message', (data) => {
        const op = JSON.parse(data.toString()) as Record<string, unknown>;
        if (op['op'] === 'error') {
          ws.add(`error ${String(op['code'])}`);
          if (op['code'] === 'rate_limited') ws.add(typeof op['id'] === 'string' && op['id'].startsWith('pub') ? 'publish refusal' : 'op refusal');
          if (typeof op['message'] !== 'string' || typeof op['code'] !== 'string') ws.problems.push(`error op not in the documented shape: ${data.toString().slice(0, 120)}`);
        } else ws.add(String(op['op']));
      });
      const closing = closed(socket).then((code) => (wsCloseCode = code));
      // Batches of 500 frames (publishes and pings), each batch written out before the next.
      while (socket.readyState === socket.OPEN && wsFrames < 20_000 && Date.now() < deadline) {
        await new Promise<void>((resolve) => {
          for (let i = 0; i < 500; i++) {
            wsFrames++;
            const frame = wsFrames % 2 === 0 ? { op: 'publish', channel: 'flood/ws', data: wsFrames, id: `pub-${wsFrames}` } : { op: 'ping', id: `ping-${wsFrames}` };
            socket.send(JSON.stringify(frame), i === 499 ? () => resolve() : undefined);
          }
        });
      }
      if (socket.readyState === socket.OPEN) socket.close();
      await closing;
    })();

    // The backend: N messages at a modest pace (the pause paces the load, it synchronises nothing).
    const backendAgent = keepAliveAgent(undefined, 1);
    const backendStatuses: number[] = [];
    const backend = (async () => {
      for (let seq = 0; seq < N; seq++) {
        const answer = await httpRequest(server.url, '/v1/publish', {
          method: 'POST',
          agent: backendAgent,
          headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` },
          body: JSON.stringify({ channel: 'good/seq', data: { seq } }),
        });
        backendStatuses.push(answer.status);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })();

    await Promise.all([connectionFloods, httpPublishFlood, wsFlood, backend]);
    const summary = JSON.stringify({ http: http.toJSON(), ws: ws.toJSON(), wsCloseCode, wsFrames, network: network.slice(0, 5) });
    console.log(`flood: ${summary}`);

    // The backend was never refused, and the good subscribers got all N, once each, in order, and are still connected.
    expect(backendStatuses.filter((status) => status !== 201), summary).toEqual([]);
    const marker = await httpRequest(server.url, '/v1/publish', {
      method: 'POST',
      agent: backendAgent,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` },
      body: JSON.stringify({ channel: 'good/seq', data: 'end' }),
    });
    expect(marker.status).toBe(201);
    const expected = [...Array.from({ length: N }, (_, seq) => ({ seq })), 'end'];
    for (const client of [goodWs, goodSse]) {
      await client.waitFor(() => client.received.length >= N + 1 || client.ended !== undefined, `${N} messages and the marker`);
      expect(client.ended).toBeUndefined();
      expect(client.received.map((message) => message.data)).toEqual(expected);
    }

    // The abuser was refused, by every limit it ran into, with the documented answers.
    expect(http.problems, summary).toEqual([]);
    expect(ws.problems, summary).toEqual([]);
    expect(network, summary).toEqual([]);
    expect(http.get('rate refusal'), summary).toBeGreaterThan(0);
    expect(http.get('cap refusal'), summary).toBeGreaterThan(0);
    expect(http.get('503 over_capacity'), summary).toBeGreaterThan(0);
    expect(http.get('429 rate_limited'), summary).toBeGreaterThan(0);
    expect(ws.get('publish refusal'), summary).toBeGreaterThan(0);
    expect(ws.get('op refusal'), summary).toBeGreaterThan(0);
    expect(wsCloseCode, summary).toBe(4029);
    // Nothing else came back: streams admitted, publishes accepted, acks and pongs, and those refusals.
    expect([...http.counts.keys()].filter((key) => !['200 stream', '201 published', '429 too_many_connections', 'rate refusal', 'cap refusal', '503 over_capacity', '429 rate_limited'].includes(key)), summary).toEqual([]);
    expect([...ws.counts.keys()].filter((key) => !['ack', 'pong', 'hello', 'error rate_limited', 'publish refusal', 'op refusal'].includes(key)), summary).toEqual([]);
    // The caps held exactly: one address got its 50 streams, and no more.
    expect(held.get('127.0.0.2')?.length, summary).toBe(LIMITS.maxConnectionsPerIp);
    expect((held.get('127.0.0.2')?.length ?? 0) + (held.get('127.0.0.3')?.length ?? 0), summary).toBeLessThanOrEqual(LIMITS.maxConnections - 2);

    // /metrics counts the same refusals.
    const metrics = await scrapeMetrics(server.url, API_KEY);
    const limited = (limit: string): number => metricValue(metrics, 'edgepush_limited_total', { limit });
    expect(limited('connection_rate_per_ip') + limited('connections_per_ip'), summary).toBe(http.get('429 too_many_connections'));
    expect(limited('connection_rate_per_ip'), summary).toBe(http.get('rate refusal'));
    expect(limited('connections_per_ip'), summary).toBe(http.get('cap refusal'));
    expect(limited('connections'), summary).toBe(http.get('503 over_capacity'));
    expect(limited('publish_rate'), summary).toBe(http.get('429 rate_limited') + ws.get('publish refusal'));
    // More than ten times the op rate was refused within a second: that is what closed the socket.
    expect(limited('op_rate'), summary).toBeGreaterThan(10 * LIMITS.opRate);

    // Everyone lets go; the server still answers, and a newcomer gets in.
    for (const streams of held.values()) for (const stream of streams) stream.close();
    abuserAgent.destroy();
    backendAgent.destroy();
    goodWs.drop();
    goodSse.drop();
    const health = await httpRequest(server.url, '/healthz', { localAddress: '127.0.0.5' });
    expect(health.status).toBe(200);
    expect(JSON.parse(health.text)).toMatchObject({ status: 'ok' });
  });
});
