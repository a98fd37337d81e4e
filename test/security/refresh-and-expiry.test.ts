/**
 * A token's life on a live connection: a WebSocket refresh (auth op) that takes a grant away ends
 * that subscription and keeps the others; a refresh must be for the same user; a failed refresh
 * leaves the old token in force; at `exp` a WebSocket is closed with 4003 and an SSE stream gets
 * `event: disconnect` with code 4003 (awaited, never slept for).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/start.js';
import { startTestServer } from '../helpers/server.js';
import { SecureSse, SecureWs, hsToken, nowSeconds, publishAs, userToken, SECRET } from '../helpers/security-kit.js';

const API_KEY = 'refresh-expiry-api-key-01';
let server: RunningServer;

beforeAll(async () => {
  server = await startTestServer({ jwtSecret: SECRET, apiKeys: API_KEY });
});
afterAll(async () => {
  await server.close();
});

async function backendPublish(channel: string, data: unknown): Promise<void> {
  const answer = await publishAs(server.url, API_KEY, { channel, data }, {}, '/v1/server/publish');
  expect(answer.status).toBe(201);
}

describe('WebSocket refresh', () => {
  it('ends a subscription the new token no longer grants (unsubscribed, then error forbidden) and keeps the others', async () => {
    const before = await userToken('r1', [{ match: 'room/a', allow: ['sub'] }, { match: 'room/b', allow: ['sub'] }]);
    const after = await userToken('r1', [{ match: 'room/b', allow: ['sub'] }]);
    const ws = new SecureWs(server.url, { header: before });
    await ws.ready;
    expect(await ws.subscribe('room/a')).toMatchObject({ op: 'subscribed' });
    expect(await ws.subscribe('room/b')).toMatchObject({ op: 'subscribed' });
    await backendPublish('room/a', 'a1');
    await ws.waitFor(() => ws.messagesOf('room/a').length === 1, 'room/a before the refresh');

    const from = ws.ops.length;
    expect(await ws.auth(after, 'refresh-1')).toMatchObject({ op: 'authenticated', id: 'refresh-1', user: 'r1' });
    const unsubscribed = await ws.waitOp((op) => op['op'] === 'unsubscribed', 'unsubscribed room/a', from);
    const forbidden = await ws.waitOp((op) => op['op'] === 'error', 'error forbidden for room/a', from);
    expect(unsubscribed).toEqual({ op: 'unsubscribed', channel: 'room/a' });
    expect(forbidden).toMatchObject({ op: 'error', code: 'forbidden', channel: 'room/a' });
    expect(ws.ops.indexOf(unsubscribed)).toBeLessThan(ws.ops.indexOf(forbidden));
    // room/b was not touched.
    expect(ws.ops.slice(from).filter((op) => op['channel'] === 'room/b')).toEqual([]);

    // Published in this order: a message of room/a, if it were still delivered, would come first.
    await backendPublish('room/a', 'a2');
    await backendPublish('room/b', 'b1');
    await ws.waitFor(() => ws.messagesOf('room/b').length === 1, 'room/b after the refresh');
    expect(ws.messagesOf('room/a')).toEqual(['a1']);
    expect(ws.ended).toBeUndefined();
    ws.drop();
  });

  it('refuses a refresh for another user with error forbidden and keeps the connection and its token', async () => {
    const mine = await userToken('r2', [{ match: 'room/r2', allow: ['sub'] }]);
    const theirs = await userToken('r3', [{ match: 'room/#', allow: ['sub'] }]);
    const ws = new SecureWs(server.url, { header: mine });
    await ws.ready;
    expect(await ws.subscribe('room/r2')).toMatchObject({ op: 'subscribed' });
    expect(await ws.auth(theirs, 'switch')).toMatchObject({ op: 'error', code: 'forbidden', id: 'switch' });
    // Still r2's grants: r3's wider caps did not take effect.
    expect(await ws.subscribe('room/r3')).toMatchObject({ op: 'error', code: 'forbidden' });
    await backendPublish('room/r2', 'still here');
    await ws.waitFor(() => ws.received.length === 1, 'a message after the refused refresh');
    expect(ws.ended).toBeUndefined();
    ws.drop();
  });

  it('answers a refresh with a bad token with error unauthorized and leaves the current token in force', async () => {
    const mine = await userToken('r4', [{ match: 'room/r4', allow: ['sub'] }]);
    // The claims of a real token, signed with another secret.
    const forged = await hsToken({ sub: 'r4', edgepush: { caps: [{ match: '#', allow: ['sub'] }] } }, 'another-secret-that-is-32-bytes-long!');
    const ws = new SecureWs(server.url, { header: mine });
    await ws.ready;
    expect(await ws.auth(forged, 'forged')).toMatchObject({ op: 'error', code: 'unauthorized', id: 'forged' });
    expect(await ws.subscribe('other/x')).toMatchObject({ op: 'error', code: 'forbidden' });
    expect(await ws.subscribe('room/r4')).toMatchObject({ op: 'subscribed' });
    expect(ws.ended).toBeUndefined();
    ws.drop();
  });

  it('ends a subscription that came from the old token\'s subs when the new token neither lists nor grants it', async () => {
    const before = await userToken('r5', [{ match: 'room/r5', allow: ['sub'] }], { subs: ['alerts/{sub}'] });
    const after = await userToken('r5', [{ match: 'room/r5', allow: ['sub'] }]);
    const ws = new SecureWs(server.url, { header: before });
    expect(await ws.waitOp((op) => op['op'] === 'subscribed', 'the subs subscription')).toMatchObject({ channel: 'alerts/r5', server: true });
    expect(await ws.subscribe('room/r5')).toMatchObject({ op: 'subscribed' });
    expect(await ws.auth(after, 'drop-subs')).toMatchObject({ op: 'authenticated' });
    await backendPublish('alerts/r5', 'revoked alert');
    await backendPublish('room/r5', 'kept');
    await ws.waitFor(() => ws.messagesOf('room/r5').length === 1, 'room/r5 after the refresh');
    // Being in `subs` is a grant to subscribe (docs/protocol.md); the new token has neither.
    expect(ws.messagesOf('alerts/r5')).toEqual([]);
    ws.drop();
  });
});

describe('expiry', () => {
  it('closes a WebSocket with 4003 when its token expires (token at the upgrade, and in the auth op)', async () => {
    const exp = nowSeconds() + 2;
    const token = await userToken('e1', [{ match: 'room/e1', allow: ['sub'] }], { exp });
    const byUpgrade = new SecureWs(server.url, { header: token });
    const byOp = new SecureWs(server.url);
    await Promise.all([byUpgrade.ready, byOp.ready]);
    expect(byUpgrade.ops[0]).toMatchObject({ op: 'hello', user: 'e1', expires: exp });
    expect(await byOp.auth(token, 'short')).toMatchObject({ op: 'authenticated', user: 'e1', expires: exp });
    expect(await byUpgrade.subscribe('room/e1')).toMatchObject({ op: 'subscribed' });
    expect(await Promise.all([byUpgrade.closed, byOp.closed])).toEqual([4003, 4003]);
    expect(Date.now()).toBeGreaterThanOrEqual(exp * 1000);
  });

  it('ends an SSE stream with event: disconnect, code 4003, when its token expires', async () => {
    const exp = nowSeconds() + 2;
    const token = await userToken('e2', [{ match: 'room/e2', allow: ['sub'] }], { exp });
    const sse = new SecureSse(server.url, ['room/e2'], { query: token });
    await sse.ready;
    expect(sse.events.find((event) => event.event === 'hello')?.data).toMatchObject({ user: 'e2' });
    const disconnect = await sse.waitEvent('disconnect');
    expect(disconnect).toMatchObject({ code: 4003, reconnect: true });
    expect(Date.now()).toBeGreaterThanOrEqual(exp * 1000);
  });

  it('keeps a WebSocket that refreshed its token in time open past the old exp', async () => {
    const now = nowSeconds();
    const refreshed = new SecureWs(server.url, { header: await userToken('e3', [{ match: 'room/e3', allow: ['sub'] }], { exp: now + 2 }) });
    await refreshed.ready;
    expect(await refreshed.subscribe('room/e3')).toMatchObject({ op: 'subscribed' });
    expect(await refreshed.auth(await userToken('e3', [{ match: 'room/e3', allow: ['sub'] }], { exp: now + 3600 }), 'long')).toMatchObject({ op: 'authenticated', expires: now + 3600 });
    // A witness whose token expires a second after the refreshed one's old exp: once it is
    // closed, the old exp has certainly passed.
    const witness = new SecureWs(server.url, { header: await userToken('e4', [], { exp: now + 3 }) });
    expect(await witness.closed).toBe(4003);
    await refreshed.ping();
    expect(refreshed.ended).toBeUndefined();
    await backendPublish('room/e3', 'after the old exp');
    await refreshed.waitFor(() => refreshed.received.length === 1, 'a message after the old exp');
    refreshed.drop();
  });
});
