/**
 * What browsers and backends see at the edges of the API, over real sockets: CORS on the /v1
 * routes and the WebSocket `Origin` check (both from `corsOrigin`), `HEAD /v1/sse` and
 * `GET /v1/ws` without an upgrade, who may read `/metrics` (metricsToken, API keys, metricsPort,
 * open mode), API key rotation on the server API, `allowPublish: false` on both client publish
 * paths, and `Idempotency-Key` scoped to the publisher over HTTP. Everything talks to 127.0.0.1.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, resolveOptions } from '../../src/config.js';
import type { RunningServer } from '../../src/start.js';
import { errorCodeOf, errorShapeProblem, httpRequest, metricValue, openWebSocket, scrapeMetrics, type HttpAnswer as RawAnswer } from '../helpers/limit-clients.js';
import { startTestServer } from '../helpers/server.js';
import { SecureSse, SecureWs, errorCode, http, publishAs, rawRequest, userToken, SECRET, type Caps } from '../helpers/security-kit.js';

const APP = 'https://app.example';
const ADMIN = 'https://admin.example';
const EVIL = 'https://evil.example';
const ORIGINS = `${APP},${ADMIN}`;
const API_KEY = 'routes-browsers-api-key-0001';

/** A request from a page on `origin` (node:http, so the Origin header goes out as given). */
function fromPage(baseUrl: string, path: string, origin: string | undefined, options: { method?: string; headers?: Record<string, string> } = {}): Promise<RawAnswer> {
  return httpRequest(baseUrl, path, { method: options.method ?? 'GET', headers: { ...(origin === undefined ? {} : { origin }), ...(options.headers ?? {}) } });
}

/** A header's comma-separated values, lower-cased (Vary, Access-Control-Allow-Headers, ...). */
function listOf(value: string | string[] | undefined): string[] {
  return (Array.isArray(value) ? value.join(',') : (value ?? '')).split(',').map((item) => item.trim().toLowerCase()).filter((item) => item !== '');
}

/** The WebSocket upgrade's outcome: `open` (with the first op) or the refusal's status and error code. */
async function upgrade(baseUrl: string, headers: Record<string, string>): Promise<{ open: string } | { status: number; code: string | undefined }> {
  const attempt = await openWebSocket(baseUrl, '', { headers });
  if (attempt.kind === 'open') {
    attempt.socket.terminate();
    return { open: String(attempt.first['op']) };
  }
  return { status: attempt.status, code: errorCodeOf(attempt) };
}

describe('CORS with a list of origins (closed server)', () => {
  let server: RunningServer;
  let reader: string;

  beforeAll(async () => {
    server = await startTestServer({ jwtSecret: SECRET, apiKeys: API_KEY, corsOrigin: ORIGINS });
    reader = await userToken('cors-user', [{ match: 'cors/#', allow: ['sub', 'hst'] }]);
  });
  afterAll(async () => {
    await server.close();
  });

  it('answers each listed origin with its own Access-Control-Allow-Origin and Vary: Origin, errors included', async () => {
    for (const origin of [APP, ADMIN]) {
      const ok = await fromPage(server.url, '/v1/poll?channel=cors/a&timeout=0', origin, { headers: { authorization: `Bearer ${reader}` } });
      expect(ok.status, origin).toBe(200);
      expect(ok.headers['access-control-allow-origin'], origin).toBe(origin);
      expect(listOf(ok.headers['vary']), origin).toContain('origin');
    }
    // A refusal must be readable by the page too, or it cannot tell "log in again" from a network error.
    const refused = await fromPage(server.url, '/v1/poll?channel=cors/a&timeout=0', APP);
    expect([refused.status, errorCodeOf(refused)]).toEqual([401, 'unauthorized']);
    expect(refused.headers['access-control-allow-origin']).toBe(APP);
  });

  it('gives an unlisted origin no Access-Control-Allow-Origin at all (so the browser refuses the answer)', async () => {
    for (const origin of [EVIL, 'http://app.example', 'https://app.example.evil.example', 'https://app.example:8443', 'null']) {
      const answer = await fromPage(server.url, '/v1/poll?channel=cors/a&timeout=0', origin, { headers: { authorization: `Bearer ${reader}` } });
      expect(answer.headers['access-control-allow-origin'], origin).toBeUndefined();
      expect(listOf(answer.headers['vary']), origin).toContain('origin');
    }
    // Nor a request that names no origin (not a browser page): nothing to allow.
    const bare = await fromPage(server.url, '/v1/poll?channel=cors/a&timeout=0', undefined, { headers: { authorization: `Bearer ${reader}` } });
    expect(bare.status).toBe(200);
    expect(bare.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('answers a preflight from a listed origin with 204, its origin, POST, and the headers clients send', async () => {
    const preflight = await fromPage(server.url, '/v1/publish', APP, {
      method: 'OPTIONS',
      headers: { 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type, idempotency-key' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers['access-control-allow-origin']).toBe(APP);
    expect(listOf(preflight.headers['access-control-allow-methods'])).toEqual(expect.arrayContaining(['get', 'post']));
    expect(listOf(preflight.headers['access-control-allow-headers'])).toEqual(expect.arrayContaining(['authorization', 'content-type', 'idempotency-key', 'last-event-id']));
    // The SSE route too (EventSource polyfills send Last-Event-ID and Authorization).
    const ssePreflight = await fromPage(server.url, '/v1/sse?channel=cors/a', ADMIN, {
      method: 'OPTIONS',
      headers: { 'access-control-request-method': 'GET', 'access-control-request-headers': 'last-event-id, authorization' },
    });
    expect(ssePreflight.status).toBe(204);
    expect(ssePreflight.headers['access-control-allow-origin']).toBe(ADMIN);
  });

  it('does not allow a preflight from an unlisted origin (no Access-Control-Allow-Origin)', async () => {
    const preflight = await fromPage(server.url, '/v1/publish', EVIL, {
      method: 'OPTIONS',
      headers: { 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
    });
    expect(preflight.status).toBeLessThan(500);
    expect(preflight.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('sends the same CORS answer on an SSE stream: the listed origin allowed, an unlisted one not', async () => {
    const listed = new SecureSse(server.url, ['cors/sse'], { header: reader, origin: APP });
    expect(await listed.opened).toBe(200);
    expect(listed.headers['access-control-allow-origin']).toBe(APP);
    listed.drop();
    const unlisted = new SecureSse(server.url, ['cors/sse'], { header: reader, origin: EVIL });
    await unlisted.opened;
    expect(unlisted.headers['access-control-allow-origin']).toBeUndefined();
    unlisted.drop();
  });
});

describe('WebSocket Origin (corsOrigin is checked at the upgrade)', () => {
  let server: RunningServer;
  let token: string;

  beforeAll(async () => {
    server = await startTestServer({ jwtSecret: SECRET, apiKeys: API_KEY, corsOrigin: ORIGINS });
    token = await userToken('ws-origin-user', [{ match: 'origin/#', allow: ['sub'] }]);
  });
  afterAll(async () => {
    await server.close();
  });

  it('refuses an upgrade from an unlisted origin with 403 forbidden, a good token notwithstanding', async () => {
    expect(await upgrade(server.url, { origin: EVIL })).toEqual({ status: 403, code: 'forbidden' });
    expect(await upgrade(server.url, { origin: EVIL, authorization: `Bearer ${token}` })).toEqual({ status: 403, code: 'forbidden' });
    expect(await upgrade(server.url, { origin: 'http://app.example' })).toEqual({ status: 403, code: 'forbidden' });
    // The same as the recording client sees it.
    const ws = new SecureWs(server.url, { header: token, origin: EVIL });
    await expect(ws.opened).rejects.toMatchObject({ status: 403 });
  });

  it('opens an upgrade from a listed origin, from the server\'s own origin, and from a client that sends no Origin', async () => {
    expect(await upgrade(server.url, { origin: APP })).toEqual({ open: 'hello' });
    expect(await upgrade(server.url, { origin: ADMIN })).toEqual({ open: 'hello' });
    expect(await upgrade(server.url, { origin: server.url })).toEqual({ open: 'hello' });
    expect(await upgrade(server.url, {})).toEqual({ open: 'hello' });
    // And the listed page's socket works: it subscribes with its token.
    const ws = new SecureWs(server.url, { header: token, origin: APP });
    await ws.ready;
    expect(await ws.subscribe('origin/a')).toMatchObject({ op: 'subscribed', channel: 'origin/a' });
    ws.drop();
  });
});

describe('CORS in open mode (corsOrigin left empty)', () => {
  let server: RunningServer;

  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
  });

  it('answers Access-Control-Allow-Origin: * to any page, preflights included', async () => {
    for (const origin of [APP, EVIL]) {
      const answer = await fromPage(server.url, '/v1/poll?channel=open/a&timeout=0', origin);
      expect(answer.status, origin).toBe(200);
      expect(answer.headers['access-control-allow-origin'], origin).toBe('*');
    }
    const preflight = await fromPage(server.url, '/v1/publish', EVIL, { method: 'OPTIONS', headers: { 'access-control-request-method': 'POST' } });
    expect(preflight.status).toBe(204);
    expect(preflight.headers['access-control-allow-origin']).toBe('*');
  });

  it('opens a WebSocket from any origin', async () => {
    expect(await upgrade(server.url, { origin: EVIL })).toEqual({ open: 'hello' });
  });
});

describe('corsOrigin "*" on a closed server', () => {
  it('is a configuration error: startServer rejects with ConfigError and starts nothing', async () => {
    const outcomes: Record<string, unknown> = {};
    for (const corsOrigin of ['*', `${APP},*`]) {
      let started: RunningServer | undefined;
      try {
        // What a misconfigured server does instead, in words (a RunningServer does not print).
        outcomes[corsOrigin] = await startTestServer({ jwtSecret: SECRET, corsOrigin }).then(
          async (running) => {
            started = running;
            const answer = await fromPage(running.url, '/v1/poll?channel=a&timeout=0', EVIL);
            return `started, and answered a page of ${EVIL} with Access-Control-Allow-Origin: ${String(answer.headers['access-control-allow-origin'])}`;
          },
          (error: unknown) => (error instanceof ConfigError ? 'ConfigError' : String(error)),
        );
      } finally {
        await started?.close();
      }
    }
    expect(outcomes).toEqual({ '*': 'ConfigError', [`${APP},*`]: 'ConfigError' });
  });

  it('is a configuration error from the command line and the environment too', () => {
    expect(() => resolveOptions({ cli: { jwtSecret: SECRET, corsOrigin: '*' } })).toThrow(ConfigError);
    expect(() => resolveOptions({ env: { EDGEPUSH_API_KEYS: API_KEY, EDGEPUSH_CORS_ORIGIN: '*' } })).toThrow(ConfigError);
    // Open mode may say "*".
    expect(resolveOptions({ cli: { corsOrigin: '*' } }).corsOrigin).toBe('*');
  });
});

describe('HEAD /v1/sse and GET /v1/ws without an upgrade', () => {
  let server: RunningServer;

  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
  });

  it('answers HEAD /v1/sse at once with the event-stream headers, no body, and no session left behind', async () => {
    // A real stream first, so that the gauge is seen to count SSE sessions.
    const stream = new SecureSse(server.url, ['head/a']);
    await stream.ready;
    expect(metricValue(await scrapeMetrics(server.url), 'edgepush_connections', { transport: 'sse' })).toBe(1);

    const head = await rawRequest('HEAD', `${server.url}/v1/sse?channel=head/a`);
    expect(head.status).toBe(200);
    expect(head.headers['content-type']).toMatch(/^text\/event-stream/);
    expect(head.body).toBe('');
    expect(metricValue(await scrapeMetrics(server.url), 'edgepush_connections', { transport: 'sse' })).toBe(1);

    // A HEAD followed by a message: the HEAD has no stream to receive it, the real one does.
    await publishAs(server.url, undefined, { channel: 'head/a', data: 'after the HEAD' });
    await stream.waitFor(() => stream.received.length === 1, 'the message on the real stream');
    expect(metricValue(await scrapeMetrics(server.url), 'edgepush_connections', { transport: 'sse' })).toBe(1);
    stream.drop();
  });

  it('answers GET /v1/ws without an upgrade with 426 upgrade_required in the documented error body', async () => {
    const answer = await httpRequest(server.url, '/v1/ws');
    expect(answer.status).toBe(426);
    expect(errorCodeOf(answer)).toBe('upgrade_required');
    expect(errorShapeProblem(answer.status, answer.headers, answer.text)).toBeUndefined();
    // It holds no connection slot: the gauge of WebSockets is untouched.
    expect(metricValue(await scrapeMetrics(server.url), 'edgepush_connections', { transport: 'ws' })).toBe(0);
  });
});

describe('/metrics and /status protection (the same guard)', () => {
  const METRICS_TOKEN = 'metrics-token-0123456789abcdef';
  /** Each operator route, and text only it shows. */
  const ROUTES = [
    ['/metrics', '# TYPE edgepush_connections gauge'],
    ['/status', '<title>edgepush status</title>'],
    ['/status.json', '"connections":'],
  ] as const;
  let withToken: RunningServer;
  let keyOnly: RunningServer;
  let separate: RunningServer;
  let open: RunningServer;
  let user: string;

  beforeAll(async () => {
    [withToken, keyOnly, separate, open] = await Promise.all([
      startTestServer({ jwtSecret: SECRET, apiKeys: API_KEY, metricsToken: METRICS_TOKEN }),
      startTestServer({ jwtSecret: SECRET, apiKeys: API_KEY }),
      startTestServer({ jwtSecret: SECRET, apiKeys: API_KEY, metricsPort: 0 }),
      startTestServer(),
    ]);
    user = await userToken('metrics-user', [{ match: '#', allow: ['sub', 'hst', 'pub'] }]);
  });
  afterAll(async () => {
    await Promise.all([withToken, keyOnly, separate, open].map((server) => server?.close()));
  });

  const get = (baseUrl: string, path: string, credential?: string): Promise<RawAnswer> => httpRequest(baseUrl, path, { headers: credential === undefined ? {} : { authorization: `Bearer ${credential}` } });

  it('answers 401 unauthorized on a closed server without credentials, with a wrong token, or with a user token, and shows nothing', async () => {
    for (const [path, shown] of ROUTES) {
      for (const [name, credential] of [['none', undefined], ['wrong token', 'metrics-token-but-not-the-right-one'], ['user token', user]] as const) {
        const answer = await get(withToken.url, path, credential);
        expect([answer.status, errorCodeOf(answer)], `${path} ${name}`).toEqual([401, 'unauthorized']);
        expect(answer.text, `${path} ${name}`).not.toContain(shown);
      }
    }
  });

  it('serves each to the metrics token and to an API key; the status page also as ?token= (a browser)', async () => {
    for (const credential of [METRICS_TOKEN, API_KEY]) {
      for (const [path, shown] of ROUTES) {
        const answer = await get(withToken.url, path, credential);
        expect(answer.status, path).toBe(200);
        expect(answer.text, path).toContain(shown);
      }
      expect((await httpRequest(withToken.url, `/status?token=${credential}`)).status).toBe(200);
    }
  });

  it('needs an API key on a closed server without a metrics token', async () => {
    for (const [path] of ROUTES) {
      expect((await get(keyOnly.url, path)).status, path).toBe(401);
      expect((await get(keyOnly.url, path, user)).status, path).toBe(401);
      expect((await get(keyOnly.url, path, METRICS_TOKEN)).status, path).toBe(401);
      expect((await get(keyOnly.url, path, API_KEY)).status, path).toBe(200);
    }
  });

  it('with metricsPort, serves them on their own listener (open there) and not on the main port', async () => {
    expect(separate.metricsUrl).toBeDefined();
    const metricsUrl = separate.metricsUrl as string;
    expect(new URL(metricsUrl).port).not.toBe(new URL(separate.url).port);
    for (const [path, shown] of ROUTES) {
      const there = await get(metricsUrl, path);
      expect(there.status, path).toBe(200);
      expect(there.text, path).toContain(shown);
      // The public port no longer has them, whatever the credential.
      for (const credential of [undefined, API_KEY]) {
        const main = await get(separate.url, path, credential);
        expect([main.status, errorCodeOf(main)], path).toEqual([404, 'not_found']);
      }
    }
    // The private listener serves nothing else.
    expect((await httpRequest(metricsUrl, '/v1/poll?channel=a&timeout=0')).status).toBe(404);
  });

  it('is open in open mode', async () => {
    for (const [path, shown] of ROUTES) {
      const answer = await get(open.url, path);
      expect(answer.status, path).toBe(200);
      expect(answer.text, path).toContain(shown);
    }
  });
});

describe('API key rotation', () => {
  const OLD_KEY = 'old-key-0123456789abcdef';
  const NEW_KEY = 'new-key-0123456789abcdef';
  const UNKNOWN_KEY = 'unknown-key-0123456789abcdef';
  const CAPS: Caps = [{ match: 'rot/#', allow: ['sub', 'pub'] }];
  let both: RunningServer;
  let user: string;

  beforeAll(async () => {
    both = await startTestServer({ jwtSecret: SECRET, apiKeys: `${OLD_KEY},${NEW_KEY}` });
    user = await userToken('rot-user', CAPS);
  });
  afterAll(async () => {
    await both.close();
  });

  it('lets both listed keys publish through POST /v1/server/publish (201), and both messages arrive', async () => {
    const watcher = new SecureWs(both.url, { header: user });
    await watcher.ready;
    expect(await watcher.subscribe('rot/pub')).toMatchObject({ op: 'subscribed' });
    for (const [key, data] of [[OLD_KEY, 'from the old key'], [NEW_KEY, 'from the new key']]) {
      const answer = await publishAs(both.url, key, { channel: 'rot/pub', data }, {}, '/v1/server/publish');
      expect(answer.status, data).toBe(201);
      expect((answer.body as { ids: string[] }).ids, data).toHaveLength(1);
    }
    await watcher.waitFor(() => watcher.received.length === 2, 'both messages');
    expect(watcher.messagesOf('rot/pub')).toEqual(['from the old key', 'from the new key']);
    watcher.drop();
  });

  it('lets both listed keys use the server API (202): subscribe with one, unsubscribe and disconnect with the other', async () => {
    const watcher = new SecureWs(both.url, { header: user });
    await watcher.ready;
    const subscribe = await http('POST', `${both.url}/v1/server/subscribe`, { token: OLD_KEY, body: { user: 'rot-user', channel: 'rot/api' } });
    expect([subscribe.status, subscribe.body]).toEqual([202, { status: 'accepted' }]);
    expect(await watcher.waitOp((op) => op['op'] === 'subscribed' && op['channel'] === 'rot/api', 'the server subscription')).toMatchObject({ server: true });
    const unsubscribe = await http('POST', `${both.url}/v1/server/unsubscribe`, { token: NEW_KEY, body: { session: watcher.session, channel: 'rot/api' } });
    expect(unsubscribe.status).toBe(202);
    expect(await watcher.waitOp((op) => op['op'] === 'unsubscribed' && op['channel'] === 'rot/api', 'the server unsubscription')).toMatchObject({ server: true });
    const disconnect = await http('POST', `${both.url}/v1/server/disconnect`, { token: NEW_KEY, body: { user: 'rot-user', code: 4321, reason: 'rotation test' } });
    expect(disconnect.status).toBe(202);
    expect(await watcher.closed).toBe(4321);
  });

  it('answers a key that is not in the list with 401 unauthorized, on server publish, the server API and client publish', async () => {
    const outcomes = {
      serverPublish: await publishAs(both.url, UNKNOWN_KEY, { channel: 'rot/x', data: 1 }, {}, '/v1/server/publish'),
      serverSubscribe: await http('POST', `${both.url}/v1/server/subscribe`, { token: UNKNOWN_KEY, body: { user: 'rot-user', channel: 'rot/x' } }),
      serverDisconnect: await http('POST', `${both.url}/v1/server/disconnect`, { token: UNKNOWN_KEY, body: { user: 'rot-user' } }),
      clientPublish: await publishAs(both.url, UNKNOWN_KEY, { channel: 'rot/x', data: 1 }),
    };
    expect(Object.fromEntries(Object.entries(outcomes).map(([route, answer]) => [route, [answer.status, errorCode(answer)]]))).toEqual({
      serverPublish: [401, 'unauthorized'],
      serverSubscribe: [401, 'unauthorized'],
      serverDisconnect: [401, 'unauthorized'],
      clientPublish: [401, 'unauthorized'],
    });
  });

  it('answers a user token on the server routes with 403 forbidden, and no credentials with 401', async () => {
    for (const path of ['/v1/server/publish', '/v1/server/subscribe', '/v1/server/unsubscribe', '/v1/server/disconnect']) {
      const body = path === '/v1/server/publish' ? { channel: 'rot/x', data: 1 } : { user: 'rot-user', channel: 'rot/x' };
      const byUser = await http('POST', `${both.url}${path}`, { token: user, body });
      expect([byUser.status, errorCode(byUser)], path).toEqual([403, 'forbidden']);
      const anonymous = await http('POST', `${both.url}${path}`, { body });
      expect([anonymous.status, errorCode(anonymous)], path).toEqual([401, 'unauthorized']);
    }
  });

  it('after a restart with only the new key, refuses the removed key (401) and keeps the new one working', async () => {
    const rotated = await startTestServer({ jwtSecret: SECRET, apiKeys: NEW_KEY });
    try {
      const outcomes = {
        oldPublish: await publishAs(rotated.url, OLD_KEY, { channel: 'rot/after', data: 'old' }, {}, '/v1/server/publish'),
        oldSubscribe: await http('POST', `${rotated.url}/v1/server/subscribe`, { token: OLD_KEY, body: { user: 'rot-user', channel: 'rot/after' } }),
        newPublish: await publishAs(rotated.url, NEW_KEY, { channel: 'rot/after', data: 'new' }, {}, '/v1/server/publish'),
        newSubscribe: await http('POST', `${rotated.url}/v1/server/subscribe`, { token: NEW_KEY, body: { user: 'rot-user', channel: 'rot/after' } }),
      };
      expect(Object.fromEntries(Object.entries(outcomes).map(([route, answer]) => [route, [answer.status, errorCode(answer)]]))).toEqual({
        oldPublish: [401, 'unauthorized'],
        oldSubscribe: [401, 'unauthorized'],
        newPublish: [201, undefined],
        newSubscribe: [202, undefined],
      });
    } finally {
      await rotated.close();
    }
  });
});

describe('allowPublish: false', () => {
  const CAPS: Caps = [{ match: 'nopub/#', allow: ['sub', 'pub'] }];
  let server: RunningServer;
  let publisher: string;

  beforeAll(async () => {
    server = await startTestServer({ jwtSecret: SECRET, apiKeys: API_KEY, allowPublish: false });
    publisher = await userToken('nopub-user', CAPS);
  });
  afterAll(async () => {
    await server.close();
  });

  it('answers POST /v1/publish with 403 publish_disabled for a token that has the pub grant, and publishes nothing', async () => {
    const watcher = new SecureWs(server.url, { header: publisher });
    await watcher.ready;
    expect(await watcher.subscribe('nopub/http')).toMatchObject({ op: 'subscribed' });
    const refused = await publishAs(server.url, publisher, { channel: 'nopub/http', data: 'refused' });
    expect([refused.status, errorCode(refused)]).toEqual([403, 'publish_disabled']);
    expect((await publishAs(server.url, API_KEY, { channel: 'nopub/http', data: 'backend' }, {}, '/v1/server/publish')).status).toBe(201);
    await watcher.waitFor(() => watcher.received.length > 0, 'the backend message');
    expect(watcher.messagesOf('nopub/http')).toEqual(['backend']);
    watcher.drop();
  });

  it('answers the WebSocket publish op with error publish_disabled and its id; subscribers get only the later backend message', async () => {
    const subscriber = new SecureWs(server.url, { header: publisher });
    await subscriber.ready;
    expect(await subscriber.subscribe('nopub/ws')).toMatchObject({ op: 'subscribed' });
    const client = new SecureWs(server.url, { header: publisher });
    await client.ready;
    expect(await client.publish('nopub/ws', 'refused', 'p-off')).toMatchObject({ op: 'error', code: 'publish_disabled', id: 'p-off' });

    const later = await publishAs(server.url, API_KEY, { channel: 'nopub/ws', data: 'later' }, {}, '/v1/server/publish');
    expect(later.status).toBe(201);
    await subscriber.waitFor(() => subscriber.received.length > 0, 'the later backend message');
    expect(subscriber.messagesOf('nopub/ws')).toEqual(['later']);
    expect(client.ops.some((op) => op['op'] === 'ack')).toBe(false);
    subscriber.drop();
    client.drop();
  });
});

describe('Idempotency-Key over HTTP', () => {
  const CAPS: Caps = [{ match: 'idem/#', allow: ['sub', 'pub'] }];
  let server: RunningServer;
  let alice: string;
  let bob: string;

  beforeAll(async () => {
    server = await startTestServer({ jwtSecret: SECRET, apiKeys: API_KEY });
    [alice, bob] = await Promise.all([userToken('alice', CAPS), userToken('bob', CAPS)]);
  });
  afterAll(async () => {
    await server.close();
  });

  async function watch(channel: string): Promise<SecureWs> {
    const ws = new SecureWs(server.url, { header: alice });
    await ws.ready;
    expect(await ws.subscribe(channel)).toMatchObject({ op: 'subscribed' });
    return ws;
  }

  /** A message published after the others: once it has arrived, everything before it has too. */
  async function marker(watcher: SecureWs, channel: string): Promise<void> {
    expect((await publishAs(server.url, API_KEY, { channel, data: 'marker' }, {}, '/v1/server/publish')).status).toBe(201);
    await watcher.waitFor(() => watcher.messagesOf(channel).includes('marker'), 'the marker');
  }

  it('scopes a key to the publisher: two users with the same key each get their own ids, and both messages are delivered', async () => {
    const watcher = await watch('idem/two');
    const key = 'shared-key-1';
    const byAlice = await publishAs(server.url, alice, { channel: 'idem/two', data: 'from alice' }, { 'idempotency-key': key });
    const byBob = await publishAs(server.url, bob, { channel: 'idem/two', data: 'from bob' }, { 'idempotency-key': key });
    expect([byAlice.status, byBob.status]).toEqual([201, 201]);
    const [aliceIds, bobIds] = [(byAlice.body as { ids: string[] }).ids, (byBob.body as { ids: string[] }).ids];
    expect(aliceIds).toHaveLength(1);
    expect(bobIds).toHaveLength(1);
    expect(bobIds).not.toEqual(aliceIds);
    await watcher.waitFor(() => watcher.received.length === 2, 'both messages');
    expect(watcher.received.map((m) => [m.id, m.data])).toEqual([
      [aliceIds[0], 'from alice'],
      [bobIds[0], 'from bob'],
    ]);
    watcher.drop();
  });

  it('gives a retry with the same key and body the same ids, and delivers the message once', async () => {
    const watcher = await watch('idem/retry');
    const body = { channel: 'idem/retry', data: { order: 42 } };
    const first = await publishAs(server.url, alice, body, { 'idempotency-key': 'retry-key' });
    const retry = await publishAs(server.url, alice, body, { 'idempotency-key': 'retry-key' });
    expect([first.status, retry.status]).toEqual([201, 201]);
    expect(retry.body).toEqual(first.body);
    await marker(watcher, 'idem/retry');
    expect(watcher.messagesOf('idem/retry')).toEqual([{ order: 42 }, 'marker']);
    watcher.drop();
  });

  it('answers the same key with a different body with 422 idempotency_conflict, and publishes nothing for it', async () => {
    const watcher = await watch('idem/conflict');
    const first = await publishAs(server.url, alice, { channel: 'idem/conflict', data: 'first' }, { 'idempotency-key': 'conflict-key' });
    expect(first.status).toBe(201);
    const other = await publishAs(server.url, alice, { channel: 'idem/conflict', data: 'second' }, { 'idempotency-key': 'conflict-key' });
    expect([other.status, errorCode(other)]).toEqual([422, 'idempotency_conflict']);
    const otherChannel = await publishAs(server.url, alice, { channel: 'idem/conflict/b', data: 'first' }, { 'idempotency-key': 'conflict-key' });
    expect([otherChannel.status, errorCode(otherChannel)]).toEqual([422, 'idempotency_conflict']);
    await marker(watcher, 'idem/conflict');
    expect(watcher.messagesOf('idem/conflict')).toEqual(['first', 'marker']);
    watcher.drop();
  });
});
