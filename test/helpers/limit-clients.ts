/**
 * Clients for the limit, flood and fuzz tests: plain HTTP requests over node:http (any loopback
 * source address, keep-alive or a fresh connection each), SSE streams and WebSocket upgrades that
 * report a refusal's status instead of throwing, a /metrics reader, and a capture of the server's
 * log lines. Limits are per client address, and on Linux every 127.0.0.x is a loopback address a
 * client can bind, so each test client can be "someone else" by choosing its own.
 */
import { Agent, request, type ClientRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { pino } from 'pino';
import WebSocket from 'ws';
import { ERROR_CODES } from '../../src/errors.js';
import type { RunningServer } from '../../src/start.js';

export interface HttpAnswer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** The body (for a 200 event stream: what came before it was cut, at least one whole event). */
  readonly text: string;
}

export interface HttpOptions {
  readonly method?: string;
  readonly headers?: Record<string, string>;
  readonly body?: string | Buffer;
  /** A keep-alive agent to reuse connections; false (the default) opens a connection of its own. */
  readonly agent?: Agent | false;
  /** Source address of a new connection (127.0.0.x). */
  readonly localAddress?: string;
  /** Rejects when no answer came in time: a hang is a failure, never a wait. */
  readonly timeoutMs?: number;
  /** Aborts the request (the promise then rejects with an AbortError). */
  readonly signal?: AbortSignal;
}

/**
 * One request; resolves with the whole answer. A 200 event stream is cut after its first event
 * (the stream would never end): use openSse to hold one.
 */
export function httpRequest(baseUrl: string, path: string, options: HttpOptions = {}): Promise<HttpAnswer> {
  const url = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path,
        method: options.method ?? 'GET',
        headers: options.headers,
        agent: options.agent ?? false,
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.localAddress ? { localAddress: options.localAddress } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        const stream = res.statusCode === 200 && String(res.headers['content-type']).startsWith('text/event-stream');
        res.on('data', (chunk: Buffer) => {
          chunks.push(chunk);
          if (stream && Buffer.concat(chunks).includes('\n\n')) {
            clearTimeout(timer);
            resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') });
            res.destroy();
          }
        });
        res.on('end', () => {
          clearTimeout(timer);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') });
        });
        res.on('error', (error) => {
          clearTimeout(timer);
          reject(error);
        });
      },
    );
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`no answer to ${options.method ?? 'GET'} ${path.slice(0, 200)} within ${options.timeoutMs ?? 10_000} ms`));
    }, options.timeoutMs ?? 10_000);
    req.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    req.end(options.body);
  });
}

/** The documented error body, or why an answer does not have it (undefined when it does). */
export function errorShapeProblem(status: number, headers: IncomingHttpHeaders, text: string): string | undefined {
  if (!String(headers['content-type']).startsWith('application/json')) return `content-type ${String(headers['content-type'])}, not JSON`;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return `body is not JSON: ${JSON.stringify(text.slice(0, 120))}`;
  }
  const error = (body as { error?: unknown }).error;
  if (typeof error !== 'object' || error === null) return `no {"error": {...}} object: ${text.slice(0, 160)}`;
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (typeof code !== 'string' || !Object.hasOwn(ERROR_CODES, code)) return `code ${JSON.stringify(code)} is not one of ERROR_CODES: ${text.slice(0, 160)}`;
  if (typeof message !== 'string' || message === '') return `no message: ${text.slice(0, 160)}`;
  const expected = ERROR_CODES[code as keyof typeof ERROR_CODES].status;
  if (expected !== status) return `code ${code} answered with status ${status}, the table says ${expected}`;
  return undefined;
}

/** The error code of an answer in the documented shape (undefined otherwise). */
export function errorCodeOf(answer: HttpAnswer): string | undefined {
  try {
    return (JSON.parse(answer.text) as { error?: { code?: string } }).error?.code;
  } catch {
    return undefined;
  }
}

/** An SSE request held open: `status` 200 (the stream is live, its first event read) or the refusal. */
export interface SseAttempt {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** The refusal's body (empty for a live stream). */
  readonly text: string;
  /** Ends the stream from the client side (no-op for a refusal). */
  close(): void;
}

export function openSse(baseUrl: string, query: string, options: { localAddress?: string; headers?: Record<string, string>; timeoutMs?: number } = {}): Promise<SseAttempt> {
  const url = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    let response: IncomingMessage | undefined;
    const req: ClientRequest = request(
      { host: url.hostname, port: url.port, path: `/v1/sse?${query}`, agent: false, headers: options.headers, ...(options.localAddress ? { localAddress: options.localAddress } : {}) },
      (res) => {
        response = res;
        let text = '';
        res.setEncoding('utf8');
        if (res.statusCode !== 200) {
          res.on('data', (chunk: string) => (text += chunk));
          res.on('end', () => {
            clearTimeout(timer);
            resolve({ status: res.statusCode ?? 0, headers: res.headers, text, close: () => {} });
          });
          return;
        }
        let seen = '';
        const onData = (chunk: string): void => {
          seen += chunk;
          if (!seen.includes('\n\n')) return;
          clearTimeout(timer);
          res.off('data', onData);
          res.resume();
          resolve({ status: 200, headers: res.headers, text: '', close: () => req.destroy() });
        };
        res.on('data', onData);
      },
    );
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`no answer to SSE ?${query} within ${options.timeoutMs ?? 10_000} ms`));
    }, options.timeoutMs ?? 10_000);
    req.on('error', (error) => {
      clearTimeout(timer);
      if (response === undefined) reject(error);
    });
    req.end();
  });
}

/** A WebSocket upgrade: open (the first server op received) or refused before the upgrade with an HTTP status. */
export type WsAttempt =
  | { readonly kind: 'open'; readonly socket: WebSocket; readonly first: Record<string, unknown> }
  | { readonly kind: 'refused'; readonly status: number; readonly headers: IncomingHttpHeaders; readonly text: string };

export function openWebSocket(baseUrl: string, query = '', options: { localAddress?: string; headers?: Record<string, string>; timeoutMs?: number } = {}): Promise<WsAttempt> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}/v1/ws${query ? `?${query}` : ''}`, {
      ...(options.localAddress ? { localAddress: options.localAddress } : {}),
      ...(options.headers ? { headers: options.headers } : {}),
      perMessageDeflate: false,
    });
    const timer = setTimeout(() => {
      socket.terminate();
      reject(new Error(`no answer to the WebSocket upgrade ?${query.slice(0, 200)} within ${options.timeoutMs ?? 10_000} ms`));
    }, options.timeoutMs ?? 10_000);
    socket.on('unexpected-response', (_req, res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ kind: 'refused', status: res.statusCode ?? 0, headers: res.headers, text });
      });
    });
    socket.once('message', (data) => {
      clearTimeout(timer);
      resolve({ kind: 'open', socket, first: JSON.parse(data.toString()) as Record<string, unknown> });
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/** Resolves with the close code once `socket` is closed (at once if it already is). */
export function closed(socket: WebSocket): Promise<number> {
  if (socket.readyState === WebSocket.CLOSED) return Promise.resolve(-1);
  return new Promise((resolve) => socket.once('close', (code) => resolve(code)));
}

/** /metrics as text (with a bearer token on a closed server). */
export async function scrapeMetrics(baseUrl: string, token?: string): Promise<string> {
  const answer = await httpRequest(baseUrl, '/metrics', { headers: token ? { authorization: `Bearer ${token}` } : {} });
  if (answer.status !== 200) throw new Error(`/metrics answered ${answer.status}: ${answer.text.slice(0, 200)}`);
  return answer.text;
}

/** The value of one sample (`name{labels}`) in Prometheus text, 0 when absent. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) have[pair[1] as string] = pair[2] as string;
    if (Object.entries(labels).every(([key, value]) => have[key] === value)) return Number(match[3]);
  }
  return 0;
}

/** The sum of every sample of `name` whose labels include `labels`. */
export function metricSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) have[pair[1] as string] = pair[2] as string;
    if (Object.entries(labels).every(([key, value]) => have[key] === value)) sum += Number(match[3]);
  }
  return sum;
}

/**
 * Resolves once `check` holds, asking again every 20 ms: for state only the server sees (a slot
 * released when it noticed a client left), read through /metrics. The timeout is a failure.
 */
export async function eventually(check: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export interface LogCapture {
  /** Every line written since capture began, parsed. */
  readonly lines: Record<string, unknown>[];
  /** Lines at error level or above, or carrying an error with a stack. */
  problems(): Record<string, unknown>[];
}

/**
 * Sends the server's log lines (fastify's logger and its children, which is every line the HTTP
 * side writes) to memory. Start the server with the level to capture.
 */
export function captureLog(server: RunningServer): LogCapture {
  const lines: Record<string, unknown>[] = [];
  // pino writes each line with one synchronous write(string) call: any object with write() will do.
  const sink = {
    write(text: string): void {
      for (const line of text.split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
    },
  };
  (server.app.log as unknown as Record<symbol, unknown>)[pino.symbols.streamSym] = sink;
  return {
    lines,
    problems: () => lines.filter((line) => (line['level'] as number) >= 50 || JSON.stringify(line).includes('"stack"')),
  };
}

/** A keep-alive agent bound to one source address. */
export function keepAliveAgent(localAddress: string | undefined, maxSockets: number): Agent {
  return new Agent({ keepAlive: true, maxSockets, ...(localAddress ? { localAddress } : {}) });
}
