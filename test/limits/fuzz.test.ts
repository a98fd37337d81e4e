/**
 * Seeded fuzz of the server's input handling: tens of thousands of generated HTTP query strings,
 * headers, request bodies and tokens, and WebSocket frames (test/helpers/fuzz-inputs.ts), sent to a
 * closed server (HS256 tokens, an API key, anonymous caps) whose rate limits are lifted so that the
 * inputs reach the code behind them. What a user would notice is asserted:
 *
 * - no input is answered with a 5xx (the server runs on its embedded log: not even 503);
 * - every 4xx has the documented body `{"error": {"code", "message"}}` with a code from the table;
 * - every WebSocket frame the server sends is a JSON object with an `op`, an `error` op has a
 *   documented `code` and a `message`, and every close code is a documented one (never 1011);
 * - afterwards the server still answers /healthz and delivers a new message to new subscribers, and
 *   its log holds no stack trace and no error line.
 *
 * Reproducible: every input is generated from its own fork of the seeded generator, named by its
 * kind and index, so a failure message (which prints the seed) names an input that the same seed
 * generates again: `http#123` is httpInput(new Rng(SEED), 123, …), `ws#2/45` is
 * wsFrame(new Rng(SEED).fork('ws#2/45'), …). Set FUZZ_SEED to run another seed, FUZZ_REPORT=<file>
 * to get every failure as JSON. Cursors and token expiry times differ between runs (the embedded
 * log's epoch is random, tokens are signed at start).
 *
 * Everything is bounded by count; the only timeouts are failure bounds for a hang.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { Agent } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ERROR_CODES } from '../../src/errors.js';
import type { RunningServer } from '../../src/start.js';
import { bodyInput, headersInput, queryInput, Rng, tokenInput, wsFrame, authorization, origin, cursor as cursorInput, makeTokenKit, type HttpInput, type TokenKit, type WsFrame } from '../helpers/fuzz-inputs.js';
import { captureLog, errorShapeProblem, httpRequest, keepAliveAgent, type HttpAnswer, type LogCapture } from '../helpers/limit-clients.js';
import { PollTestClient } from '../helpers/poll-client.js';
import { startTestServer } from '../helpers/server.js';
import { SseTestClient } from '../helpers/sse-client.js';

const SEED = process.env['FUZZ_SEED'] !== undefined && process.env['FUZZ_SEED'] !== '' ? Number(process.env['FUZZ_SEED']) >>> 0 : 20261203;

/** HTTP inputs (query strings, headers, bodies, tokens, mixed by HTTP_WEIGHTS). */
const HTTP_INPUTS = 36_000;
/** WebSocket frames, over WS_WORKERS sockets at a time (reopened when the server closes one). */
const WS_FRAMES = 20_000;
const HTTP_CONCURRENCY = 24;
const WS_WORKERS = 8;
/** Frames sent before a ping whose pong says the server has read them all. */
const WS_BATCH = 25;
/** A request, an upgrade or a pong that takes longer than this is a hang: a failure, never a wait. */
const HANG_MS = 15_000;

const HTTP_WEIGHTS: readonly [HttpInput['category'], number][] = [
  ['query', 35],
  ['headers', 20],
  ['body', 30],
  ['token', 15],
];

const SECRET = 'fuzz-test-secret-0123456789abcdefghij';
const API_KEY = 'fuzz-test-backend-api-key-000001';
/** The tokens' sub; the body fuzz's server-API commands name it now and then, so they reach the fuzzed sockets. */
const USER = 'u1';
const MAX_MESSAGE_BYTES = 4096;
/** The server's frame limits (transports/websocket.ts): a payload over the first is an error op, over the second close 1009. */
const FRAME_LIMIT = MAX_MESSAGE_BYTES + 4096;
const MAX_PAYLOAD = 2 * MAX_MESSAGE_BYTES + 4096;

/** Close codes of the WebSocket layer the protocol documents, and the protocol's own (docs/protocol.md, read below). */
const LAYER_CLOSE_CODES = [1000, 1001, 1002, 1007, 1009];

function documentedCloseCodes(): number[] {
  const text = readFileSync(new URL('../../docs/protocol.md', import.meta.url), 'utf8');
  const section = text.slice(text.indexOf('## Close and disconnect codes'), text.indexOf('## Operations endpoints'));
  return [...section.matchAll(/^\| `(\d{4})` \|/gm)].map((match) => Number(match[1]));
}

interface Failure {
  /** The input (seed-derived name, then the request or frame). */
  readonly input: string;
  readonly status: number | string;
  readonly body: string;
}

function clip(text: string, max = 300): string {
  return text.length <= max ? text : `${text.slice(0, max)}…(${text.length} chars)`;
}

function preview(data: string | Buffer | undefined, max = 200): string {
  if (data === undefined) return '';
  if (typeof data === 'string') return clip(JSON.stringify(data), max);
  const text = data.toString('utf8');
  return Buffer.from(text, 'utf8').equals(data) ? `utf8:${clip(JSON.stringify(text), max)}` : `hex:${clip(data.toString('hex'), max)}`;
}

function describeHttp(name: string, input: HttpInput): string {
  return `seed=${SEED} ${name} [${input.category}] ${input.method} ${clip(input.path)} headers=${clip(JSON.stringify(input.headers))}${input.body !== undefined ? ` body=${preview(input.body)}` : ''}`;
}

/**
 * The failures for an assertion message: how many, then one example of each kind (status and
 * the start of the body), so that a rare kind is not hidden behind a frequent one.
 */
function report(failures: readonly Failure[], what: string): string {
  const kinds = new Map<string, { example: Failure; count: number }>();
  for (const failure of failures) {
    const key = `${failure.status} ${failure.body.replace(/'[^']*'/g, "'…'").slice(0, 80)}`;
    const kind = kinds.get(key);
    if (kind) kind.count++;
    else kinds.set(key, { example: failure, count: 1 });
  }
  const examples = [...kinds.values()].slice(0, 8).map(({ example, count }) => `  [${count}×] ${example.input}\n    → ${example.status} ${clip(example.body, 400)}`);
  return `${failures.length} ${what} (seed ${SEED}; rerun with FUZZ_SEED=${SEED}, FUZZ_REPORT=<file> lists them all); one of each kind:\n${examples.join('\n')}`;
}

/** Counts by label, for the summary printed at the end. */
class Tally {
  readonly counts = new Map<string, number>();
  add(key: string): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }
  toString(): string {
    return [...this.counts].sort((a, b) => b[1] - a[1]).map(([key, count]) => `${key}: ${count}`).join(', ');
  }
}

interface Results {
  http: { sent: Record<string, number>; serverErrors: Failure[]; badShapes: Failure[]; noAnswer: Failure[]; tally: Tally };
  ws: {
    frames: number;
    frameKinds: Tally;
    upgrades: number;
    sockets: number;
    badFrames: Failure[];
    badErrorOps: Failure[];
    closes: { code: number; input: string }[];
    clientErrors: Failure[];
    hangs: Failure[];
    refusals: Failure[];
    tally: Tally;
  };
  /** Close codes a backend chose through the server API (accepted `POST /v1/server/disconnect`). */
  serverApiCodes: Set<number>;
}

describe(`fuzz (seed ${SEED})`, () => {
  let server: RunningServer;
  let log: LogCapture;
  let kit: TokenKit;
  let realCursor: string;
  let results: Results;
  let fuzzMs = 0;

  beforeAll(async () => {
    server = await startTestServer({
      logLevel: 'info',
      jwtSecret: SECRET,
      apiKeys: API_KEY,
      anonymousCaps: [{ match: 'public/#', allow: ['sub', 'hst', 'pub'] }],
      // Far above what the fuzz sends: inputs must reach the code behind the limits.
      opRate: 1_000_000,
      publishRate: 1_000_000,
      maxConnectionsPerIp: 1_000_000,
      connectionRatePerIp: 1_000_000,
      maxMessageBytes: MAX_MESSAGE_BYTES,
      // A poll the fuzz asks to hold is held at most a second (inputs ask for 0 to 1e400 seconds).
      pollTimeout: 1,
      pollMaxTimeout: 1,
    });
    log = captureLog(server);
    kit = await makeTokenKit(SECRET, API_KEY, USER);
    // A cursor the server minted, for the generators' near-misses.
    const first = await httpRequest(server.url, '/v1/poll?channel=public/x&timeout=0');
    expect(first.status, first.text).toBe(200);
    realCursor = (JSON.parse(first.text) as { cursor: string }).cursor;
    const started = Date.now();
    results = await fuzz(server.url, kit, realCursor);
    fuzzMs = Date.now() - started;
    // Every failure, not only the first few the assertions show: FUZZ_REPORT=<file>.
    const reportFile = process.env['FUZZ_REPORT'];
    if (reportFile) writeFileSync(reportFile, JSON.stringify({ seed: SEED, ...results, serverApiCodes: [...results.serverApiCodes], log: log.problems() }, (key, value: unknown) => (value instanceof Tally ? Object.fromEntries(value.counts) : value), 1));
    console.log(
      `fuzz seed ${SEED}: ${fuzzMs} ms; HTTP ${JSON.stringify(results.http.sent)}; WebSocket ${results.ws.frames} frames (${results.ws.frameKinds}), ${results.ws.upgrades} fuzzed upgrades, ${results.ws.sockets} sockets\n` +
        `  HTTP answers: ${results.http.tally}\n  WebSocket: ${results.ws.tally}`,
    );
  }, 150_000);

  afterAll(async () => {
    await server?.close();
  });

  it(`sent at least 50,000 inputs`, () => {
    const http = Object.values(results.http.sent).reduce((sum, count) => sum + count, 0);
    expect(http + results.ws.frames + results.ws.upgrades).toBeGreaterThanOrEqual(50_000);
    for (const category of ['query', 'headers', 'body', 'token']) expect(results.http.sent[category], category).toBeGreaterThan(1000);
    expect(results.ws.frames).toBeGreaterThan(10_000);
  });

  it('answers every HTTP input, none with a 5xx', () => {
    expect(results.http.noAnswer, report(results.http.noAnswer, 'inputs got no answer')).toEqual([]);
    expect(results.http.serverErrors, report(results.http.serverErrors, 'inputs got a 5xx')).toEqual([]);
  });

  it('answers every 4xx with the documented error body and a code from the table', () => {
    expect(results.http.badShapes, report(results.http.badShapes, '4xx answers without the documented error body')).toEqual([]);
    expect(results.ws.refusals, report(results.ws.refusals, 'refused WebSocket upgrades without the documented error body')).toEqual([]);
  });

  it('sends only JSON ops on a WebSocket; error ops carry a documented code and a message', () => {
    expect(results.ws.badFrames, report(results.ws.badFrames, 'server frames that are not a JSON object with an op')).toEqual([]);
    expect(results.ws.badErrorOps, report(results.ws.badErrorOps, 'bad error ops')).toEqual([]);
    expect(results.ws.clientErrors, report(results.ws.clientErrors, 'WebSocket errors on the client side')).toEqual([]);
    expect(results.ws.hangs, report(results.ws.hangs, 'WebSocket hangs')).toEqual([]);
  });

  it('closes WebSockets only with documented codes, never 1011', () => {
    const documented = documentedCloseCodes();
    // The table's codes are there (a renamed heading would otherwise allow nothing but the layer's).
    expect(documented).toEqual(expect.arrayContaining([4001, 4003, 4008, 4029, 4501, 4503]));
    const allowed = new Set([...LAYER_CLOSE_CODES, ...documented, ...results.serverApiCodes]);
    const bad = results.ws.closes.filter((close) => !allowed.has(close.code)).map((close): Failure => ({ input: close.input, status: `close ${close.code}`, body: '' }));
    expect(bad, report(bad, `closes with an undocumented code (allowed: ${[...allowed].join(', ')})`)).toEqual([]);
  });

  it('survives: /healthz answers, new subscribers get a message published after the fuzz', async () => {
    const health = await httpRequest(server.url, '/healthz');
    expect(health.status, health.text).toBe(200);
    const channel = `fuzz/after/${SEED}`;
    const sse = new SseTestClient(server.url, [channel], {}, `&token=${encodeURIComponent(kit.valid)}`);
    await sse.ready;
    // The long-poll client cannot send a token: it polls a channel anonymous may read.
    const anonymousChannel = `public/after/${SEED}`;
    const first = await httpRequest(server.url, `/v1/poll?channel=${encodeURIComponent(anonymousChannel)}&timeout=0`);
    expect(first.status, first.text).toBe(200);
    const poller = new PollTestClient(server.url, [anonymousChannel], { cursor: (JSON.parse(first.text) as { cursor: string }).cursor }, 1);
    const published = await httpRequest(server.url, '/v1/server/publish', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` },
      body: JSON.stringify({ messages: [{ channel, data: { after: 'fuzz' } }, { channel: anonymousChannel, data: { after: 'fuzz' } }] }),
    });
    expect(published.status, published.text).toBe(201);
    await sse.waitFor(() => sse.received.length >= 1 || sse.ended !== undefined, 'the SSE message');
    await poller.waitFor(() => poller.received.length >= 1 || poller.ended !== undefined, 'the long-poll message');
    expect(sse.received.map((message) => message.data)).toEqual([{ after: 'fuzz' }]);
    expect(poller.received.map((message) => message.data)).toEqual([{ after: 'fuzz' }]);
    sse.drop();
    poller.drop();
  });

  it('logs no stack trace and no error line', () => {
    const stacks = log.lines.filter((line) => JSON.stringify(line).includes('\\n    at ') || JSON.stringify(line).includes('"stack"'));
    const errors = log.lines.filter((line) => (line['level'] as number) >= 50);
    const show = (lines: Record<string, unknown>[]): string => lines.slice(0, 3).map((line) => clip(JSON.stringify(line), 1200)).join('\n');
    expect(stacks, `seed ${SEED}: ${stacks.length} log lines with a stack trace:\n${show(stacks)}`).toEqual([]);
    expect(errors, `seed ${SEED}: ${errors.length} error log lines:\n${show(errors)}`).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// The fuzz itself

async function fuzz(url: string, kit: TokenKit, realCursor: string): Promise<Results> {
  const root = new Rng(SEED);
  const serverApiCodes = new Set<number>();
  const [http, ws] = await Promise.all([fuzzHttp(url, kit, realCursor, root, serverApiCodes), fuzzWebSocket(url, kit, realCursor, root)]);
  return { http, ws, serverApiCodes };
}

/** Input `index` of the HTTP fuzz: its own generator, so the seed and the index are enough to make it again. */
function httpInput(root: Rng, index: number, ctx: { kit: TokenKit; cursor: string; selfUrl: string }): HttpInput {
  const rng = root.fork(`http#${index}`);
  let roll = rng.int(HTTP_WEIGHTS.reduce((sum, [, weight]) => sum + weight, 0));
  const category = HTTP_WEIGHTS.find(([, weight]) => (roll -= weight) < 0)?.[0] ?? 'query';
  switch (category) {
    case 'query':
      return queryInput(rng, ctx);
    case 'headers':
      return headersInput(rng, ctx);
    case 'body':
      return bodyInput(rng, ctx.kit, false);
    case 'token':
      return tokenInput(rng, ctx.kit);
  }
}

/** Errors of a reused keep-alive connection that the server had closed meanwhile. */
const RETRIED = new Set(['ECONNRESET', 'EPIPE']);

async function fuzzHttp(url: string, kit: TokenKit, realCursor: string, root: Rng, serverApiCodes: Set<number>): Promise<Results['http']> {
  const ctx = { kit, cursor: realCursor, selfUrl: url };
  const sent: Record<string, number> = { query: 0, headers: 0, body: 0, token: 0 };
  const serverErrors: Failure[] = [];
  const badShapes: Failure[] = [];
  const noAnswer: Failure[] = [];
  const tally = new Tally();
  const agents: Agent[] = Array.from({ length: 4 }, () => keepAliveAgent(undefined, HTTP_CONCURRENCY));
  let next = 0;
  const worker = async (w: number): Promise<void> => {
    const agent = agents[w % agents.length] as Agent;
    while (next < HTTP_INPUTS) {
      const index = next++;
      const name = `http#${index}`;
      const input = httpInput(root, index, ctx);
      sent[input.category] = (sent[input.category] ?? 0) + 1;
      const send = (via: Agent | false): Promise<HttpAnswer> =>
        httpRequest(url, input.path, { method: input.method, headers: input.headers, ...(input.body !== undefined ? { body: input.body } : {}), agent: via, timeoutMs: HANG_MS });
      let answer: HttpAnswer;
      try {
        answer = await send(agent).catch((error: unknown) => {
          // A kept-alive connection the server closed after its previous answer (its own choice
          // after a refusal) is not this input's doing: once more, on a connection of its own.
          if (RETRIED.has(String((error as NodeJS.ErrnoException).code)) || (error as Error).message === 'socket hang up') return send(false);
          throw error;
        });
      } catch (error) {
        noAnswer.push({ input: describeHttp(name, input), status: 'no answer', body: `${(error as NodeJS.ErrnoException).code ?? ''} ${(error as Error).message}` });
        continue;
      }
      let code = '';
      try {
        code = (JSON.parse(answer.text) as { error?: { code?: string } }).error?.code ?? '';
      } catch {}
      tally.add(`${input.category} ${answer.status}${code ? ` ${code}` : ''}`);
      if (answer.status >= 500 || answer.status < 100) {
        serverErrors.push({ input: describeHttp(name, input), status: answer.status, body: answer.text });
      } else if (answer.status >= 400 && input.method !== 'HEAD') {
        // A HEAD answer has no body to check.
        const problem = errorShapeProblem(answer.status, answer.headers, answer.text);
        if (problem !== undefined) badShapes.push({ input: describeHttp(name, input), status: answer.status, body: `${problem} | ${answer.text}` });
      } else if (answer.status === 202 && input.path.startsWith('/v1/server/disconnect') && typeof input.body === 'string') {
        // The backend chose this close code for the user's sockets: documented as any 4000–4999.
        const chosen = (JSON.parse(input.body) as { code?: number }).code;
        serverApiCodes.add(chosen ?? 4503);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: HTTP_CONCURRENCY }, (_, w) => worker(w)));
  } finally {
    for (const agent of agents) agent.destroy();
  }
  return { sent, serverErrors, badShapes, noAnswer, tally };
}

/** How a fuzzing socket is opened: anonymous, with the good token (header or query), or a fuzzed upgrade. */
interface Upgrade {
  readonly query: string;
  readonly headers: Record<string, string>;
  readonly fuzzed: boolean;
  readonly description: string;
}

function upgradeFor(root: Rng, worker: number, socket: number, kit: TokenKit, url: string, realCursor: string): Upgrade {
  const name = `ws#${worker}/socket${socket}`;
  const rng = root.fork(name);
  const roll = rng.int(10);
  if (roll < 4) return { query: '', headers: {}, fuzzed: false, description: `${name} anonymous` };
  if (roll < 7) return { query: '', headers: { authorization: `Bearer ${kit.valid}` }, fuzzed: false, description: `${name} Authorization: Bearer <valid>` };
  if (roll < 8) return { query: `token=${encodeURIComponent(kit.valid)}`, headers: {}, fuzzed: false, description: `${name} ?token=<valid>` };
  // A fuzzed upgrade: credentials in a header or the query, an Origin, a cursor for the token's subs.
  const headers: Record<string, string> = {};
  const params: string[] = [];
  if (rng.chance(0.5)) headers['authorization'] = authorization(rng, kit);
  else if (rng.chance(0.7)) params.push(`token=${encodeURIComponent(rng.pick(kit.pool))}`);
  if (rng.chance(0.3)) headers['origin'] = origin(rng, url);
  if (rng.chance(0.3)) params.push(`cursor=${encodeURIComponent(cursorInput(rng, realCursor).replace(/[\ud800-\udfff]/g, '?'))}`);
  const query = params.join('&');
  return { query, headers, fuzzed: true, description: `seed=${SEED} ${name} upgrade ?${clip(query, 200)} headers=${clip(JSON.stringify(headers), 300)}` };
}

type Opened = { kind: 'open'; socket: WebSocket } | { kind: 'refused'; answer: HttpAnswer } | { kind: 'failed'; error: string };

/**
 * Opens a socket with every listener attached before the first frame can arrive (the hello, and
 * for a refused token the error op and the close right behind it).
 */
function openSocket(url: string, upgrade: Upgrade, onMessage: (data: WebSocket.RawData, binary: boolean) => void, onClose: (code: number) => void, onError: (error: Error) => void): Promise<Opened> {
  return new Promise((resolve) => {
    const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/ws${upgrade.query ? `?${upgrade.query}` : ''}`, { headers: upgrade.headers, perMessageDeflate: false, handshakeTimeout: HANG_MS });
    let settled = false;
    const settle = (value: Opened): void => {
      if (settled) return;
      settled = true;
      resolve(value);
    };
    socket.on('message', onMessage);
    socket.on('open', () => settle({ kind: 'open', socket }));
    socket.on('close', (code) => {
      if (settled) onClose(code);
      else settle({ kind: 'failed', error: `closed with ${code} before the upgrade finished` });
    });
    socket.on('error', (error) => {
      if (settled) onError(error);
      else settle({ kind: 'failed', error: `${(error as NodeJS.ErrnoException).code ?? ''} ${error.message}` });
    });
    socket.on('unexpected-response', (_request, response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => settle({ kind: 'refused', answer: { status: response.statusCode ?? 0, headers: response.headers, text } }));
    });
  });
}

/** Frames that close the socket by design: sent last in their batch. */
const CLOSING_KINDS = new Set(['too large', 'invalid utf-8']);

async function fuzzWebSocket(url: string, kit: TokenKit, realCursor: string, root: Rng): Promise<Results['ws']> {
  const out: Results['ws'] = { frames: 0, frameKinds: new Tally(), upgrades: 0, sockets: 0, badFrames: [], badErrorOps: [], closes: [], clientErrors: [], hangs: [], refusals: [], tally: new Tally() };
  const frameCtx = { cursor: realCursor, kit, frameLimit: FRAME_LIMIT, maxPayload: MAX_PAYLOAD };
  const perWorker = Math.ceil(WS_FRAMES / WS_WORKERS);

  const worker = async (w: number): Promise<void> => {
    let index = 0;
    for (let socketNumber = 0; index < perWorker && socketNumber < perWorker; socketNumber++) {
      const upgrade = upgradeFor(root, w, socketNumber, kit, url, realCursor);
      if (upgrade.fuzzed) out.upgrades++;
      /** The latest frames sent on this socket: what a bad reply or close is reported with. */
      const recent: string[] = [];
      const context = (): string => `${upgrade.description}; latest frames: ${recent.join(' | ') || '(none)'}`;
      let closeCode: number | undefined;
      let wake: (() => void) | undefined;
      const waitingFor = new Set<string>();
      const onMessage = (data: WebSocket.RawData, binary: boolean): void => {
        const text = Buffer.isBuffer(data) ? data.toString('utf8') : Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data).toString('utf8');
        let op: Record<string, unknown>;
        try {
          op = JSON.parse(text) as Record<string, unknown>;
        } catch {
          out.badFrames.push({ input: context(), status: 'not JSON', body: text });
          return;
        }
        if (binary || typeof op !== 'object' || op === null || Array.isArray(op) || typeof op['op'] !== 'string') {
          out.badFrames.push({ input: context(), status: binary ? 'binary frame' : 'no op', body: text });
          return;
        }
        out.tally.add(op['op'] === 'error' ? `error ${String(op['code'])}` : String(op['op']));
        if (op['op'] === 'error') {
          const code = op['code'];
          if (typeof code !== 'string' || !Object.hasOwn(ERROR_CODES, code) || code === 'internal' || code === 'unavailable' || typeof op['message'] !== 'string' || op['message'] === '') {
            out.badErrorOps.push({ input: context(), status: 'error op', body: text });
          }
        }
        if (op['op'] === 'pong' && typeof op['id'] === 'string' && waitingFor.delete(op['id'])) wake?.();
      };
      const onClose = (code: number): void => {
        closeCode = code;
        out.closes.push({ code, input: context() });
        out.tally.add(`close ${code}`);
        wake?.();
      };
      const onError = (error: Error): void => {
        out.clientErrors.push({ input: context(), status: `client error ${(error as NodeJS.ErrnoException).code ?? ''}`, body: error.message });
        wake?.();
      };
      const opened = await openSocket(url, upgrade, onMessage, onClose, onError);
      if (opened.kind === 'failed') {
        out.hangs.push({ input: upgrade.description, status: 'upgrade failed', body: opened.error });
        continue;
      }
      if (opened.kind === 'refused') {
        out.tally.add(`upgrade ${opened.answer.status}`);
        const problem = opened.answer.status >= 500 ? 'a 5xx' : errorShapeProblem(opened.answer.status, opened.answer.headers, opened.answer.text);
        if (problem !== undefined || opened.answer.status < 400) out.refusals.push({ input: upgrade.description, status: opened.answer.status, body: `${problem ?? ''} | ${opened.answer.text}` });
        continue;
      }
      out.sockets++;
      const { socket } = opened;
      // Batches of frames, each followed by a ping: its pong (ops are answered in turn) or the
      // close says the server has dealt with them.
      while (closeCode === undefined && index < perWorker) {
        for (let i = 0; i < WS_BATCH && index < perWorker && socket.readyState === WebSocket.OPEN; i++) {
          const name = `ws#${w}/${index}`;
          const frame: WsFrame = wsFrame(root.fork(name), frameCtx);
          index++;
          out.frames++;
          out.frameKinds.add(frame.kind);
          recent.push(`seed=${SEED} ${name} ${frame.kind}${frame.binary ? ' (binary)' : ''} ${preview(frame.data, 160)}`);
          if (recent.length > 4) recent.shift();
          socket.send(frame.data, { binary: frame.binary });
          if (CLOSING_KINDS.has(frame.kind)) break;
        }
        if (socket.readyState !== WebSocket.OPEN) break;
        const syncId = `sync-${w}-${index}`;
        waitingFor.add(syncId);
        let timer: NodeJS.Timeout | undefined;
        const outcome = await new Promise<'pong' | 'closed' | 'hang'>((resolve) => {
          wake = () => {
            if (!waitingFor.has(syncId)) resolve('pong');
            else if (closeCode !== undefined || socket.readyState === WebSocket.CLOSED) resolve('closed');
          };
          timer = setTimeout(() => resolve('hang'), HANG_MS);
          socket.send(JSON.stringify({ op: 'ping', id: syncId }));
        });
        clearTimeout(timer);
        wake = undefined;
        if (outcome === 'hang') {
          out.hangs.push({ input: context(), status: 'no pong', body: `no pong to ${syncId} and no close within ${HANG_MS} ms` });
          socket.terminate();
          break;
        }
      }
      if (closeCode === undefined) {
        if (socket.readyState === WebSocket.OPEN) socket.close(1000, 'done');
        await new Promise<void>((resolve) => {
          if (socket.readyState === WebSocket.CLOSED) return resolve();
          socket.once('close', () => resolve());
        });
      }
    }
  };
  await Promise.all(Array.from({ length: WS_WORKERS }, (_, w) => worker(w)));
  return out;
}
