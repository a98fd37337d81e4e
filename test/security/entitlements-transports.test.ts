/**
 * Entitlements over real sockets, on every way in: WebSocket, SSE, long-poll (subscribe),
 * GET /v1/history (hst) and publish over HTTP and the WebSocket op (pub). Caps as plain channels,
 * as `+` and `#` patterns, with `{sub}`; anonymous caps; a token's `subs`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/start.js';
import { startTestServer } from '../helpers/server.js';
import { SecureSse, SecureWs, errorCode, history, hsToken, poll, publishAs, userToken, SECRET, type Caps } from '../helpers/security-kit.js';

const API_KEY = 'entitlements-api-key-0001';

const U1_CAPS: Caps = [
  { match: 'news/sports', allow: ['sub', 'hst', 'pub'] },
  { match: 'prices/+/last', allow: ['sub', 'hst'] },
  { match: 'feeds/#', allow: ['sub'] },
  { match: 'orders/{sub}/+', allow: ['sub', 'pub', 'hst'] },
  { match: 'chat/+', allow: ['pub'] },
];

/** Subscribe requests inside u1's caps. */
const SUB_ALLOWED = ['news/sports', 'prices/AAPL/last', 'prices/+/last', 'feeds', 'feeds/a', 'feeds/a/b/c', 'feeds/+', 'feeds/#', 'orders/u1/x', 'orders/u1/+'];
/** Subscribe requests outside them: other channels, wider patterns, another user's, pub-only grants. */
const SUB_FORBIDDEN = ['secret/x', 'news', 'news/sports/extra', 'news/+', 'prices/AAPL/bid', 'prices/AAPL', 'prices/#', 'prices/+/+', '#', 'orders/u2/x', 'orders/+/x', 'orders/u1', 'orders/u1/#', 'chat/room'];

let server: RunningServer;
let u1: string;

beforeAll(async () => {
  server = await startTestServer({ jwtSecret: SECRET, apiKeys: API_KEY });
  u1 = await userToken('u1', U1_CAPS);
});
afterAll(async () => {
  await server.close();
});

async function backendPublish(channel: string, data: unknown): Promise<void> {
  const answer = await publishAs(server.url, API_KEY, { channel, data }, {}, '/v1/server/publish');
  expect(answer.status).toBe(201);
}

describe('subscribe: WebSocket', () => {
  it('refuses a subscribe without a token with error unauthorized (anonymous has no caps)', async () => {
    const ws = new SecureWs(server.url);
    await ws.ready;
    expect(await ws.subscribe('news/sports')).toMatchObject({ op: 'error', code: 'unauthorized', channel: 'news/sports', id: 'sub-news/sports' });
    ws.drop();
  });

  it('allows every subscribe inside the caps and refuses every one outside with error forbidden', async () => {
    const ws = new SecureWs(server.url, { header: u1 });
    await ws.ready;
    for (const channel of SUB_ALLOWED) expect(await ws.subscribe(channel), channel).toMatchObject({ op: 'subscribed', channel });
    for (const channel of SUB_FORBIDDEN) expect(await ws.subscribe(channel), channel).toMatchObject({ op: 'error', code: 'forbidden', channel });
    ws.drop();
  });

  it('delivers messages of allowed channels and never those of refused ones ({sub} substitution)', async () => {
    const ws = new SecureWs(server.url, { query: u1 });
    await ws.ready;
    expect(await ws.subscribe('orders/u1/x')).toMatchObject({ op: 'subscribed' });
    expect(await ws.subscribe('orders/u2/x')).toMatchObject({ op: 'error', code: 'forbidden' });
    await backendPublish('orders/u2/x', 'not yours');
    await backendPublish('orders/u1/x', 'yours');
    await ws.waitFor(() => ws.received.length > 0, 'the allowed message');
    expect(ws.received.map((m) => [m.channel, m.data])).toEqual([['orders/u1/x', 'yours']]);
    ws.drop();
  });
});

describe('subscribe: SSE', () => {
  it('answers 401 unauthorized without a token', async () => {
    const sse = new SecureSse(server.url, ['news/sports']);
    expect(await sse.opened).toBe(401);
    expect(sse.errorBody).toMatchObject({ error: { code: 'unauthorized' } });
  });

  it('opens a stream for channels inside the caps and answers 403 forbidden outside them', async () => {
    for (const channel of SUB_ALLOWED) {
      const sse = new SecureSse(server.url, [channel], { header: u1 });
      expect(await sse.opened, channel).toBe(200);
      sse.drop();
    }
    for (const channel of SUB_FORBIDDEN) {
      const sse = new SecureSse(server.url, [channel], { query: u1 });
      expect(await sse.opened, channel).toBe(403);
      expect(sse.errorBody, channel).toMatchObject({ error: { code: 'forbidden' } });
    }
  });

  it('refuses the whole stream when one of its channels is outside the caps', async () => {
    const sse = new SecureSse(server.url, ['news/sports', 'orders/u2/x'], { header: u1 });
    expect(await sse.opened).toBe(403);
  });

  it('delivers the messages of an allowed stream ({sub} substitution)', async () => {
    const sse = new SecureSse(server.url, ['orders/u1/x', 'prices/MSFT/last'], { query: u1 });
    await sse.ready;
    await backendPublish('orders/u1/x', 1);
    await backendPublish('prices/MSFT/last', 2);
    await sse.waitFor(() => sse.received.length === 2, 'two messages');
    expect(sse.received.map((m) => m.data)).toEqual([1, 2]);
    sse.drop();
  });
});

describe('subscribe: long-poll', () => {
  it('answers 401 unauthorized without a token', async () => {
    const answer = await poll(server.url, ['news/sports']);
    expect([answer.status, errorCode(answer)]).toEqual([401, 'unauthorized']);
  });

  it('answers 200 inside the caps and 403 forbidden outside them', async () => {
    for (const channel of SUB_ALLOWED) expect((await poll(server.url, [channel], { token: u1 })).status, channel).toBe(200);
    for (const channel of SUB_FORBIDDEN) {
      const answer = await poll(server.url, [channel], { token: u1 });
      expect([answer.status, errorCode(answer)], channel).toEqual([403, 'forbidden']);
    }
  });

  it('refuses a poll whose cursor would otherwise return another user\'s messages', async () => {
    const start = await poll(server.url, ['orders/u1/x'], { token: u1 });
    const cursor = (start.body as { cursor: string }).cursor;
    await backendPublish('orders/u2/x', 'secret of u2');
    await backendPublish('orders/u1/x', 'mine');
    const mine = await poll(server.url, ['orders/u1/x'], { token: u1, cursor });
    expect((mine.body as { messages: { data: unknown }[] }).messages.map((m) => m.data)).toEqual(['mine']);
    const theirs = await poll(server.url, ['orders/u2/x'], { token: u1, cursor });
    expect(theirs.status).toBe(403);
    expect(JSON.stringify(theirs.body)).not.toContain('secret of u2');
  });
});

describe('history', () => {
  it('answers 401 without a token, 403 without the hst grant, 200 with it', async () => {
    await backendPublish('news/sports', 'goal');
    const anonymous = await history(server.url, 'news/sports');
    expect([anonymous.status, errorCode(anonymous)]).toEqual([401, 'unauthorized']);
    const allowed = await history(server.url, 'news/sports', u1);
    expect(allowed.status).toBe(200);
    expect((allowed.body as { messages: { data: unknown }[] }).messages.map((m) => m.data)).toContain('goal');
    for (const channel of ['prices/AAPL/last', 'prices/+/last', 'orders/u1/x']) expect((await history(server.url, channel, u1)).status, channel).toBe(200);
    // feeds/# grants sub only; chat/+ pub only; orders/u2 is another user's.
    for (const channel of ['feeds/a', 'chat/room', 'orders/u2/x', 'prices/AAPL/bid', 'prices/#', 'secret/x']) {
      const answer = await history(server.url, channel, u1);
      expect([answer.status, errorCode(answer)], channel).toEqual([403, 'forbidden']);
    }
  });
});

describe('publish', () => {
  it('answers 401 without a token, 403 without the pub grant, 201 with it', async () => {
    const anonymous = await publishAs(server.url, undefined, { channel: 'chat/room', data: 1 });
    expect([anonymous.status, errorCode(anonymous)]).toEqual([401, 'unauthorized']);
    for (const channel of ['chat/room', 'chat/other', 'news/sports', 'orders/u1/x']) {
      expect((await publishAs(server.url, u1, { channel, data: 'ok' })).status, channel).toBe(201);
    }
    for (const channel of ['chat/room/deep', 'chat', 'orders/u2/x', 'prices/AAPL/last', 'feeds/a', 'secret/x']) {
      const answer = await publishAs(server.url, u1, { channel, data: 'no' });
      expect([answer.status, errorCode(answer)], channel).toEqual([403, 'forbidden']);
    }
  });

  it('publishes nothing of a batch when one of its channels is forbidden', async () => {
    const watcher = new SecureWs(server.url, { header: u1 });
    await watcher.ready;
    expect(await watcher.subscribe('orders/u1/batch')).toMatchObject({ op: 'subscribed' });
    const answer = await publishAs(server.url, u1, { messages: [{ channel: 'orders/u1/batch', data: 'first' }, { channel: 'orders/u2/batch', data: 'second' }] });
    expect([answer.status, errorCode(answer)]).toEqual([403, 'forbidden']);
    await backendPublish('orders/u1/batch', 'after');
    await watcher.waitFor(() => watcher.received.length > 0, 'the later message');
    expect(watcher.messagesOf('orders/u1/batch')).toEqual(['after']);
    watcher.drop();
  });

  it('checks the pub grant on the WebSocket publish op too, and delivers what it allows', async () => {
    const ws = new SecureWs(server.url, { header: u1 });
    await ws.ready;
    expect(await ws.subscribe('orders/u1/ws')).toMatchObject({ op: 'subscribed' });
    expect(await ws.publish('orders/u2/ws', 'no', 'p-forbidden')).toMatchObject({ op: 'error', code: 'forbidden', channel: 'orders/u2/ws', id: 'p-forbidden' });
    expect(await ws.publish('prices/AAPL/last', 'no', 'p-sub-only')).toMatchObject({ op: 'error', code: 'forbidden' });
    expect(await ws.publish('orders/u1/ws', 'yes', 'p-ok')).toMatchObject({ op: 'ack' });
    await ws.waitFor(() => ws.received.length > 0, 'the published message');
    expect(ws.messagesOf('orders/u1/ws')).toEqual(['yes']);
    const anonymous = new SecureWs(server.url);
    await anonymous.ready;
    expect(await anonymous.publish('chat/room', 'x', 'p-anon')).toMatchObject({ op: 'error', code: 'unauthorized', id: 'p-anon' });
    ws.drop();
    anonymous.drop();
  });
});

describe('anonymousCaps', () => {
  let open: RunningServer;
  beforeAll(async () => {
    open = await startTestServer({ jwtSecret: SECRET, apiKeys: API_KEY, anonymousCaps: [{ match: 'public/#', allow: ['sub', 'hst'] }] });
  });
  afterAll(async () => {
    await open.close();
  });

  it('grant anonymous clients what they say on every transport, and nothing more (401 outside)', async () => {
    const ws = new SecureWs(open.url);
    await ws.ready;
    expect(await ws.subscribe('public/prices')).toMatchObject({ op: 'subscribed' });
    expect(await ws.subscribe('private/x')).toMatchObject({ op: 'error', code: 'unauthorized' });
    expect(await ws.publish('public/prices', 1, 'anon-pub')).toMatchObject({ op: 'error', code: 'unauthorized' });

    const sse = new SecureSse(open.url, ['public/prices']);
    await sse.ready;
    expect(await new SecureSse(open.url, ['private/x']).opened).toBe(401);

    expect((await poll(open.url, ['public/prices'])).status).toBe(200);
    expect((await poll(open.url, ['public'])).status).toBe(200);
    expect((await poll(open.url, ['private/x'])).status).toBe(401);
    expect((await history(open.url, 'public/prices')).status).toBe(200);
    expect((await history(open.url, 'private/x')).status).toBe(401);
    const published = await publishAs(open.url, undefined, { channel: 'public/prices', data: 1 });
    expect([published.status, errorCode(published)]).toEqual([401, 'unauthorized']);

    const answer = await publishAs(open.url, API_KEY, { channel: 'public/prices', data: 'tick' }, {}, '/v1/server/publish');
    expect(answer.status).toBe(201);
    await ws.waitFor(() => ws.received.length === 1, 'the public message on WebSocket');
    await sse.waitFor(() => sse.received.length === 1, 'the public message on SSE');
    expect([ws.received[0]?.data, sse.received[0]?.data]).toEqual(['tick', 'tick']);
    ws.drop();
    sse.drop();
  });

  it('keeps the WebSocket of an anonymous client that anonymous caps allow something open without an auth op', async () => {
    const ws = new SecureWs(open.url);
    await ws.ready;
    expect(await ws.subscribe('public/a')).toMatchObject({ op: 'subscribed' });
    await ws.ping();
    expect(ws.ended).toBeUndefined();
    ws.drop();
  });
});

describe('a token\'s subs arrive without a subscribe', () => {
  const SUBS_CAPS: Caps = [{ match: 'orders/{sub}/+', allow: ['sub'] }];

  it('WebSocket (token at the upgrade): subscribed with server: true, then the messages of alerts/{sub}', async () => {
    const token = await userToken('u7', SUBS_CAPS, { subs: ['alerts/{sub}'] });
    const ws = new SecureWs(server.url, { header: token });
    expect(await ws.waitOp((op) => op['op'] === 'subscribed', 'the server subscription')).toMatchObject({ channel: 'alerts/u7', server: true });
    await backendPublish('alerts/u8', 'for someone else');
    await backendPublish('alerts/u7', 'for u7');
    await ws.waitFor(() => ws.received.length > 0, 'the alert');
    expect(ws.received.map((m) => [m.channel, m.data])).toEqual([['alerts/u7', 'for u7']]);
    ws.drop();
  });

  it('WebSocket (token in the auth op): authenticated, then subscribed with server: true, then the messages', async () => {
    const token = await userToken('u9', SUBS_CAPS, { subs: ['alerts/{sub}'] });
    const ws = new SecureWs(server.url);
    await ws.ready;
    expect(await ws.auth(token, 'a1')).toMatchObject({ op: 'authenticated', id: 'a1', user: 'u9' });
    expect(await ws.waitOp((op) => op['op'] === 'subscribed', 'the server subscription')).toMatchObject({ channel: 'alerts/u9', server: true });
    await backendPublish('alerts/u9', 'for u9');
    await ws.waitFor(() => ws.received.length > 0, 'the alert');
    expect(ws.messagesOf('alerts/u9')).toEqual(['for u9']);
    ws.drop();
  });

  it('SSE without a channel parameter: the stream carries alerts/{sub}', async () => {
    const token = await userToken('u10', SUBS_CAPS, { subs: ['alerts/{sub}'] });
    const sse = new SecureSse(server.url, [], { query: token });
    await sse.ready;
    await backendPublish('alerts/u11', 'not for u10');
    await backendPublish('alerts/u10', 'for u10');
    await sse.waitFor(() => sse.received.length > 0, 'the alert');
    expect(sse.received.map((m) => [m.channel, m.data])).toEqual([['alerts/u10', 'for u10']]);
    sse.drop();
  });

  it('long-poll without a channel parameter: the next poll carries alerts/{sub}', async () => {
    const token = await userToken('u12', SUBS_CAPS, { subs: ['alerts/{sub}'] });
    const first = await poll(server.url, [], { token });
    expect(first.status).toBe(200);
    const cursor = (first.body as { cursor: string }).cursor;
    await backendPublish('alerts/u13', 'not for u12');
    await backendPublish('alerts/u12', 'for u12');
    const next = await poll(server.url, [], { token, cursor, timeout: 5 });
    expect((next.body as { messages: { channel: string; data: unknown }[] }).messages.map((m) => [m.channel, m.data])).toEqual([['alerts/u12', 'for u12']]);
    // Without subs (and without a channel) a poll is a bad request, not a silent empty stream.
    const bare = await poll(server.url, [], { token: u1 });
    expect(bare.status).toBe(400);
  });
});

describe("a token's rate", () => {
  it('elides every subscription of its holder at that interval, even one that asks for less', async () => {
    const token = await hsToken({ sub: 'r1', edgepush: { caps: [{ match: 'rate/#', allow: ['sub'] }], rate: 60_000 } });
    const ws = new SecureWs(server.url, { header: token });
    await ws.ready;
    const answer = await ws.request({ op: 'subscribe', channel: 'rate/a', maxRate: 10, id: 'fast' }, (op) => op['id'] === 'fast', 'the subscribe');
    expect(answer).toMatchObject({ op: 'subscribed' });
    for (let i = 0; i < 5; i++) await backendPublish('rate/a', i);
    // Within the token's minute, only the first goes out; the others wait for the interval's end.
    await ws.waitFor(() => ws.received.length >= 1, 'the first message');
    await ws.ping();
    expect(ws.received.map((m) => [m.data, (m as { elided?: number }).elided])).toEqual([[0, 0]]);
    ws.drop();
  });
});
