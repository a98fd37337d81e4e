/**
 * Clients and tokens for the security suite (test/security): a WebSocket and an SSE client that
 * carry credentials (header, `?token=`, `auth` op) and record every op or event with its data,
 * an HTTP helper, a long-poll helper, and token signing with jose. Everything talks to 127.0.0.1.
 */
import { get, request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { SignJWT, base64url, type CryptoKey, type JWTPayload } from 'jose';
import WebSocket from 'ws';
import { BaseTestClient } from './test-client.js';
import { SseParser } from '../../src/client/transports/sse-parser.js';

export type Op = Record<string, unknown>;
export type Caps = { match: string; allow: string[] }[];

export const SECRET = 'security-suite-secret-0123456789abcdef';
export const nowSeconds = (): number => Math.floor(Date.now() / 1000);

export interface TokenClaims extends JWTPayload {
  edgepush?: unknown;
}

/** An HS256 token; `exp` defaults to an hour from now (pass `exp: undefined` explicitly to omit it). */
export async function hsToken(claims: TokenClaims, secret = SECRET): Promise<string> {
  const payload: TokenClaims = { exp: nowSeconds() + 3600, ...claims };
  if ('exp' in claims && claims.exp === undefined) delete payload.exp;
  return new SignJWT(payload).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(new TextEncoder().encode(secret));
}

/** A token for `sub` with these caps (and optional subs), HS256 with the suite's secret. */
export function userToken(sub: string | undefined, caps: Caps, extra: { subs?: string[]; exp?: number; aud?: string; iss?: string } = {}): Promise<string> {
  const { subs, ...rest } = extra;
  return hsToken({ ...(sub === undefined ? {} : { sub }), ...rest, edgepush: { caps, ...(subs ? { subs } : {}) } });
}

/** A token signed with an asymmetric key (RS256 / ES256), naming `kid`. */
export async function asymmetricToken(alg: 'RS256' | 'ES256', key: CryptoKey, kid: string, claims: TokenClaims): Promise<string> {
  return new SignJWT({ exp: nowSeconds() + 3600, ...claims }).setProtectedHeader({ alg, kid, typ: 'JWT' }).sign(key);
}

/** An unsigned token (`alg: none`), crafted by hand as an attacker would. */
export function unsignedToken(claims: TokenClaims): string {
  const header = base64url.encode(JSON.stringify({ alg: 'none', typ: 'JWT' }));
  const payload = base64url.encode(JSON.stringify({ exp: nowSeconds() + 3600, ...claims }));
  return `${header}.${payload}.`;
}

export interface HttpAnswer {
  status: number;
  headers: Headers;
  body: unknown;
}

/** One HTTP request with optional bearer credential and JSON body. */
export async function http(method: string, url: string, options: { token?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<HttpAnswer> {
  const headers: Record<string, string> = { ...(options.headers ?? {}) };
  if (options.token !== undefined) headers['authorization'] = `Bearer ${options.token}`;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(url, { method, headers, ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}) });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = text === '' ? undefined : JSON.parse(text);
  } catch {
    // not JSON (metrics text): keep the text
  }
  return { status: response.status, headers: response.headers, body };
}

export function errorCode(answer: HttpAnswer): string | undefined {
  return (answer.body as { error?: { code?: string } } | undefined)?.error?.code;
}

/** One long-poll request (timeout 0 unless given): the status and the body. */
export function poll(baseUrl: string, channels: string[], options: { token?: string; cursor?: string; timeout?: number } = {}): Promise<HttpAnswer> {
  const params = new URLSearchParams();
  for (const channel of channels) params.append('channel', channel);
  if (options.cursor !== undefined) params.set('cursor', options.cursor);
  params.set('timeout', String(options.timeout ?? 0));
  return http('GET', `${baseUrl}/v1/poll?${params}`, options.token === undefined ? {} : { token: options.token });
}

export function history(baseUrl: string, channel: string, token?: string): Promise<HttpAnswer> {
  return http('GET', `${baseUrl}/v1/history?${new URLSearchParams({ channel })}`, token === undefined ? {} : { token });
}

export function publishAs(baseUrl: string, token: string | undefined, body: unknown, headers: Record<string, string> = {}, path = '/v1/publish'): Promise<HttpAnswer> {
  return http('POST', `${baseUrl}${path}`, { body, headers, ...(token === undefined ? {} : { token }) });
}

export interface WsOptions {
  /** Sent as `Authorization: Bearer` on the upgrade. */
  readonly header?: string;
  /** Sent as `?token=` on the upgrade. */
  readonly query?: string;
  readonly origin?: string;
  readonly cursor?: string;
}

/**
 * A WebSocket client that records every op. `opened` resolves on the upgrade (or rejects with the
 * HTTP status when the upgrade is refused); `closed` resolves with the close code.
 */
export class SecureWs extends BaseTestClient {
  readonly socket: WebSocket;
  readonly ops: Op[] = [];
  readonly opened: Promise<void>;
  readonly closed: Promise<number>;
  /** Resolves with the `hello` op. */
  readonly ready: Promise<void>;
  refusedStatus: number | undefined;
  closeCode: number | undefined;

  constructor(baseUrl: string, options: WsOptions = {}) {
    super();
    const params = new URLSearchParams();
    if (options.query !== undefined) params.set('token', options.query);
    if (options.cursor !== undefined) params.set('cursor', options.cursor);
    const query = params.size > 0 ? `?${params}` : '';
    const headers: Record<string, string> = {};
    if (options.header !== undefined) headers['authorization'] = `Bearer ${options.header}`;
    this.socket = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}/v1/ws${query}`, { headers, ...(options.origin !== undefined ? { origin: options.origin } : {}) });
    this.opened = new Promise((resolve, reject) => {
      this.socket.once('open', () => resolve());
      this.socket.once('unexpected-response', (_request: ClientRequest, response: IncomingMessage) => {
        this.refusedStatus = response.statusCode;
        response.resume();
        reject(Object.assign(new Error(`upgrade refused with ${response.statusCode}`), { status: response.statusCode }));
        this.socket.terminate();
      });
      this.socket.once('error', reject);
    });
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) => {
      this.socket.once('close', (code) => {
        this.closeCode = code;
        this.ended = { code };
        this.changed();
        resolve(code);
      });
    });
    this.socket.on('error', () => {
      this.ended ??= {};
      this.changed();
    });
    this.socket.on('message', (raw) => {
      const op = JSON.parse(raw.toString()) as Op;
      this.ops.push(op);
      if (op['op'] === 'message') {
        const { op: _op, cursor, ...envelope } = op;
        this.received.push(envelope as never);
        this.cursor = cursor as string;
      }
      this.changed();
    });
    this.ready = this.waitOp((op) => op['op'] === 'hello', 'a hello op').then(() => {});
    this.ready.catch(() => {});
  }

  send(op: unknown): void {
    this.socket.send(JSON.stringify(op));
  }

  /** The first op (of all received, from `from` on) that satisfies `predicate`. */
  waitOp(predicate: (op: Op) => boolean, what: string, from = 0): Promise<Op> {
    let found: Op | undefined;
    return this.waitFor(() => (found = this.ops.slice(from).find(predicate)) !== undefined, what, 15_000).then(() => found as Op);
  }

  /** Sends `op` and resolves with the first later op satisfying `predicate`. */
  request(op: unknown, predicate: (reply: Op) => boolean, what: string): Promise<Op> {
    const from = this.ops.length;
    this.send(op);
    return this.waitOp(predicate, what, from);
  }

  /** Subscribes; resolves with the `subscribed` or `error` op answering it (by op id). */
  subscribe(channel: string, id = `sub-${channel}`): Promise<Op> {
    return this.request({ op: 'subscribe', channel, id }, (reply) => reply['id'] === id && (reply['op'] === 'subscribed' || reply['op'] === 'error'), `the answer to subscribe ${channel}`);
  }

  /** Publishes over the socket; resolves with the `ack` or `error` op answering it. */
  publish(channel: string, data: unknown, id: string): Promise<Op> {
    return this.request({ op: 'publish', channel, data, id }, (reply) => reply['id'] === id && (reply['op'] === 'ack' || reply['op'] === 'error'), `the answer to publish ${id}`);
  }

  /** Sends an auth op; resolves with `authenticated` or `error` answering it. */
  auth(token: string, id = `auth-${this.ops.length}`, cursor?: string): Promise<Op> {
    return this.request({ op: 'auth', token, id, ...(cursor !== undefined ? { cursor } : {}) }, (reply) => reply['id'] === id && (reply['op'] === 'authenticated' || reply['op'] === 'error'), `the answer to auth ${id}`);
  }

  /** A ping round trip: every op the server sent before it has arrived once this resolves. */
  async ping(): Promise<void> {
    const id = `ping-${this.ops.length}-${Math.random()}`;
    await this.request({ op: 'ping', id }, (reply) => reply['op'] === 'pong' && reply['id'] === id, 'a pong');
  }

  get session(): string {
    const hello = this.ops.find((op) => op['op'] === 'hello');
    if (!hello) throw new Error('no hello yet');
    return hello['session'] as string;
  }

  messagesOf(channel: string): unknown[] {
    return this.received.filter((message) => message.channel === channel).map((message) => message.data);
  }

  drop(): void {
    this.socket.terminate();
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }
}

export interface SseEvent {
  event: string;
  data: unknown;
  id: string | undefined;
}

/** An SSE client over node:http that records every event (hello, subscribed, disconnect, ...) with its data. */
export class SecureSse extends BaseTestClient {
  readonly events: SseEvent[] = [];
  /** Resolves with the status line (200, or the refusal's status once its body is read). */
  readonly opened: Promise<number>;
  readonly ready: Promise<void>;
  status: number | undefined;
  headers: IncomingMessage['headers'] = {};
  errorBody: unknown;
  #request: ClientRequest | undefined;

  constructor(baseUrl: string, channels: string[], options: { header?: string; query?: string; origin?: string } = {}) {
    super();
    const params = new URLSearchParams();
    for (const channel of channels) params.append('channel', channel);
    if (options.query !== undefined) params.set('token', options.query);
    const headers: Record<string, string> = {};
    if (options.header !== undefined) headers['authorization'] = `Bearer ${options.header}`;
    if (options.origin !== undefined) headers['origin'] = options.origin;
    this.opened = new Promise((resolve, reject) => {
      this.#request = get(`${baseUrl}/v1/sse?${params}`, { headers }, (response) => {
        this.status = response.statusCode;
        this.headers = response.headers;
        response.setEncoding('utf8');
        if (response.statusCode !== 200) {
          let body = '';
          response.on('data', (chunk: string) => (body += chunk));
          response.on('end', () => {
            this.errorBody = JSON.parse(body);
            this.ended = {};
            this.changed();
            resolve(response.statusCode as number);
          });
          return;
        }
        resolve(200);
        // The client library's own SSE parser (src/client/transports/sse-parser.ts).
        const parser = new SseParser();
        response.on('data', (chunk: string) => {
          for (const event of parser.feed(chunk).events) {
            if (event.type === 'id') this.#dispatch('', [], event.id);
            else this.#dispatch(event.type, [event.data], event.id);
          }
        });
        const end = (): void => {
          this.ended ??= {};
          this.changed();
        };
        response.on('end', end);
        response.on('close', end);
        response.on('error', end);
      });
      this.#request.on('error', (error) => {
        this.ended ??= {};
        this.changed();
        reject(error);
      });
    });
    this.opened.catch(() => {});
    // Live once the id-only event after the backlog has come (the stream's starting cursor).
    this.ready = this.waitFor(() => this.events.some((event) => event.event === 'id'), 'the stream to be live', 15_000);
    this.ready.catch(() => {});
  }

  #dispatch(event: string, data: string[], id: string | undefined): void {
    if (id !== undefined) this.cursor = id;
    if (data.length === 0) {
      if (id !== undefined) this.events.push({ event: 'id', data: undefined, id });
      this.changed();
      return;
    }
    const payload = JSON.parse(data.join('\n')) as Record<string, unknown>;
    const type = event || 'message';
    this.events.push({ event: type, data: payload, id });
    if (type === 'message') this.received.push(payload as never);
    if (type === 'disconnect') this.ended = { code: payload['code'] as number };
    this.changed();
  }

  /** The first event of `type` (from index `from`) satisfying `predicate`. */
  waitEvent(type: string, predicate: (data: Record<string, unknown>) => boolean = () => true, from = 0): Promise<Record<string, unknown>> {
    let found: SseEvent | undefined;
    return this.waitFor(() => (found = this.events.slice(from).find((e) => e.event === type && predicate(e.data as Record<string, unknown>))) !== undefined, `an SSE ${type} event`, 15_000).then(
      () => (found as SseEvent).data as Record<string, unknown>,
    );
  }

  get session(): string {
    const hello = this.events.find((event) => event.event === 'hello');
    if (!hello) throw new Error('no hello yet');
    return (hello.data as { session: string }).session;
  }

  messagesOf(channel: string): unknown[] {
    return this.received.filter((message) => message.channel === channel).map((message) => message.data);
  }

  drop(): void {
    this.#request?.destroy();
    this.ended ??= {};
    this.changed();
  }

  pause(): void {}
  resume(): void {}
}

/** A raw HTTP request (for HEAD, OPTIONS, or a plain GET /v1/ws) with its status and headers. */
export function rawRequest(method: string, url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: IncomingMessage['headers']; body: string }> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(url, { method, headers }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode as number, headers: response.headers, body }));
    });
    request.on('error', reject);
    request.end();
  });
}
