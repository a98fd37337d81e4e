/**
 * Fan-out cost of deltas: per transport, one server process and one load-generator child
 * (delta-fanout-client.ts) holding four groups of N subscribers, each group on its own channel
 * with one mode: full, json-patch, vcdiff, and full again as a control (its ratio to the first
 * full group shows how far noise alone moves a ratio). The same market ticks go to each group in bursts,
 * one group at a time, the order rotated every round, each burst published as fast as the server
 * takes it. Throughput is compared burst by burst within one process pair: on two shared cores
 * (and other work on the machine) separate runs differ by 2x, interleaved bursts see the same noise.
 *
 * A priming message goes out first and every subscriber must hold it, so with deltas on, every
 * later message can be sent as a delta. The first round is warm-up (JIT, buffers) and not timed.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { fanoutData, type FanoutGroup, type FanoutTransport, type FromFanoutClient, type ToFanoutClient } from './delta-fanout-ipc.js';
import type { Mode } from './delta-wire.js';
import { nowMs } from './ipc.js';
import { cpuSeconds, startServerChild } from './server-process.js';
import { round2 } from './tally.js';
import { publishBatch, sleep } from './harness.js';

const CLIENT = fileURLToPath(new URL('./delta-fanout-client.js', import.meta.url));
const OPEN_CONCURRENCY = 100;
const OPEN_TIMEOUT_MS = 15_000;
const PRIME_TIMEOUT_MS = 10_000;
const BURST_TIMEOUT_MS = 20_000;
const DRAIN_TIMEOUT_MS = 5_000;
/** Lets the server finish setting up the connections before the first burst. */
const SETTLE_MS = 500;
/** Channel names of one length, so frames differ only by what the mode puts in them. */
const GROUPS: readonly { label: string; mode: Mode; channel: string }[] = [
  { label: 'full', mode: 'none', channel: 'fanout/a' },
  { label: 'json-patch', mode: 'json-patch', channel: 'fanout/b' },
  { label: 'vcdiff', mode: 'vcdiff', channel: 'fanout/c' },
  { label: 'full-control', mode: 'none', channel: 'fanout/d' },
];

export interface FanoutConfig {
  transports: FanoutTransport[];
  /** Subscribers per group. */
  subscribers: number;
  /** Messages per burst; bursts per group, the first of them warm-up. */
  burst: number;
  bursts: number;
  /** Messages per publish request; requests go back to back, one in flight. */
  batch: number;
}

/** The next IPC message from the child matching `match`, failing if it exits or `timeoutMs` passes first. */
function next<T extends FromFanoutClient>(child: ChildProcess, match: (m: FromFanoutClient) => m is T, what: string, timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    const onMessage = (message: FromFanoutClient): void => {
      if (!match(message)) return;
      cleanup();
      resolve(message);
    };
    const onExit = (code: number | null): void => {
      cleanup();
      reject(new Error(`fan-out client exited (code ${code}) while waiting for ${what}`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`no ${what} from the fan-out client within ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

const is =
  <K extends FromFanoutClient['type']>(type: K) =>
  (m: FromFanoutClient): m is Extract<FromFanoutClient, { type: K }> =>
    m.type === type;


async function stopChild(child: ChildProcess, live: Set<ChildProcess>): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    await Promise.race([exited, sleep(3_000)]);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  }
  live.delete(child);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

interface Burst {
  group: number;
  round: number;
  sec: number;
  serverCpuSec: number;
}

/** One JSON line per group and a summary line for `transport`. */
async function runTransport(transport: FanoutTransport, config: FanoutConfig, live: Set<ChildProcess>): Promise<Record<string, unknown>[]> {
  const data = fanoutData(config.burst * config.bursts);
  const groups: FanoutGroup[] = GROUPS.map(({ mode, channel }) => ({ mode, channel }));
  const server = await startServerChild(['--history-size', '1000', '--heartbeat-interval', '600']);
  live.add(server.child);
  const client = fork(CLIENT, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  live.add(client);
  try {
    const toClient = (message: ToFanoutClient): void => void client.send(message);
    toClient({ type: 'open', transport, baseUrl: server.baseUrl, groups, subscribers: config.subscribers, burst: config.burst, bursts: config.bursts, openConcurrency: OPEN_CONCURRENCY, openTimeoutMs: OPEN_TIMEOUT_MS });
    const ready = await next(client, is('ready'), 'ready', OPEN_TIMEOUT_MS * 3);
    if (ready.failed > 0) throw new Error(`${ready.failed} of ${ready.failed + ready.opened} ${transport} subscribers failed to open; first error: ${ready.firstError}`);
    const primed = next(client, is('primed'), 'primed', PRIME_TIMEOUT_MS);
    await publishBatch(server.baseUrl, groups.map((g) => ({ channel: g.channel, data: data[0]!.data })));
    await primed;
    await sleep(SETTLE_MS);

    const bursts: Burst[] = [];
    for (let round = 0; round < config.bursts; round++) {
      // Rotated order: full/json-patch/vcdiff, then json-patch/vcdiff/full, then vcdiff/full/json-patch, …
      for (let k = 0; k < groups.length; k++) {
        const g = (round + k) % groups.length;
        const { channel } = groups[g]!;
        const done = next(client, (m): m is Extract<FromFanoutClient, { type: 'burst' }> => m.type === 'burst' && m.group === g && m.burst === round, `burst ${round} of ${GROUPS[g]!.label}`, BURST_TIMEOUT_MS);
        const cpuBefore = cpuSeconds(server.pid);
        // Closed loop, one request in flight: the server's own pace sets the rate, so each burst
        // is a throughput figure, not an offered rate.
        const publishStartedAt = nowMs();
        const first = 1 + round * config.burst;
        for (let i = first; i < first + config.burst; i += config.batch) {
          await publishBatch(server.baseUrl, data.slice(i, Math.min(i + config.batch, first + config.burst)).map((m) => ({ channel, data: m.data })));
        }
        const { lastReceivedAt } = await done;
        bursts.push({ group: g, round, sec: (lastReceivedAt - publishStartedAt) / 1000, serverCpuSec: cpuSeconds(server.pid) - cpuBefore });
      }
    }
    toClient({ type: 'drain', timeoutMs: DRAIN_TIMEOUT_MS });
    const result = await next(client, is('result'), 'result', DRAIN_TIMEOUT_MS + 10_000);
    if (server.child.exitCode !== null || server.child.signalCode !== null) throw new Error(`server exited during the fan-out run (code ${server.child.exitCode})`);

    const perBurst = config.burst * config.subscribers;
    const lines = GROUPS.map(({ label, mode }, g) => {
      const r = result.groups[g]!;
      const timed = bursts.filter((b) => b.group === g && b.round > 0);
      const rates = timed.map((b) => Math.round(perBurst / b.sec));
      const sec = timed.reduce((s, b) => s + b.sec, 0);
      const cpu = timed.reduce((s, b) => s + b.serverCpuSec, 0);
      return {
        phase: 'fanout',
        transport,
        group: label,
        mode,
        subscribers: config.subscribers,
        messages: config.burst * config.bursts,
        expected: r.expected,
        delivered: r.delivered,
        lost: r.expected - r.delivered,
        duplicates: r.duplicates,
        outOfOrder: r.outOfOrder,
        unexpected: r.unexpected,
        deltaFrames: r.deltaFrames,
        fullFrames: r.fullFrames,
        bytesPerDelivery: r.delivered > 0 ? Math.round(r.bytes / r.delivered) : null,
        verified: r.verified,
        ...(r.verifyError !== undefined ? { verifyError: r.verifyError } : {}),
        burstDeliveredPerSec: rates,
        medianDeliveredPerSec: Math.round(median(rates)),
        aggregateDeliveredPerSec: Math.round((perBurst * timed.length) / sec),
        // Server CPU per delivery is steadier than throughput when other work competes for the cores.
        serverCpuUsPerDelivery: round2((cpu * 1e6) / (perBurst * timed.length)),
        latencyMs: r.latencyMs,
      };
    });
    const full = lines[0]!;
    const summary: Record<string, unknown> = {
      phase: 'fanout-summary',
      transport,
      subscribersPerGroup: config.subscribers,
      timedBurstsPerGroup: config.bursts - 1,
      messagesPerBurst: config.burst,
      resets: result.resets,
      disconnects: result.disconnects,
      clientCpuSec: result.clientCpuSec,
      timedOut: result.timedOut,
    };
    for (const line of lines.slice(1)) {
      // Each delta burst against the full burst of the same round, a second or less apart: changes
      // in background load (other processes on the two cores) cancel out, which they do not
      // between the plain medians when the load shifts half-way through the run.
      const ratio = median(line.burstDeliveredPerSec.map((rate, i) => rate / full.burstDeliveredPerSec[i]!));
      summary[line.group] = {
        ratio: round2(ratio),
        // The control changes nothing: its ratio is the noise floor, not a pass or fail.
        ...(line.mode === 'none' ? {} : { withinTenPercent: ratio >= 0.9 }),
        ratioOfMedians: round2(line.medianDeliveredPerSec / full.medianDeliveredPerSec),
        aggregateRatio: round2(line.aggregateDeliveredPerSec / full.aggregateDeliveredPerSec),
        serverCpuRatio: round2(line.serverCpuUsPerDelivery / full.serverCpuUsPerDelivery),
      };
    }
    return [...lines, summary];
  } finally {
    await stopChild(client, live);
    await server.stop();
    live.delete(server.child);
  }
}

export function fanoutPassed(line: Record<string, unknown>): boolean {
  if (line['phase'] === 'fanout-summary') return line['resets'] === 0 && line['disconnects'] === 0 && line['timedOut'] === false;
  // With deltas on, every message after priming must have gone out as a delta (and none without).
  const deltasHappened = line['mode'] === 'none' ? line['deltaFrames'] === 0 : line['fullFrames'] === 0;
  return line['lost'] === 0 && line['duplicates'] === 0 && line['outOfOrder'] === 0 && line['unexpected'] === 0 && line['verified'] === true && deltasHappened;
}

/** Every transport in turn, each line handed to `print` as soon as it is known. */
export async function runFanout(config: FanoutConfig, live: Set<ChildProcess>, print: (line: Record<string, unknown>) => void): Promise<Record<string, unknown>[]> {
  const lines: Record<string, unknown>[] = [];
  for (const transport of config.transports) {
    for (const line of await runTransport(transport, config, live)) {
      lines.push(line);
      print(line);
    }
  }
  return lines;
}
