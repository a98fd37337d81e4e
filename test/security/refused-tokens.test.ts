/**
 * Tokens the server must refuse, each over HTTP (401 unauthorized, header and `?token=`) and over
 * the WebSocket (the first auth op, and the upgrade's `?token=`: error unauthorized, then close
 * 4501, or 4003 for an expired token). HS256 with the shared secret and RS256 / ES256 against a
 * JWKS served from 127.0.0.1 in this test. Good tokens of each kind are the control.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/start.js';
import { startTestServer } from '../helpers/server.js';
import { SecureSse, SecureWs, asymmetricToken, errorCode, history, hsToken, nowSeconds, poll, unsignedToken, SECRET, type TokenClaims } from '../helpers/security-kit.js';

const AUDIENCE = 'edgepush-tests';
const ISSUER = 'https://issuer.test';
const CAPS = { caps: [{ match: 'tok/#', allow: ['sub', 'hst'] }] };

interface Keys {
  rsaIn: CryptoKey;
  ecIn: CryptoKey;
  rsaOut: CryptoKey;
  ecOut: CryptoKey;
  rsaInPublicPem: string;
}

let jwks: Server;
let server: RunningServer;
let keys: Keys;

function claims(extra: TokenClaims = {}): TokenClaims {
  return { sub: 'tok-user', aud: AUDIENCE, iss: ISSUER, edgepush: CAPS, ...extra };
}

beforeAll(async () => {
  const [rsaIn, ecIn, rsaOut, ecOut] = await Promise.all([
    generateKeyPair('RS256', { extractable: true }),
    generateKeyPair('ES256', { extractable: true }),
    generateKeyPair('RS256', { extractable: true }),
    generateKeyPair('ES256', { extractable: true }),
  ]);
  const published = {
    keys: [
      { ...(await exportJWK(rsaIn.publicKey)), kid: 'rsa-in', alg: 'RS256', use: 'sig' },
      { ...(await exportJWK(ecIn.publicKey)), kid: 'ec-in', alg: 'ES256', use: 'sig' },
    ],
  };
  keys = { rsaIn: rsaIn.privateKey, ecIn: ecIn.privateKey, rsaOut: rsaOut.privateKey, ecOut: ecOut.privateKey, rsaInPublicPem: await exportSPKI(rsaIn.publicKey) };
  jwks = createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify(published));
  });
  await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
  const jwksUrl = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/.well-known/jwks.json`;
  server = await startTestServer({ jwtSecret: SECRET, jwtJwksUrl: jwksUrl, jwtAudience: AUDIENCE, jwtIssuer: ISSUER });
});
afterAll(async () => {
  await server?.close();
  await new Promise((resolve) => jwks?.close(resolve));
});

/** What a client sees for `token`: the HTTP statuses and codes, and the WebSocket's error op and close code. */
async function outcome(token: string): Promise<{ history: [number, string | undefined]; poll: [number, string | undefined]; sse: number; authOp: [unknown, number]; upgrade: [unknown, number] }> {
  const byHeader = await history(server.url, 'tok/a', token);
  const byQuery = await poll(server.url, ['tok/a'], { token: undefined }).then(() => fetch(`${server.url}/v1/poll?channel=tok/a&timeout=0&token=${encodeURIComponent(token)}`));
  const pollBody = (await byQuery.json()) as { error?: { code?: string } };
  const sse = new SecureSse(server.url, ['tok/a'], { query: token });
  const sseStatus = await sse.opened;
  sse.drop();

  const byOp = new SecureWs(server.url);
  await byOp.ready;
  const answer = await byOp.auth(token, 'try');
  const opClose = answer['op'] === 'authenticated' ? (byOp.drop(), 0) : await byOp.closed;

  // The hello always comes first; a refused token then gets an error and the close, a good one the pong.
  const atUpgrade = new SecureWs(server.url, { query: token });
  await atUpgrade.ready;
  atUpgrade.send({ op: 'ping', id: 'probe' });
  const first = await atUpgrade.waitOp((op) => op['op'] === 'error' || op['op'] === 'pong', 'the answer to the token at the upgrade');
  const upgradeClose = first['op'] === 'pong' ? (atUpgrade.drop(), 0) : await atUpgrade.closed;
  return {
    history: [byHeader.status, errorCode(byHeader)],
    poll: [byQuery.status, pollBody.error?.code],
    sse: sseStatus,
    authOp: [answer['op'] === 'error' ? { code: answer['code'], id: answer['id'] } : answer['op'], opClose],
    upgrade: [first['op'] === 'error' ? { code: first['code'] } : first['op'], upgradeClose],
  };
}

function refused(close: number): unknown {
  return { history: [401, 'unauthorized'], poll: [401, 'unauthorized'], sse: 401, authOp: [{ code: 'unauthorized', id: 'try' }, close], upgrade: [{ code: 'unauthorized' }, close] };
}

describe('good tokens (the control)', () => {
  it('accepts HS256 with the secret, RS256 and ES256 signed with keys in the JWKS', async () => {
    const good = {
      hs256: await hsToken(claims()),
      rs256: await asymmetricToken('RS256', keys.rsaIn, 'rsa-in', claims()),
      es256: await asymmetricToken('ES256', keys.ecIn, 'ec-in', claims()),
    };
    for (const [name, token] of Object.entries(good)) {
      expect(await outcome(token), name).toEqual({ history: [200, undefined], poll: [200, undefined], sse: 200, authOp: ['authenticated', 0], upgrade: ['pong', 0] });
    }
  });
});

describe('refused tokens', () => {
  it('refuses a bad signature, alg none, and algorithm confusion with 401 / close 4501', async () => {
    const good = await hsToken(claims());
    const [header, payload] = good.split('.');
    const cases: Record<string, string> = {
      'HS256 signed with another secret': await hsToken(claims(), 'not-the-server-secret-but-32-bytes!!'),
      'HS256 with its payload swapped (caps widened)': `${header}.${Buffer.from(JSON.stringify({ ...claims(), exp: nowSeconds() + 3600, edgepush: { caps: [{ match: '#', allow: ['sub', 'pub', 'hst'] }] } })).toString('base64url')}.${good.split('.')[2]}`,
      'alg none': unsignedToken(claims()),
      'alg none with an empty signature and a kid of the JWKS': `${Buffer.from(JSON.stringify({ alg: 'none', kid: 'rsa-in' })).toString('base64url')}.${payload}.`,
      'HS256 signed with the JWKS public key (algorithm confusion)': await new SignJWT({ exp: nowSeconds() + 3600, ...claims() }).setProtectedHeader({ alg: 'HS256', kid: 'rsa-in' }).sign(new TextEncoder().encode(keys.rsaInPublicPem)),
      'not a JWT': 'this-is-not-a-token-at-all',
    };
    for (const [name, token] of Object.entries(cases)) expect(await outcome(token), name).toEqual(refused(4501));
  });

  it('refuses RS256 and ES256 tokens whose key is not in the JWKS, or whose kid names a key that did not sign them', async () => {
    const cases: Record<string, string> = {
      'RS256, unknown kid': await asymmetricToken('RS256', keys.rsaOut, 'rsa-out', claims()),
      'RS256, kid of the JWKS, signed with another key': await asymmetricToken('RS256', keys.rsaOut, 'rsa-in', claims()),
      'ES256, unknown kid': await asymmetricToken('ES256', keys.ecOut, 'ec-out', claims()),
      'ES256, kid of the JWKS, signed with another key': await asymmetricToken('ES256', keys.ecOut, 'ec-in', claims()),
      'ES256 signed with the right key but naming the RSA kid': await asymmetricToken('ES256', keys.ecIn, 'rsa-in', claims()),
    };
    for (const [name, token] of Object.entries(cases)) expect(await outcome(token), name).toEqual(refused(4501));
  });

  it('refuses tokens whose claims are not good: not yet valid, wrong audience, wrong issuer, no exp', async () => {
    const cases: Record<string, string> = {
      'nbf in the future': await hsToken(claims({ nbf: nowSeconds() + 600 })),
      'wrong audience': await hsToken(claims({ aud: 'another-service' })),
      'no audience': await hsToken({ sub: 'tok-user', iss: ISSUER, edgepush: CAPS }),
      'wrong issuer': await hsToken(claims({ iss: 'https://evil.test' })),
      'missing exp': await hsToken(claims({ exp: undefined })),
      'RS256 with the wrong audience': await asymmetricToken('RS256', keys.rsaIn, 'rsa-in', claims({ aud: 'another-service' })),
    };
    for (const [name, token] of Object.entries(cases)) expect(await outcome(token), name).toEqual(refused(4501));
  });

  it('refuses an expired token with 401 over HTTP and close 4003 on the WebSocket', async () => {
    const cases: Record<string, string> = {
      'HS256 expired': await hsToken(claims({ exp: nowSeconds() - 60 })),
      'ES256 expired': await asymmetricToken('ES256', keys.ecIn, 'ec-in', claims({ exp: nowSeconds() - 60 })),
    };
    for (const [name, token] of Object.entries(cases)) expect(await outcome(token), name).toEqual(refused(4003));
  });

  it('refuses the whole token when its edgepush claim is malformed (never a partial grant)', async () => {
    const malformed: unknown[] = [
      'not an object',
      [{ match: 'tok/#', allow: ['sub'] }],
      { caps: { match: 'tok/#', allow: ['sub'] } },
      { caps: [{ match: 'tok/#', allow: ['sub'] }, { match: 'x', allow: ['admin'] }] },
      { caps: [{ match: 'tok/#', allow: ['sub'] }, { match: 'x', allow: [] }] },
      { caps: [{ match: 'tok/#', allow: ['sub'] }, { match: 'a/#/b', allow: ['sub'] }] },
      { caps: [{ match: 'tok/#', allow: ['sub'] }, { match: 'a//b', allow: ['sub'] }] },
      { caps: [{ match: 'tok/#', allow: ['sub'] }, { allow: ['sub'] }] },
      { caps: [{ match: 'tok/#', allow: ['sub'] }], subs: 'alerts/x' },
      { caps: [{ match: 'tok/#', allow: ['sub'] }], subs: [42] },
      { caps: [{ match: 'tok/#', allow: ['sub'] }], rate: -1 },
    ];
    for (const edgepush of malformed) {
      expect(await outcome(await hsToken(claims({ edgepush }))), JSON.stringify(edgepush)).toEqual(refused(4501));
    }
  });
});

describe('an unreachable JWKS', () => {
  it('answers 503 unavailable (not 401: the token may be good) and lets a WebSocket come back', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const isolated = await startTestServer({ jwtJwksUrl: `http://127.0.0.1:${port}/jwks.json` });
    try {
      const token = await asymmetricToken('RS256', keys.rsaIn, 'rsa-in', { sub: 'x', edgepush: CAPS });
      const answer = await history(isolated.url, 'tok/a', token);
      expect([answer.status, errorCode(answer)]).toEqual([503, 'unavailable']);
      const ws = new SecureWs(isolated.url, { header: token });
      expect(await ws.waitOp((op) => op['op'] === 'error', 'an error op')).toMatchObject({ code: 'unavailable' });
      // A reconnect code (4000-4499), not 4501 "do not retry".
      const code = await ws.closed;
      expect(code).toBeGreaterThanOrEqual(4000);
      expect(code).toBeLessThan(4500);
    } finally {
      await isolated.close();
    }
  });
});
