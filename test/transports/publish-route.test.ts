// POST /v1/publish refuses a body that is not JSON the way HTTP says to: 415, naming the type it
// wants, in the documented error shape (it answered 400 "Unsupported Media Type" before). Then
// the rest of a request's life: the body limit, a client that goes away, CORS, and the client
// address behind a proxy.
import { request } from 'node:http';
import { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/start.js';
import { errorCodeOf, errorShapeProblem, eventually, httpRequest, metricValue, scrapeMetrics } from '../helpers/limit-clients.js';
import { publish, startTestServer } from '../helpers/server.js';
import { SseTestClient } from '../helpers/sse-client.js';

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

describe('POST /v1/publish requests', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
  });

  const json = { 'content-type': 'application/json' };
  const post = (body: string | Buffer, headers: Record<string, string> = json, path = '/v1/publish') => httpRequest(server.url, path, { method: 'POST', headers, body });

  it('answers 201 with the ids, no-store and the CORS header, on a kept connection', async () => {
    const answer = await post('{"channel":"route/a","data":1}');
    expect(answer.status).toBe(201);
    expect(JSON.parse(answer.text)).toEqual({ ids: [expect.any(String)] });
    expect(answer.headers['cache-control']).toBe('no-store');
    expect(answer.headers['access-control-allow-origin']).toBe('*');
    expect(answer.headers['content-type']).toBe('application/json; charset=utf-8');
  });

  it('refuses a body over the limit with 413 message_too_large, by its Content-Length or as it runs past it (chunked), and counts it', async () => {
    const tooLarge = async (): Promise<number> => metricValue(await scrapeMetrics(server.url), 'edgepush_bad_input_total', { transport: 'http', code: 'message_too_large' });
    const before = await tooLarge();
    // The limit is 1 MiB (or four messages of maxMessageBytes, whichever is more).
    const big = Buffer.from(`{"channel":"route/big","data":"${'x'.repeat(1_100_000)}"}`);
    for (const headers of [json, { ...json, 'transfer-encoding': 'chunked' }]) {
      const answer = await post(big, headers);
      expect(answer.status, JSON.stringify(headers)).toBe(413);
      expect(errorShapeProblem(answer.status, answer.headers, answer.text)).toBeUndefined();
      expect(errorCodeOf(answer)).toBe('message_too_large');
    }
    expect((await tooLarge()) - before).toBe(2);
    expect((await post('{"channel":"route/big","data":"small"}')).status).toBe(201);
  });

  it('publishes nothing for a client that goes away in the middle of its body, and keeps serving', async () => {
    const published = async (): Promise<number> => metricValue(await scrapeMetrics(server.url), 'edgepush_published_messages_total');
    const before = await published();
    const url = new URL(server.url);
    const gone = new Promise<void>((resolve) => {
      const half = request({ host: url.hostname, port: url.port, path: '/v1/publish', method: 'POST', headers: { ...json, 'content-length': '1000' } });
      half.on('error', () => resolve());
      half.on('close', () => resolve());
      half.write('{"channel":"route/half","data":"', () => half.destroy());
    });
    await gone;
    // The server saw the connection go: nothing was published from it.
    await eventually(async () => (await post('{"channel":"route/after","data":1}')).status === 201, 'a publish after it');
    expect(await published()).toBe(before + 1);
  });
});

describe('POST /v1/publish behind a proxy (trustProxy)', () => {
  let server: RunningServer;
  beforeAll(async () => {
    // A burst of one publish per client address.
    server = await startTestServer({ trustProxy: true, publishRate: 0.5 });
  });
  afterAll(async () => {
    await server.close();
  });

  it('rate limits each client X-Forwarded-For names, not the proxy they all come through', async () => {
    const from = (client: string) => httpRequest(server.url, '/v1/publish', { method: 'POST', headers: { 'content-type': 'application/json', 'x-forwarded-for': client }, body: '{"channel":"proxy/a","data":1}' });
    expect((await from('198.51.100.1')).status).toBe(201);
    const second = await from('198.51.100.1');
    expect(second.status).toBe(429);
    expect(errorCodeOf(second)).toBe('rate_limited');
    expect(second.headers['retry-after']).toMatch(/^[1-9][0-9]*$/);
    expect((await from('198.51.100.2, 10.0.0.1')).status).toBe(201);
  });
});

describe('POST /v1/publish answers after its local subscribers were written', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
  });

  it("hands the message to every local subscriber's socket before the publisher's 201", async () => {
    const subscribers = [new SseTestClient(server.url, ['first/a']), new SseTestClient(server.url, ['first/a'])];
    await Promise.all(subscribers.map((subscriber) => subscriber.ready));
    // Every write the server makes, in order: the subscribers' events and the publish's answer.
    const writes: string[] = [];
    const { _write: write, _writev: writev } = Socket.prototype;
    const record = (chunk: unknown): void => void writes.push(Buffer.isBuffer(chunk) ? chunk.toString('latin1', 0, 300) : String(chunk).slice(0, 300));
    Socket.prototype._write = function (this: Socket, chunk: unknown, ...rest: unknown[]) {
      record(chunk);
      return (write as (...args: unknown[]) => void).call(this, chunk, ...rest);
    } as Socket['_write'];
    Socket.prototype._writev = function (this: Socket, chunks: { chunk: unknown }[], ...rest: unknown[]) {
      record(chunks[0]?.chunk);
      return (writev as (...args: unknown[]) => void).call(this, chunks, ...rest);
    } as Socket['_writev'];
    try {
      await publish(server.url, [{ channel: 'first/a', data: { n: 1 } }]);
    } finally {
      Object.assign(Socket.prototype, { _write: write, _writev: writev });
    }
    await Promise.all(subscribers.map((subscriber) => subscriber.waitFor(() => subscriber.received.length === 1, 'the message')));
    subscribers.forEach((subscriber) => subscriber.drop());
    const answer = writes.findIndex((text) => text.startsWith('HTTP/1.1 201'));
    const events = writes.flatMap((text, index) => (text.startsWith('id:') && text.includes('"first/a"') ? [index] : []));
    expect(answer).toBeGreaterThanOrEqual(0);
    expect(events).toHaveLength(2);
    expect(Math.max(...events)).toBeLessThan(answer);
  });
});
