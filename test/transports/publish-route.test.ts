// POST /v1/publish refuses a body that is not JSON the way HTTP says to: 415, naming the type it
// wants, in the documented error shape (it answered 400 "Unsupported Media Type" before).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/start.js';
import { startTestServer } from '../helpers/server.js';

describe('POST /v1/publish content type', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
  });

  for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/xml']) {
    it(`a ${type} body gets 415 unsupported_media_type naming application/json`, async () => {
      const response = await fetch(`${server.url}/v1/publish`, { method: 'POST', headers: { 'content-type': type }, body: '{"channel":"a","data":1}' });
      expect(response.status).toBe(415);
      const body = (await response.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('unsupported_media_type');
      expect(body.error.message).toContain('application/json');
    });
  }

  it('application/json with a charset is accepted', async () => {
    const response = await fetch(`${server.url}/v1/publish`, { method: 'POST', headers: { 'content-type': 'application/json; charset=utf-8' }, body: '{"channel":"a","data":1}' });
    expect(response.status).toBe(201);
  });
});
