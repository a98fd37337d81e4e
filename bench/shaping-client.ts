/**
 * Load-generator child of the eliding benchmark (forked with IPC by shaping-elide.ts; not meant to
 * be run by hand). Holds N WebSocket subscribers over C channels, with or without maxRate, and
 * counts per subscriber the message frames, the sum of their `elided` values and the last seq.
 *
 * It shares two cores with the server, so frames are scanned, not parsed: the head says whether
 * `"elided":n` is there (the server puts it right after the op), indexOf finds the channel and
 * the payload's `"seq":`, the only one in a frame (the publisher's data is {"seq":N,"pad":"xx…"}).
 */
import WebSocket, { type RawData } from 'ws';
import { guardChildProcess } from './ipc.js';
import { openInBatches } from './open-in-batches.js';
import { channelName, type FromShapeClient, type ShapeDrain, type ShapeOpen, type ShapeReady, type ShapeResult, type ToShapeClient } from './shaping-ipc.js';

/** Hard stop in case the parent forgets us; the parent's own watchdog is shorter. */
const CHILD_WATCHDOG_MS = 130_000;
/** After every final message arrived, keep listening this long so late extra frames are counted. */
const GRACE_MS = 300;

guardChildProcess('shaping-client', CHILD_WATCHDOG_MS);

const MESSAGE_HEAD = '{"op":"message",';
const ELIDED_HEAD = '{"op":"message","elided":';
const SEQ_KEY = Buffer.from('"seq":');
/** Enough of a frame to tell its op. */
const HEAD_BYTES = 20;
const CHAR_0 = 48;
const CHAR_9 = 57;

class Sub {
  frames = 0;
  elided = 0;
  lastSeq = -1;
  readonly channelField: Buffer;
  constructor(readonly channel: string) {
    this.channelField = Buffer.from(`"channel":${JSON.stringify(channel)}`);
  }
}

let subs: Sub[] = [];
const closers: (() => void)[] = [];
let stopping = false;
let eliding = false;
let finalSeq = Infinity;
let holdingFinal = 0;
let onAllFinal: (() => void) | undefined;
let cpuAtReady: NodeJS.CpuUsage | undefined;
const counts = { framesWithElided: 0, gapMismatches: 0, outOfOrder: 0, unexpected: 0, resets: 0, disconnects: 0 };
let reportedUnexpected = 0;

function send(message: FromShapeClient, then?: () => void): void {
  if (then) process.send?.(message, then);
  else process.send?.(message);
}

/** The unsigned integer at `at`, or -1 when there is no digit there. */
function readUint(frame: Buffer, at: number): number {
  let value = 0;
  let i = at;
  for (; i < frame.length && i < at + 16; i++) {
    const c = frame[i] as number;
    if (c < CHAR_0 || c > CHAR_9) break;
    value = value * 10 + (c - CHAR_0);
  }
  return i === at ? -1 : value;
}

function unexpected(frame: Buffer): void {
  counts.unexpected++;
  if (reportedUnexpected++ < 3) process.stderr.write(`shaping-client: unexpected frame ${frame.toString('utf8', 0, Math.min(frame.length, 200))}\n`);
}

function onMessageFrame(sub: Sub, frame: Buffer): void {
  let elided = -1;
  if (frame.toString('latin1', 0, ELIDED_HEAD.length) === ELIDED_HEAD) {
    elided = readUint(frame, ELIDED_HEAD.length);
    if (elided < 0) return unexpected(frame);
    counts.framesWithElided++;
  }
  const seqAt = frame.indexOf(SEQ_KEY, MESSAGE_HEAD.length);
  const seq = seqAt === -1 ? -1 : readUint(frame, seqAt + SEQ_KEY.length);
  if (seq < 0 || frame.indexOf(sub.channelField, MESSAGE_HEAD.length) === -1) return unexpected(frame);
  if (seq <= sub.lastSeq) counts.outOfOrder++;
  // Eliding: n replaced messages between the last one sent and this one. Otherwise: no gap.
  else if (seq - sub.lastSeq - 1 !== (eliding ? elided : 0) || (!eliding && elided !== -1)) counts.gapMismatches++;
  sub.frames++;
  if (elided > 0) sub.elided += elided;
  if (seq > sub.lastSeq) {
    if (seq >= finalSeq && sub.lastSeq < finalSeq) {
      holdingFinal++;
      if (holdingFinal === subs.length) onAllFinal?.();
    }
    sub.lastSeq = seq;
  }
}

function openWs(baseUrl: string, sub: Sub, maxRate: number | undefined): Promise<() => void> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${baseUrl.replace('http', 'ws')}/v1/ws`, { perMessageDeflate: false });
    socket.on('open', () => socket.send(JSON.stringify({ op: 'subscribe', channel: sub.channel, ...(maxRate === undefined ? {} : { maxRate }) })));
    socket.on('message', (raw: RawData) => {
      // Text frames arrive as one Buffer (binaryType 'nodebuffer').
      const frame = raw as Buffer;
      const head = frame.toString('latin1', 0, Math.min(frame.length, HEAD_BYTES));
      if (head.startsWith(MESSAGE_HEAD)) onMessageFrame(sub, frame);
      else if (head.startsWith('{"op":"subscribed"')) resolve(() => socket.terminate());
      else if (head.startsWith('{"op":"hello"')) return;
      else if (head.startsWith('{"op":"reset"')) counts.resets++;
      else unexpected(frame);
    });
    socket.on('close', () => void (stopping || counts.disconnects++));
    socket.on('error', (error) => void (stopping || reject(error)));
  });
}

async function open(cmd: ShapeOpen): Promise<void> {
  eliding = cmd.maxRate !== undefined && cmd.maxRate > 0;
  subs = Array.from({ length: cmd.subscribers }, (_, i) => new Sub(channelName(i % cmd.channels)));
  const started = performance.now();
  const { opened, failed, firstError } = await openInBatches(subs, cmd.openConcurrency, cmd.openTimeoutMs, (sub) => openWs(cmd.baseUrl, sub, cmd.maxRate));
  closers.push(...opened);
  const report: ShapeReady = { type: 'ready', opened: opened.length, failed, openMs: Math.round(performance.now() - started) };
  if (firstError !== undefined) report.firstError = firstError;
  cpuAtReady = process.cpuUsage();
  send(report);
}

function drain(cmd: ShapeDrain): void {
  finalSeq = cmd.finalSeq;
  holdingFinal = subs.filter((sub) => sub.lastSeq >= finalSeq).length;
  let done = false;
  const finish = (timedOut: boolean): void => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    send({ type: 'complete', timedOut });
    setTimeout(() => {
      const cpu = process.cpuUsage(cpuAtReady);
      stopping = true;
      for (const close of closers) close();
      const result: ShapeResult = {
        type: 'result',
        frames: subs.map((sub) => sub.frames),
        elided: subs.map((sub) => sub.elided),
        lastSeq: subs.map((sub) => sub.lastSeq),
        ...counts,
        clientCpuSec: Math.round((cpu.user + cpu.system) / 10_000) / 100,
        timedOut,
      };
      // Exit only once the report has left through the IPC channel.
      send(result, () => process.exit(0));
    }, GRACE_MS);
  };
  const timer = setTimeout(() => finish(true), cmd.timeoutMs);
  if (holdingFinal === subs.length) finish(false);
  else onAllFinal = () => finish(false);
}

process.on('message', (message: ToShapeClient) => {
  if (message.type === 'open') {
    open(message).catch((error: unknown) => {
      process.stderr.write(`shaping-client: open failed: ${(error as Error).stack ?? String(error)}\n`);
      process.exit(1);
    });
  } else if (message.type === 'drain') drain(message);
});
