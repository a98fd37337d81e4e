/**
 * Bytes on the wire per message, full vs json-patch vs vcdiff, through a real server: one SSE and
 * one WebSocket subscriber per delta mode, all on every channel of a data set, then the data set
 * is published once. Each subscriber counts the bytes of every SSE event / WebSocket frame payload,
 * rebuilds every message from its deltas and must end up with exactly what was published, in order.
 *
 * Few subscribers, so they live in the orchestrator process; the server is a separate process.
 */
import http from 'node:http';
import WebSocket, { type RawData } from 'ws';
import type { Dataset } from './delta-datasets.js';
import { DeltaDecoder } from '../test/helpers/delta-decoder.js';
import type { ReceivedMessage } from '../test/helpers/test-client.js';
import { round2 } from './tally.js';

export const MODES = ['none', 'json-patch', 'vcdiff'] as const;
export type Mode = (typeof MODES)[number];
const WIRE_TRANSPORTS = ['sse', 'ws'] as const;
type WireTransport = (typeof WIRE_TRANSPORTS)[number];

const OPEN_TIMEOUT_MS = 10_000;
const RECEIVE_TIMEOUT_MS = 30_000;
/** Publish bodies stay well under the server's body limit (1 MiB with --max-message-bytes 256 KiB). */
const MAX_BATCH_BODY = 512 * 1024;
const MAX_BATCH_MESSAGES = 200;

interface Received {
  /** The SSE event (`id: …\ndata: {…}\n\n`) or the WebSocket frame payload, in bytes. */
  bytes: number;
  /** `bytes` plus transport framing: the WebSocket frame header (SSE: counted per stream instead). */
  wireBytes: number;
  envelope: ReceivedMessage;
}

class WireSubscriber {
  readonly received: Received[] = [];
  /** SSE only: socket bytes read from "subscribed" to the end, HTTP chunk framing included. */
  socketBytes: number | undefined;
  error: Error | undefined;
  close: () => void = () => {};
  #waiter: (() => void) | undefined;

  constructor(
    readonly transport: WireTransport,
    readonly mode: Mode,
  ) {}

  push(bytes: number, wireBytes: number, text: string): void {
    try {
      this.received.push({ bytes, wireBytes, envelope: JSON.parse(text) as ReceivedMessage });
    } catch (error) {
      this.error ??= error as Error;
    }
    this.#waiter?.();
  }

  /** Resolves once `count` messages arrived; rejects after `timeoutMs`. */
  waitFor(count: number, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.transport}/${this.mode}: ${this.received.length} of ${count} messages after ${timeoutMs} ms`)), timeoutMs);
      const check = (): void => {
        if (this.received.length < count && this.error === undefined) return;
        clearTimeout(timer);
        this.#waiter = undefined;
        resolve();
      };
      this.#waiter = check;
      check();
    });
  }
}

function openSse(baseUrl: string, channels: string[], sub: WireSubscriber): Promise<void> {
  const query = channels.map((c) => `channel=${encodeURIComponent(c)}`).join('&') + (sub.mode === 'none' ? '' : `&delta=${sub.mode}`);
  return new Promise((resolve, reject) => {
    const req = http.get(`${baseUrl}/v1/sse?${query}`, { agent: false }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`sse: HTTP ${res.statusCode}`));
      res.setEncoding('utf8');
      let buffer = '';
      let bytesAtReady: number | undefined;
      sub.close = () => {
        if (bytesAtReady !== undefined && sub.socketBytes === undefined) sub.socketBytes = res.socket.bytesRead - bytesAtReady;
        req.destroy();
      };
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) !== -1) {
          const event = buffer.slice(0, end + 2);
          buffer = buffer.slice(end + 2);
          const data = event.indexOf('\ndata: ');
          if (event.startsWith('id: ') && data !== -1) sub.push(Buffer.byteLength(event), Buffer.byteLength(event), event.slice(data + 7, -2));
          else if (event.startsWith('event: hello')) continue; // the stream's session id, first
          else if (event.startsWith('event: ')) sub.error ??= new Error(`sse ${sub.mode}: unexpected ${event.slice(0, 200)}`);
          else if (event.startsWith('id: ') && bytesAtReady === undefined) {
            // The first id-only event: subscribed. Nothing is published before every subscriber is.
            bytesAtReady = res.socket.bytesRead;
            resolve();
          }
        }
      });
    });
    req.on('error', (error) => (sub.error ??= error, reject(error)));
  });
}

/** Server frames are unmasked: 2 header bytes, +2 for 126–65535 bytes of payload, +8 beyond. */
function wsHeaderBytes(length: number): number {
  return length < 126 ? 2 : length < 65_536 ? 4 : 10;
}

function openWs(baseUrl: string, channels: string[], sub: WireSubscriber): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${baseUrl.replace('http', 'ws')}/v1/ws`, { perMessageDeflate: false });
    sub.close = () => socket.terminate();
    let subscribed = 0;
    socket.on('open', () => {
      for (const channel of channels) socket.send(JSON.stringify({ op: 'subscribe', channel, ...(sub.mode === 'none' ? {} : { delta: sub.mode }) }));
    });
    socket.on('message', (raw: RawData) => {
      const frame = raw as Buffer;
      const text = frame.toString('utf8');
      if (text.startsWith('{"op":"message"')) {
        const { op: _op, cursor: _cursor, ...envelope } = JSON.parse(text) as Record<string, unknown>;
        sub.push(frame.length, frame.length + wsHeaderBytes(frame.length), JSON.stringify(envelope));
      } else if (text.startsWith('{"op":"subscribed"')) {
        if (++subscribed === channels.length) resolve();
      } else if (!text.startsWith('{"op":"hello"')) sub.error ??= new Error(`ws ${sub.mode}: unexpected ${text.slice(0, 200)}`);
    });
    socket.on('error', (error) => (sub.error ??= error, reject(error)));
  });
}

/** Publishes in order, a bounded batch per request; returns the ids, one per message. */
async function publishAll(baseUrl: string, dataset: Dataset): Promise<string[]> {
  const ids: string[] = [];
  let batch: string[] = [];
  let bodyBytes = 0;
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    const response = await fetch(`${baseUrl}/v1/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: `{"messages":[${batch.join(',')}]}`,
      signal: AbortSignal.timeout(10_000),
    });
    const reply = (await response.json()) as { ids?: string[] };
    if (response.status !== 201 || reply.ids?.length !== batch.length) throw new Error(`publish failed: HTTP ${response.status} ${JSON.stringify(reply).slice(0, 200)}`);
    ids.push(...reply.ids);
    batch = [];
    bodyBytes = 0;
  };
  for (const message of dataset.messages) {
    const text = JSON.stringify(message);
    if (bodyBytes + text.length > MAX_BATCH_BODY || batch.length >= MAX_BATCH_MESSAGES) await flush();
    batch.push(text);
    bodyBytes += text.length + 1;
  }
  await flush();
  return ids;
}

/** Null when `sub` got exactly the published messages (ids and rebuilt data, per channel, in order); else why not. */
function mismatch(sub: WireSubscriber, dataset: Dataset, ids: string[]): string | null {
  if (sub.error) return sub.error.message;
  if (sub.received.length !== dataset.messages.length) return `${sub.received.length} messages, expected ${dataset.messages.length}`;
  const expected = new Map<string, { id: string; text: string }[]>();
  dataset.messages.forEach((m, i) => {
    const list = expected.get(m.channel) ?? [];
    list.push({ id: ids[i]!, text: JSON.stringify(m.data) });
    expected.set(m.channel, list);
  });
  const next = new Map<string, number>();
  const rebuilder = new DeltaDecoder();
  for (const { envelope } of sub.received) {
    const at = next.get(envelope.channel) ?? 0;
    next.set(envelope.channel, at + 1);
    const want = expected.get(envelope.channel)?.[at];
    if (!want || want.id !== envelope.id) return `${envelope.channel}: got ${envelope.id} as message ${at}, expected ${want?.id}`;
    const text = JSON.stringify(rebuilder.apply(envelope));
    if (text !== want.text) return `${envelope.id} rebuilt to ${text.slice(0, 120)}…, published ${want.text.slice(0, 120)}…`;
  }
  return null;
}

const mean = (values: number[]): number => values.reduce((s, v) => s + v, 0) / Math.max(1, values.length);

/** One JSON line per transport for `dataset`; `verified` false (with the reason) on any mismatch. */
export async function measureWire(baseUrl: string, dataset: Dataset): Promise<Record<string, unknown>[]> {
  const subs = WIRE_TRANSPORTS.flatMap((t) => MODES.map((m) => new WireSubscriber(t, m)));
  try {
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('wire subscribers did not open in time')), OPEN_TIMEOUT_MS).unref());
    await Promise.race([Promise.all(subs.map((s) => (s.transport === 'sse' ? openSse : openWs)(baseUrl, dataset.channels, s))), timeout]);
    const ids = await publishAll(baseUrl, dataset);
    await Promise.all(subs.map((s) => s.waitFor(dataset.messages.length, RECEIVE_TIMEOUT_MS).catch((e: Error) => (s.error ??= e))));
    for (const s of subs) s.close();
    return WIRE_TRANSPORTS.map((transport) => {
      const of = (mode: Mode): WireSubscriber => subs.find((s) => s.transport === transport && s.mode === mode)!;
      const problems = MODES.map((m) => mismatch(of(m), dataset, ids)).filter((p) => p !== null);
      const perMode = <T>(f: (s: WireSubscriber) => T): Record<Mode, T> => Object.fromEntries(MODES.map((m) => [m, f(of(m))])) as Record<Mode, T>;
      const bytes = perMode((s) => mean(s.received.map((r) => r.bytes)));
      const data = perMode((s) => mean(s.received.map((r) => Buffer.byteLength(JSON.stringify(r.envelope.data)))));
      // SSE: what the socket carried (chunked encoding included); WebSocket: payload + frame header.
      const wire = perMode((s) => (s.socketBytes ?? s.received.reduce((sum, r) => sum + r.wireBytes, 0)) / Math.max(1, s.received.length));
      const ratio = (v: Record<Mode, number>): Record<string, number> => ({ 'json-patch': round2(v['json-patch'] / v.none), vcdiff: round2(v.vcdiff / v.none) });
      const rounded = (v: Record<Mode, number>): Record<string, number> => ({ full: Math.round(v.none), 'json-patch': Math.round(v['json-patch']), vcdiff: Math.round(v.vcdiff) });
      return {
        phase: 'wire',
        dataset: dataset.name,
        transport,
        channels: dataset.channels.length,
        messages: dataset.messages.length,
        verified: problems.length === 0,
        ...(problems.length > 0 ? { problems } : {}),
        deltaMessages: { 'json-patch': of('json-patch').received.filter((r) => r.envelope.delta).length, vcdiff: of('vcdiff').received.filter((r) => r.envelope.delta).length },
        bytesPerMessage: rounded(bytes),
        ratio: ratio(bytes),
        wireBytesPerMessage: rounded(wire),
        dataBytesPerMessage: rounded(data),
        dataRatio: ratio(data),
      };
    });
  } finally {
    for (const s of subs) s.close();
  }
}
