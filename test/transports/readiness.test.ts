// GET /readyz tells a load balancer when to send clients: not before the log's start-up read-back
// is done (resumes would be answered from half-filled rings). GET /healthz is liveness only.
import { afterEach, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/start.js';
import { RetainedLog } from '../helpers/retained-log.js';
import { startTestServer } from '../helpers/server.js';

async function get(url: string): Promise<{ status: number; body: unknown }> {
  const response = await fetch(url);
  return { status: response.status, body: await response.json() };
}

describe('readiness', () => {
  let server: RunningServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('503 "starting" while the source reads back, 200 "ready" after; /healthz is 200 in both', async () => {
    const log = new RetainedLog();
    log.ready = false;
    server = await startTestServer({}, { source: log });
    expect(await get(`${server.url}/readyz`)).toEqual({ status: 503, body: { status: 'starting' } });
    expect((await get(`${server.url}/healthz`)).status).toBe(200);
    log.ready = true;
    expect(await get(`${server.url}/readyz`)).toEqual({ status: 200, body: { status: 'ready' } });
  });
});
