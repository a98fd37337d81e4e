/**
 * The server API across nodes (real broker, two edgepush processes): a backend talks to node one,
 * and a user's live connections on node two change — subscribed, unsubscribed, disconnected —
 * because the commands travel through Kafka's control topic, which every node reads.
 */
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kafkaAvailability, startKafka, type KafkaBroker } from '../kafka/broker.mjs';
import { EdgepushProcess, ensureBuilt } from '../helpers/edgepush-process.js';
import { createTopic } from '../helpers/kafka-backend.js';
import { SseTestClient } from '../helpers/sse-client.js';

const avail = kafkaAvailability();
const TOPIC = 'serverapi';
const SECRET = 'server-api-test-secret-of-at-least-32-bytes';
const API_KEY = 'backend-key-0123456789';

const title = `the server API acts on every node through the log${avail.ok ? '' : ` — SKIPPED: ${avail.reason}`}`;

function token(user: string): Promise<string> {
  // The user may subscribe to nothing by themselves: every channel below is the backend's doing.
  return new SignJWT({ sub: user, edgepush: { caps: [{ match: 'public/#', allow: ['sub'] }] } })
    .setProtectedHeader({ alg: 'HS256' })
    .setExpirationTime('10m')
    .sign(new TextEncoder().encode(SECRET));
}

/** A WebSocket that records every op it receives and can wait for one. */
class OpSocket {
  readonly ops: Record<string, unknown>[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly #socket: WebSocket;
  #waiters: (() => void)[] = [];

  constructor(url: string) {
    this.#socket = new WebSocket(url);
    this.#socket.on('message', (data) => {
      this.ops.push(JSON.parse(data.toString()) as Record<string, unknown>);
      for (const wake of this.#waiters.splice(0)) wake();
    });
    this.closed = new Promise((resolve) => this.#socket.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    this.#socket.on('error', () => {});
  }

  async next(what: string, match: (op: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
    for (;;) {
      const found = this.ops.find(match);
      if (found) return found;
      await Promise.race([
        new Promise<void>((resolve) => this.#waiters.push(resolve)),
        this.closed.then(() => {
          throw new Error(`socket closed while waiting for ${what}; got ${JSON.stringify(this.ops)}`);
        }),
      ]);
    }
  }

  send(op: Record<string, unknown>): void {
    this.#socket.send(JSON.stringify(op));
  }

  close(): void {
    this.#socket.close();
  }
}

async function post(node: EdgepushProcess, path: string, body: unknown): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`${node.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: response.status, body: await response.json() };
}

describe.skipIf(!avail.ok)(title, () => {
  let broker: KafkaBroker;
  let one: EdgepushProcess;
  let two: EdgepushProcess;

  beforeAll(async () => {
    const [started] = await Promise.all([startKafka({ version: 'latest' }), ensureBuilt()]);
    broker = started;
    await createTopic(broker.bootstrap, TOPIC, 2);
    const config = { jwtSecret: SECRET, apiKeys: API_KEY, kafka: { brokers: [broker.bootstrap], topics: [{ topic: TOPIC }], publishTopic: TOPIC, controlTopic: 'serverapi-control' } };
    [one, two] = await Promise.all([EdgepushProcess.start({ config }), EdgepushProcess.start({ config })]);
  }, 10 * 60_000);

  afterAll(async () => {
    await Promise.allSettled([one?.stop(), two?.stop()]);
    await broker?.stop();
  }, 60_000);

  it('subscribes a user on another node, by user and by session, then unsubscribes and disconnects', async () => {
    const socket = new OpSocket(`${two.url.replace('http', 'ws')}/v1/ws?token=${await token('u7')}`);
    const hello = await socket.next('hello', (op) => op['op'] === 'hello');
    expect(hello).toMatchObject({ user: 'u7' });

    // By user, through node one: node two's connection is subscribed and receives the channel.
    expect(await post(one, '/v1/server/subscribe', { user: 'u7', channel: 'vip/news' })).toEqual({ status: 202, body: { status: 'accepted' } });
    await socket.next('subscribed vip/news', (op) => op['op'] === 'subscribed' && op['channel'] === 'vip/news' && op['server'] === true);
    const published = await post(one, '/v1/server/publish', { channel: 'vip/news', data: { headline: 'first' } });
    expect(published.status).toBe(201);
    const message = await socket.next('the vip/news message', (op) => op['op'] === 'message' && op['channel'] === 'vip/news');
    expect(message['data']).toEqual({ headline: 'first' });

    // By session: the id from the hello frame names exactly this connection.
    expect((await post(one, '/v1/server/subscribe', { session: hello['session'], channel: 'vip/offers' })).status).toBe(202);
    await socket.next('subscribed vip/offers', (op) => op['op'] === 'subscribed' && op['channel'] === 'vip/offers');

    expect((await post(one, '/v1/server/unsubscribe', { user: 'u7', channel: 'vip/news' })).status).toBe(202);
    await socket.next('unsubscribed vip/news', (op) => op['op'] === 'unsubscribed' && op['channel'] === 'vip/news');
    // Ended means ended: a later message on the channel does not arrive, one on the other does.
    await post(one, '/v1/server/publish', { messages: [{ channel: 'vip/news', data: 'late' }, { channel: 'vip/offers', data: 'offer' }] });
    await socket.next('the vip/offers message', (op) => op['op'] === 'message' && op['channel'] === 'vip/offers');
    expect(socket.ops.filter((op) => op['op'] === 'message' && op['channel'] === 'vip/news').map((op) => op['data'])).toEqual([{ headline: 'first' }]);

    expect((await post(one, '/v1/server/disconnect', { user: 'u7', code: 4501, reason: 'account closed' })).status).toBe(202);
    expect(await socket.closed).toEqual({ code: 4501, reason: 'account closed' });
  });

  it('reaches an SSE stream on another node too, and leaves other users alone', async () => {
    const mine = new SseTestClient(two.url, ['public/ticker'], {}, `&token=${await token('u8')}`);
    const other = new OpSocket(`${two.url.replace('http', 'ws')}/v1/ws?token=${await token('u9')}`);
    await mine.ready;
    await other.next('hello', (op) => op['op'] === 'hello');

    expect((await post(one, '/v1/server/subscribe', { user: 'u8', channel: 'vip/sse' })).status).toBe(202);
    await mine.waitFor(() => mine.events.includes('subscribed'), 'the subscribed event');
    await post(one, '/v1/server/publish', { channel: 'vip/sse', data: 'for u8' });
    await mine.waitFor(() => mine.received.length === 1, 'the vip/sse message');
    expect(mine.received.map((m) => [m.channel, m.data])).toEqual([['vip/sse', 'for u8']]);

    // u9 was never named: no subscription, no message (its pong comes after anything already sent to it).
    other.send({ op: 'ping', id: 'p' });
    await other.next('pong', (op) => op['op'] === 'pong');
    expect(other.ops.filter((op) => op['op'] === 'subscribed' || op['op'] === 'message')).toEqual([]);
    mine.drop();
    other.close();
  });
});
