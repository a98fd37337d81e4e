/**
 * Tokens that expire while the client is connected, against a real server: on every transport the
 * server ends the connection (WebSocket 4003, SSE disconnect 4003, long-poll 401), the client asks
 * its getToken() for a new one, and resumes from its cursor with nothing lost and nothing twice,
 * though messages were published while it had no valid token.
 */
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EdgePush } from '../../src/client/index.js';
import type { RunningServer } from '../../src/start.js';
import { ClientWatch } from '../helpers/client-watch.js';
import { startTestServer } from '../helpers/server.js';

const SECRET = 'token-expiry-test-secret-at-least-32-bytes';
const API_KEY = 'token-expiry-backend-key';
const ROUNDS = 3;
const PER_ROUND = 5;

/** A token that expires within two seconds (exp has whole-second precision). */
function shortToken(user: string): Promise<string> {
  return new SignJWT({ sub: user, edgepush: { caps: [{ match: 'expiry/#', allow: ['sub'] }] } })
    .setProtectedHeader({ alg: 'HS256' })
    .setExpirationTime(Math.floor(Date.now() / 1000) + 2)
    .sign(new TextEncoder().encode(SECRET));
}

describe('client library: tokens that expire mid-stream', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startTestServer({ jwtSecret: SECRET, apiKeys: API_KEY, heartbeatInterval: 0.5 });
  });
  afterAll(async () => {
    await server?.close();
  });

  async function publish(channel: string, data: unknown[]): Promise<void> {
    const response = await fetch(`${server.url}/v1/server/publish`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ messages: data.map((d) => ({ channel, data: d })) }),
    });
    expect(response.status).toBe(201);
  }

  it.each(['ws', 'sse', 'poll'] as const)('%s: expiry, getToken, resume: every message once, in order', async (transport) => {
    const channel = `expiry/${transport}`;
    const expected: number[] = [];
    let round = 0;
    // Each call after the first comes from an expiry: publish a batch right then, while the
    // client holds no valid token, so the resume has something to bring back.
    const getToken = async (): Promise<string> => {
      if (round > 0 && round <= ROUNDS) {
        const batch = Array.from({ length: PER_ROUND }, (_, i) => round * 100 + i);
        expected.push(...batch);
        await publish(channel, batch);
      }
      round++;
      return shortToken('u1');
    };
    const client = new EdgePush(server.url, { transports: [transport], getToken, rememberTransport: false, heartbeatInterval: 500, pollTimeout: 1, backoff: { initialDelay: 50, maxDelay: 200 } });
    const watch = new ClientWatch(client);
    client.subscribe(channel, watch.handler);
    await watch.waitFor(() => watch.connections >= 1, 'the first connection');
    await watch.waitFor(() => round > ROUNDS && watch.messages.length >= expected.length, `${ROUNDS} expiries and every message`, 60_000);
    expect(watch.dataOf(channel)).toEqual(expected);
    expect(expected).toHaveLength(ROUNDS * PER_ROUND);
    // The client never gave up, and never saw an error it had to show the application.
    expect(watch.states.map((s) => s.state)).not.toContain('closed');
    expect(watch.errors).toEqual([]);
    if (transport !== 'poll') expect(watch.states.some((s) => s.reason?.includes('4003'))).toBe(true);
    client.close();
  });
});
