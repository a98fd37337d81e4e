/**
 * Part (b) of `npm run bench:shaping`: what eliding (maxRate) costs the server, over real sockets.
 *
 * Per run: a fresh server child (embedded log, 127.0.0.1 only) and a load-generator child
 * (shaping-client.ts) holding N WebSocket subscribers over C channels. This process publishes a
 * fixed number of messages per channel at a fixed rate (POST /v1/publish, one batch per tick, one
 * request in flight so each channel keeps its order), waits until every subscriber holds its
 * channel's last message, and reads the server's CPU time from /proc before publishing, when
 * publishing ends, and when the last subscriber got its final message.
 *
 * Runs: maxRate (elided), no maxRate (every message), and, for scale, the same publishing with no
 * subscriber at all (what ingest alone costs, which both other runs include).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { cpuSeconds, rssKiB, startServerChild, type ServerChild } from './server-process.js';
import { channelName, type FromShapeClient, type ShapeResult, type ToShapeClient } from './shaping-ipc.js';
import { round2 } from './tally.js';
import { nextMessage, publishBatch, sleep, stopChild } from './harness.js';

const CLIENT = fileURLToPath(new URL('./shaping-client.js', import.meta.url));
const OPEN_CONCURRENCY = 100;
const OPEN_TIMEOUT_MS = 15_000;
/** Lets the server finish setting connections up before the CPU baseline is read. */
const SETTLE_MS = 500;
/** The final value may wait one interval; past that, this long again for a loaded machine. */
const DRAIN_EXTRA_MS = 15_000;

export interface ElideConfig {
  subscribers: number;
  channels: number;
  /** Messages per second per channel. */
  rate: number;
  /** Seconds of publishing. */
  seconds: number;
  tickMs: number;
  payloadBytes: number;
  maxRate: number;
}

export const ELIDE_DEFAULTS: ElideConfig = { subscribers: 1_000, channels: 100, rate: 100, seconds: 5, tickMs: 20, payloadBytes: 200, maxRate: 1_000 };

export type RunKind = 'elided' | 'plain' | 'publish-only';

export interface ElideRun {
  run: RunKind;
  maxRate: number | null;
  subscribers: number;
  channels: number;
  publishedPerChannel: number;
  published: number;
  publishSec: number;
  /** Server CPU seconds from the start of publishing to its end, and to the last final message delivered. */
  serverCpuSecPublishWindow: number;
  serverCpuSecThroughDelivery: number;
  /** serverCpuSecThroughDelivery ÷ publishSec: the share of one core the run kept busy. */
  serverCpuPerPublishSec: number;
  finalDeliveredMsAfterPublish: number | null;
  frames: number;
  framesPerSubscriberPerSec: number;
  elidedSum: number;
  serverRssMiB: number;
  clientCpuSec: number | null;
  checks: { ok: boolean; failures: string[] };
}

/**
 * Publishes `rate × seconds` messages per channel: message i goes to channel i % C with seq
 * floor(i / C), in batches of `rate × C × tick` messages, batch k due at k × tick. A late batch
 * goes at once (the next request starts when the previous one is answered), so the count is
 * exact and the rate holds on average; the time is bounded by a deadline.
 */
async function publish(baseUrl: string, config: ElideConfig): Promise<{ publishSec: number; perChannel: number }> {
  const perChannel = config.rate * config.seconds;
  const total = perChannel * config.channels;
  const batchSize = Math.max(1, Math.round((config.rate * config.channels * config.tickMs) / 1000));
  // {"seq":N,"pad":"xx…"} of about payloadBytes bytes.
  const pad = 'x'.repeat(Math.max(0, config.payloadBytes - 22));
  const started = performance.now();
  const deadline = started + 3 * config.seconds * 1000 + 15_000;
  let published = 0;
  for (let k = 0; published < total; k++) {
    const now = performance.now();
    if (now > deadline) throw new Error(`publishing stalled at ${published}/${total}`);
    const due = started + k * config.tickMs;
    if (due > now) await sleep(due - now);
    const end = Math.min(total, published + batchSize);
    const messages = [];
    for (let i = published; i < end; i++) messages.push({ channel: channelName(i % config.channels), data: { seq: Math.floor(i / config.channels), pad } });
    await publishBatch(baseUrl, messages);
    published = end;
  }
  return { publishSec: (performance.now() - started) / 1000, perChannel };
}

async function stopClient(client: ChildProcess): Promise<void> {
  await stopChild(client);
}

function checkSubscribers(result: ShapeResult, config: ElideConfig, perChannel: number, eliding: boolean): string[] {
  const failures: string[] = [];
  let badCount = 0;
  let badFinal = 0;
  let first: string | undefined;
  for (let i = 0; i < result.frames.length; i++) {
    const frames = result.frames[i] as number;
    const elided = result.elided[i] as number;
    const lastSeq = result.lastSeq[i] as number;
    const accounted = eliding ? frames + elided : frames;
    if (accounted !== perChannel) {
      badCount++;
      first ??= `subscriber ${i} (${channelName(i % config.channels)}): ${frames} frames${eliding ? ` + ${elided} elided` : ''} = ${accounted}, ${perChannel} published`;
    }
    if (lastSeq !== perChannel - 1) {
      badFinal++;
      first ??= `subscriber ${i} (${channelName(i % config.channels)}): last seq ${lastSeq}, final published ${perChannel - 1}`;
    }
  }
  if (badCount > 0) failures.push(`${badCount} subscribers: ${eliding ? 'frames + Σ elided' : 'frames'} ≠ published on their channel`);
  if (badFinal > 0) failures.push(`${badFinal} subscribers lack their channel's final message`);
  if (first !== undefined) failures.push(`first: ${first}`);
  if (result.gapMismatches > 0) failures.push(`${result.gapMismatches} frames whose seq did not follow the previous by ${eliding ? 'elided + 1' : '1'}`);
  if (result.outOfOrder > 0) failures.push(`${result.outOfOrder} frames out of order or repeated`);
  if (result.unexpected > 0) failures.push(`${result.unexpected} unexpected frames`);
  if (result.resets > 0) failures.push(`${result.resets} resets`);
  if (result.disconnects > 0) failures.push(`${result.disconnects} disconnects`);
  if (eliding && result.framesWithElided !== result.frames.reduce((a, b) => a + b, 0)) failures.push(`only ${result.framesWithElided} frames carried "elided"`);
  if (!eliding && result.framesWithElided > 0) failures.push(`${result.framesWithElided} frames carried "elided" without maxRate`);
  if (result.timedOut) failures.push('timed out waiting for the final messages');
  return failures;
}

export async function runElide(kind: RunKind, config: ElideConfig, live: Set<ChildProcess>): Promise<ElideRun> {
  const perChannel = config.rate * config.seconds;
  const historyBytes = Math.max(1_048_576, 2 * perChannel * (config.payloadBytes + 256));
  // As bench/run.ts: history holds every message of the run.
  const server: ServerChild = await startServerChild(['--history-size', String(Math.max(100, perChannel)), '--history-bytes', String(historyBytes)]);
  live.add(server.child);
  let client: ChildProcess | undefined;
  const eliding = kind === 'elided';
  const subscribers = kind === 'publish-only' ? 0 : config.subscribers;
  try {
    await sleep(300);
    if (kind !== 'publish-only') {
      client = fork(CLIENT, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      live.add(client);
      const toClient = (message: ToShapeClient): void => void client?.send(message);
      toClient({
        type: 'open',
        baseUrl: server.baseUrl,
        subscribers,
        channels: config.channels,
        ...(eliding ? { maxRate: config.maxRate } : {}),
        openConcurrency: OPEN_CONCURRENCY,
        openTimeoutMs: OPEN_TIMEOUT_MS,
      });
      const ready = await nextMessage<FromShapeClient, 'ready'>(client, 'ready', OPEN_TIMEOUT_MS * 2, 'shaping client');
      if (ready.failed > 0) throw new Error(`${ready.failed} of ${subscribers} subscribers failed to open; first error: ${ready.firstError}`);
    }
    await sleep(SETTLE_MS);
    const cpuBefore = cpuSeconds(server.pid);
    const { publishSec } = await publish(server.baseUrl, config);
    const cpuPublished = cpuSeconds(server.pid);
    const publishedAt = performance.now();
    let cpuDelivered = cpuPublished;
    let finalMs: number | null = null;
    let result: ShapeResult | undefined;
    if (client) {
      const drainMs = (eliding ? config.maxRate : 0) + DRAIN_EXTRA_MS;
      const resultPromise = nextMessage<FromShapeClient, 'result'>(client, 'result', drainMs + 10_000, 'shaping client');
      client.send({ type: 'drain', finalSeq: perChannel - 1, timeoutMs: drainMs } satisfies ToShapeClient);
      await nextMessage<FromShapeClient, 'complete'>(client, 'complete', drainMs + 5_000, 'shaping client');
      cpuDelivered = cpuSeconds(server.pid);
      finalMs = Math.round(performance.now() - publishedAt);
      result = await resultPromise;
    }
    if (server.child.exitCode !== null || server.child.signalCode !== null) {
      throw new Error(`server exited during the ${kind} run (code ${server.child.exitCode}, signal ${server.child.signalCode})`);
    }
    const frames = result ? result.frames.reduce((a, b) => a + b, 0) : 0;
    const elidedSum = result ? result.elided.reduce((a, b) => a + b, 0) : 0;
    const failures = result ? checkSubscribers(result, config, perChannel, eliding) : [];
    const throughDelivery = cpuDelivered - cpuBefore;
    return {
      run: kind,
      maxRate: eliding ? config.maxRate : null,
      subscribers,
      channels: config.channels,
      publishedPerChannel: perChannel,
      published: perChannel * config.channels,
      publishSec: round2(publishSec),
      serverCpuSecPublishWindow: round2(cpuPublished - cpuBefore),
      serverCpuSecThroughDelivery: round2(throughDelivery),
      serverCpuPerPublishSec: Math.round((throughDelivery / publishSec) * 1000) / 1000,
      finalDeliveredMsAfterPublish: finalMs,
      frames,
      framesPerSubscriberPerSec: subscribers > 0 ? round2(frames / subscribers / publishSec) : 0,
      elidedSum,
      serverRssMiB: round2(rssKiB(server.pid) / 1024),
      clientCpuSec: result ? result.clientCpuSec : null,
      checks: { ok: failures.length === 0, failures },
    };
  } finally {
    if (client) {
      await stopClient(client);
      live.delete(client);
    }
    await server.stop();
    live.delete(server.child);
  }
}
