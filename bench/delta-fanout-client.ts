/**
 * Load-generator child of the delta fan-out benchmark (forked with IPC by delta-fanout.ts; not
 * meant to be run by hand). Opens N subscribers per group (one channel and one delta mode per
 * group), reports when all hold their priming message, then when each burst has fully arrived.
 *
 * Counting must stay cheap next to the server, which shares the two cores: only the head of each
 * frame is read (channel, id, ts, whether a delta follows), with no JSON.parse and no decoding;
 * latency comes from the envelope's `ts`, the server's publish time on this same machine. Every
 * subscriber must see strictly increasing ids on its channel and exactly as many messages as were
 * published there: that rules out loss, duplicates and reordering without knowing the ids. Only
 * subscriber 0 of each group parses and rebuilds every message, to prove its deltas are right.
 */
import http from 'node:http';
import WebSocket, { type RawData } from 'ws';
import {
  fanoutData,
  type FanoutDrain,
  type FanoutOpen,
  type FanoutReady,
  type FanoutResult,
  type FromFanoutClient,
  type GroupResult,
  type ToFanoutClient,
} from './delta-fanout-ipc.js';
import { DeltaDecoder } from '../test/helpers/delta-decoder.js';
import type { ReceivedMessage } from '../test/helpers/test-client.js';
import { guardChildProcess, nowMs } from './ipc.js';
import { round2 } from './tally.js';
import { openInBatches } from './open-in-batches.js';

/** Hard stop in case the parent forgets us; the parent's own watchdog is shorter. */
const CHILD_WATCHDOG_MS = 150_000;
const DUPLICATE_GRACE_MS = 200;
/** Enough of a WebSocket frame to hold op, channel, id, ts and the start of the next field. */
const HEAD_BYTES = 160;

guardChildProcess('delta-fanout-client', CHILD_WATCHDOG_MS);

interface Sub {
  /** Offset of the last message received, -1 before the priming message. */
  lastOffset: number;
  /** Messages received after the priming one. */
  count: number;
}

class Group {
  readonly headPrefix: string;
  readonly subs: Sub[];
  readonly latencies: Float64Array;
  primed = 0;
  delivered = 0;
  latencyCount = 0;
  duplicates = 0;
  outOfOrder = 0;
  unexpected = 0;
  deltaFrames = 0;
  fullFrames = 0;
  bytes = 0;
  burst = 0;
  readonly rebuilder = new DeltaDecoder();
  verifiedCount = 0;
  verifyError: string | undefined;

  constructor(
    readonly index: number,
    channel: string,
    subscribers: number,
    /** Messages per subscriber after priming. */
    readonly messages: number,
  ) {
    this.headPrefix = `"channel":${JSON.stringify(channel)},"id":"`;
    this.subs = Array.from({ length: subscribers }, () => ({ lastOffset: -1, count: 0 }));
    this.latencies = new Float64Array(subscribers * (messages - cmd.burst));
  }
}

let cmd: FanoutOpen;
let groups: Group[] = [];
const closers: (() => void)[] = [];
let stopping = false;
let primedGroups = 0;
let resets = 0;
let disconnects = 0;
let expectedDeliveries = 0;
let deliveredTotal = 0;
let onComplete: (() => void) | undefined;
let cpuAtReady: NodeJS.CpuUsage | undefined;
/** The data texts every group's channel carries, priming first: what subscriber 0 must rebuild. */
let expectedTexts: string[] = [];

function send(message: FromFanoutClient): void {
  process.send?.(message);
}

/**
 * Records the envelope whose fields start at `at` in `s` (`"channel":…,"id":"P-O","ts":T,…`);
 * `full` gives the whole envelope text, asked for subscriber 0 only.
 */
function record(g: Group, sub: Sub, first: boolean, s: string, at: number, frameBytes: number, full: () => string): void {
  const receivedAt = nowMs();
  if (!s.startsWith(g.headPrefix, at)) return void g.unexpected++;
  const dash = s.indexOf('-', at + g.headPrefix.length);
  const quote = s.indexOf('"', dash);
  const offset = Number(s.slice(dash + 1, quote));
  const tsAt = quote + 7; // past the closing quote and `,"ts":`
  const comma = s.indexOf(',', tsAt);
  const ts = Number(s.slice(tsAt, comma));
  if (!s.startsWith(',"ts":', quote + 1) || !Number.isInteger(offset) || !Number.isFinite(ts)) return void g.unexpected++;
  const isDelta = s.startsWith('"delta"', comma + 1);
  if (first) verify(g, full());
  if (sub.lastOffset === -1) {
    // The first message after subscribing is always full: it becomes the next delta's base.
    sub.lastOffset = offset;
    if (isDelta) g.unexpected++;
    if (++g.primed === g.subs.length && ++primedGroups === groups.length) send({ type: 'primed' });
    return;
  }
  // One channel per subscriber, one partition: ids must rise strictly.
  if (offset === sub.lastOffset) return void g.duplicates++;
  if (offset < sub.lastOffset) return void g.outOfOrder++;
  if (sub.count >= g.messages) return void g.unexpected++;
  sub.lastOffset = offset;
  const k = sub.count++;
  if (isDelta) g.deltaFrames++;
  else g.fullFrames++;
  g.bytes += frameBytes;
  // The first burst is warm-up: counted, not timed.
  if (k >= cmd.burst) g.latencies[g.latencyCount++] = receivedAt - ts;
  g.delivered++;
  if (g.delivered === (g.burst + 1) * cmd.burst * g.subs.length) send({ type: 'burst', group: g.index, burst: g.burst++, lastReceivedAt: receivedAt });
  if (++deliveredTotal === expectedDeliveries) onComplete?.();
}

function verify(g: Group, text: string): void {
  if (g.verifyError !== undefined) return;
  try {
    const data = JSON.stringify(g.rebuilder.apply(JSON.parse(text) as ReceivedMessage));
    const want = expectedTexts[g.verifiedCount];
    if (data !== want) g.verifyError = `message ${g.verifiedCount} rebuilt to ${data.slice(0, 120)}, published ${want?.slice(0, 120)}`;
    g.verifiedCount++;
  } catch (error) {
    g.verifyError = (error as Error).message;
  }
}

function openWs(g: Group, sub: Sub, first: boolean): Promise<() => void> {
  const mode = cmd.groups[g.index]!.mode;
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${cmd.baseUrl.replace('http', 'ws')}/v1/ws`, { perMessageDeflate: false });
    socket.on('open', () => socket.send(JSON.stringify({ op: 'subscribe', channel: cmd.groups[g.index]!.channel, ...(mode === 'none' ? {} : { delta: mode }) })));
    socket.on('message', (raw: RawData) => {
      const frame = raw as Buffer;
      // Only the head is decoded: op, channel, id, ts and whether a delta follows.
      const head = frame.toString('latin1', 0, Math.min(frame.length, HEAD_BYTES));
      if (head.startsWith('{"op":"message",')) {
        record(g, sub, first, head, 16, frame.length, () => {
          const { op: _op, cursor: _cursor, ...envelope } = JSON.parse(frame.toString('utf8')) as Record<string, unknown>;
          return JSON.stringify(envelope);
        });
      } else if (head.startsWith('{"op":"subscribed"')) resolve(() => socket.terminate());
      else if (head.startsWith('{"op":"reset"')) resets++;
      else if (head.startsWith('{"op":"hello"')) return; // every socket's first frame: its session id
      else g.unexpected++;
    });
    socket.on('close', () => void (stopping || disconnects++));
    socket.on('error', (error) => void (stopping || reject(error)));
  });
}

const streamAgent = new http.Agent({ keepAlive: false, maxSockets: Infinity });

function openSse(g: Group, sub: Sub, first: boolean): Promise<() => void> {
  const { channel, mode } = cmd.groups[g.index]!;
  const url = `${cmd.baseUrl}/v1/sse?channel=${encodeURIComponent(channel)}${mode === 'none' ? '' : `&delta=${mode}`}`;
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: streamAgent }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`sse: HTTP ${res.statusCode}`));
      // latin1: one char per byte, so lengths are byte counts; the head is ASCII.
      res.setEncoding('latin1');
      let buffer = '';
      let ready = false;
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let start = 0;
        let end: number;
        while ((end = buffer.indexOf('\n\n', start)) !== -1) {
          if (buffer.startsWith('event: ', start)) {
            if (buffer.startsWith('event: reset', start)) resets++;
            else disconnects++;
          } else if (buffer.startsWith('id: ', start)) {
            const data = buffer.indexOf('\ndata: {', start);
            if (data !== -1 && data < end) {
              const text = buffer;
              const from = data + 8;
              const stop = end;
              record(g, sub, first, text, from, end + 2 - start, () => Buffer.from(text.slice(from - 1, stop), 'latin1').toString('utf8'));
            } else if (!ready) {
              ready = true;
              resolve(() => req.destroy());
            }
          }
          start = end + 2;
        }
        buffer = start === 0 ? buffer : buffer.slice(start);
      });
      res.on('close', () => void (stopping || disconnects++));
    });
    req.on('error', (error) => void (stopping || reject(error)));
  });
}

async function open(command: FanoutOpen): Promise<void> {
  cmd = command;
  const messages = cmd.burst * cmd.bursts;
  groups = cmd.groups.map((group, i) => new Group(i, group.channel, cmd.subscribers, messages));
  expectedDeliveries = groups.length * cmd.subscribers * messages;
  expectedTexts = fanoutData(messages).map((m) => JSON.stringify(m.data));
  const opener = cmd.transport === 'ws' ? openWs : openSse;
  const all = groups.flatMap((g) => g.subs.map((sub, i) => ({ g, sub, first: i === 0 })));
  const started = performance.now();
  const { opened, failed, firstError } = await openInBatches(all, cmd.openConcurrency, cmd.openTimeoutMs, ({ g, sub, first }) => opener(g, sub, first));
  closers.push(...opened);
  const report: FanoutReady = { type: 'ready', opened: closers.length, failed, openMs: Math.round(performance.now() - started) };
  if (firstError !== undefined) report.firstError = firstError;
  cpuAtReady = process.cpuUsage();
  send(report);
}

function groupResult(g: Group): GroupResult {
  const sorted = g.latencies.subarray(0, g.latencyCount).sort();
  const at = (q: number): number => round2(sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? NaN);
  // Subscriber 0 must have rebuilt the priming message and every later one.
  const verified = g.verifyError === undefined && g.verifiedCount === g.messages + 1;
  const result: GroupResult = {
    expected: g.subs.length * g.messages,
    delivered: g.delivered,
    duplicates: g.duplicates,
    outOfOrder: g.outOfOrder,
    unexpected: g.unexpected,
    deltaFrames: g.deltaFrames,
    fullFrames: g.fullFrames,
    bytes: g.bytes,
    latencyMs: { p50: at(0.5), p99: at(0.99), max: at(1) },
    verified,
  };
  if (!verified) result.verifyError = g.verifyError ?? `subscriber 0 rebuilt ${g.verifiedCount} of ${g.messages + 1} messages`;
  return result;
}

function drain(command: FanoutDrain): void {
  let reported = false;
  const finish = (timedOut: boolean): void => {
    if (reported) return;
    reported = true;
    const cpu = process.cpuUsage(cpuAtReady);
    stopping = true;
    for (const close of closers) close();
    streamAgent.destroy();
    const result: FanoutResult = {
      type: 'result',
      groups: groups.map(groupResult),
      resets,
      disconnects,
      clientCpuSec: Math.round((cpu.user + cpu.system) / 10_000) / 100,
      timedOut,
    };
    process.send?.(result, () => process.exit(0));
  };
  const timer = setTimeout(() => finish(true), command.timeoutMs);
  const complete = (): void => {
    clearTimeout(timer);
    setTimeout(() => finish(false), DUPLICATE_GRACE_MS);
  };
  if (deliveredTotal === expectedDeliveries) complete();
  else onComplete = complete;
}

process.on('message', (message: ToFanoutClient) => {
  if (message.type === 'open') {
    open(message).catch((error: unknown) => {
      process.stderr.write(`delta-fanout-client: open failed: ${(error as Error).stack ?? String(error)}\n`);
      process.exit(1);
    });
  } else if (message.type === 'drain') drain(message);
});
