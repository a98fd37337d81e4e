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

  it.each([
    ['spelled out', '{"channel":"proto/a","data":{"__proto__":{"admin":true},"v":1}}'],
    ['spelled with escapes', '{"channel":"proto/b","data":{"\\u005f_proto\\u005f_":{"admin":true},"v":1}}'],
    ['plain', '{"channel":"proto/c","data":{"protos":{"admin":true},"v":1}}'],
  ])('drops a __proto__ key from a published body (%s) and keeps everything else', async (_case, body) => {
    const response = await fetch(`${server.url}/v1/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(response.status).toBe(201);
    const channel = (JSON.parse(body) as { channel: string }).channel;
    const history = (await (await fetch(`${server.url}/v1/history?channel=${channel}`)).json()) as { messages: { data: Record<string, unknown> }[] };
    const expected = channel === 'proto/c' ? { protos: { admin: true }, v: 1 } : { v: 1 };
    expect(history.messages.map((message) => message.data)).toEqual([expected]);
  });

  it('application/json with a charset is accepted', async () => {
    const response = await fetch(`${server.url}/v1/publish`, { method: 'POST', headers: { 'content-type': 'application/json; charset=utf-8' }, body: '{"channel":"a","data":1}' });
    expect(response.status).toBe(201);
  });
});
