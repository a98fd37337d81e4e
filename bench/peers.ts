/**
 * edgepush side by side with nginx + Nchan, the C reference push server: `npm run bench:peers
 * [-- --servers edgepush,nchan --transports sse,ws,poll --points 1k,10k --modes flat,steady]`.
 *
 * The same load for both servers at each point (1k: 1,000 subscribers on 10 channels; 10k: 10,000
 * on 100) and transport, in two modes: `flat`, publishing as fast as the server takes it, and
 * `steady`, paced to 10,000 deliveries/s. Every run gets a fresh server pinned to one core, the
 * load generator (load-client.ts) and the publisher (paced-publisher.ts) on the other, and checks
 * every delivery. Prints one JSON line per (server, transport, point), a summary line, then a table
 * per transport and point with the edgepush ÷ Nchan ratios. Exit code 1 when anything was lost,
 * duplicated, reordered or failed. See docs/benchmarks.md.
 */
import { fork, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { planCpus, pin, type CpuPlan } from './cpu-pinning.js';
import { nextMessage, runBenchmark, sleep, stopChild } from './harness.js';
import { nowMs, type FromClient, type ReachedReport, type ReadyReport, type ResultReport, type ServerKind, type ToClient, type Transport } from './ipc.js';
import { deliveryChecks, openingCost } from './report-fields.js';
import { nchanMissing, nchanVersion, startNchan } from './nchan-server.js';
import { publishAll } from './paced-publisher.js';
import { startEdgepush, type ServerUnderTest } from './peer-server.js';
import { formatTables, type ModeFigures, type PeerLine } from './peers-table.js';
import { openFileLimit } from './server-process.js';
import { round2 } from './tally.js';

/** Kills everything and fails the run if it is still going after this long. */
const WATCHDOG_MS = 570_000;
const OPEN_CONCURRENCY = 100;
const OPEN_TIMEOUT_MS = 20_000;
/** Lets the server finish starting, then finish setting connections up, before memory is read. */
const START_SETTLE_MS = 300;
const SETTLE_MS = 1_000;
const DRAIN_TIMEOUT_MS = 20_000;
const PUBLISH_TIMEOUT_MS = 60_000;
/** Sockets the server and the load generator each need beyond one per subscriber. */
const SPARE_FILES = 200;
const PAYLOAD_BYTES = 200;
/** Publish requests out at once (and keep-alive connections to the server). */
const IN_FLIGHT = 10;
/** Flat out: deliveries per run, so each point takes about as long. */
const FLAT_DELIVERIES = 300_000;
const STEADY_DELIVERIES_PER_SEC = 10_000;
const STEADY_SECONDS = 5;
/**
 * Every run first publishes this many deliveries' worth as fast as the server takes them, waits
 * for all of them to arrive, and only then measures: a fresh server's first few thousand publish
 * requests and deliveries run before the JIT has compiled them (edgepush is JavaScript; its first
 * 1,000 publishes cost five times what later ones do) and pay for the garbage of the N connections
 * just opened, which a server in service paid long ago. Warm-up deliveries are checked (lost,
 * duplicated, order) like the others, but neither timed nor counted in CPU or deliveries/s.
 */
const WARMUP_DELIVERIES = 300_000;

const SERVERS: readonly ServerKind[] = ['edgepush', 'nchan'];
const PEER_TRANSPORTS: readonly Transport[] = ['sse', 'ws', 'poll'];
type Mode = 'flat' | 'steady';
const MODES: readonly Mode[] = ['flat', 'steady'];

interface Point {
  readonly name: string;
  readonly subscribers: number;
  readonly channels: number;
}
const POINTS: readonly Point[] = [
  { name: '1k', subscribers: 1_000, channels: 10 },
  { name: '10k', subscribers: 10_000, channels: 100 },
];

const CLIENT = fileURLToPath(new URL('./load-client.js', import.meta.url));
const live = new Set<ChildProcess>();

interface Config {
  servers: ServerKind[];
  transports: Transport[];
  points: Point[];
  modes: Mode[];
}

function parseConfig(argv: string[]): Config {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      servers: { type: 'string', default: SERVERS.join(',') },
      transports: { type: 'string', default: PEER_TRANSPORTS.join(',') },
      points: { type: 'string', default: POINTS.map((point) => point.name).join(',') },
      modes: { type: 'string', default: MODES.join(',') },
    },
  });
  const list = <T>(flag: string, text: string, known: readonly T[], name: (item: T) => string = String): T[] =>
    text.split(',').map((word) => {
      const item = known.find((candidate) => name(candidate) === word.trim());
      if (item === undefined) throw new Error(`--${flag}: unknown ${word}; known: ${known.map(name).join(',')}`);
      return item;
    });
  return {
    servers: list('servers', values.servers, SERVERS),
    transports: list('transports', values.transports, PEER_TRANSPORTS),
    points: list('points', values.points, POINTS, (point) => point.name),
    modes: list('modes', values.modes, MODES),
  };
}

/**
 * What one run publishes after its warm-up (messages per channel at most as many as its warm-up):
 * flat out, the same deliveries at every point; steady, a fixed rate.
 */
function loadOf(point: Point, mode: Mode): { warmupPerChannel: number; messagesPerChannel: number; publishesPerSec: number | undefined } {
  // Each message reaches subscribers / channels subscribers.
  const warmupPerChannel = Math.round(WARMUP_DELIVERIES / point.subscribers);
  if (mode === 'flat') return { warmupPerChannel, messagesPerChannel: Math.round(FLAT_DELIVERIES / point.subscribers), publishesPerSec: undefined };
  return {
    warmupPerChannel,
    messagesPerChannel: Math.round((STEADY_DELIVERIES_PER_SEC * STEADY_SECONDS) / point.subscribers),
    publishesPerSec: (STEADY_DELIVERIES_PER_SEC * point.channels) / point.subscribers,
  };
}

function startServer(kind: ServerKind, point: Point, messagesPerChannel: number): Promise<ServerUnderTest> {
  if (kind === 'edgepush') return startEdgepush(messagesPerChannel, PAYLOAD_BYTES);
  return startNchan({ messagesPerChannel, connections: 2 * point.subscribers + SPARE_FILES, files: point.subscribers + SPARE_FILES });
}

/** One mode of one (server, transport, point): a fresh server, N subscribers, publish, tally. */
async function measure(kind: ServerKind, transport: Transport, point: Point, mode: Mode, cpus: CpuPlan | undefined): Promise<ModeFigures> {
  const { warmupPerChannel, messagesPerChannel, publishesPerSec } = loadOf(point, mode);
  const totalPerChannel = warmupPerChannel + messagesPerChannel;
  const channels = Array.from({ length: point.channels }, (_, i) => `bench/${i}`);
  const server = await startServer(kind, point, totalPerChannel);
  if (server.child) live.add(server.child);
  let client: ChildProcess | undefined;
  try {
    if (cpus) for (const pid of server.pids) pin(pid, cpus.serverCpu);
    await sleep(START_SETTLE_MS);
    const rssBefore = server.rssKiB();
    client = fork(CLIENT, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    live.add(client);
    const toClient = (message: ToClient): void => void client?.send(message);
    toClient({
      type: 'open',
      server: kind,
      transport,
      baseUrl: server.baseUrl,
      subscribers: point.subscribers,
      channels: point.channels,
      messagesPerChannel: totalPerChannel,
      openConcurrency: OPEN_CONCURRENCY,
      openTimeoutMs: OPEN_TIMEOUT_MS,
    });
    const ready: ReadyReport = await nextMessage<FromClient, 'ready'>(client, 'ready', OPEN_TIMEOUT_MS * 2);
    // Publishing to a partial audience would only blur every figure; stop with the cause instead.
    if (ready.failed > 0) throw new Error(`${ready.failed} of ${point.subscribers} ${transport} subscribers failed to open; first error: ${ready.firstError}`);
    await server.confirmSubscribers(channels, point.subscribers, OPEN_TIMEOUT_MS);
    await sleep(SETTLE_MS);
    const rssIdle = server.rssKiB();

    const publish = (firstSeq: number, count: number, perSec: number | undefined): Promise<number> =>
      publishAll(server.baseUrl, server.publishTarget, { channels, firstSeq, messagesPerChannel: count, publishesPerSec: perSec, inFlight: IN_FLIGHT, payloadBytes: PAYLOAD_BYTES, timeoutMs: PUBLISH_TIMEOUT_MS });
    await publish(0, warmupPerChannel, undefined);
    const warmupDeliveries = warmupPerChannel * point.subscribers;
    toClient({ type: 'await', deliveries: warmupDeliveries, timeoutMs: DRAIN_TIMEOUT_MS });
    const warm: ReachedReport = await nextMessage<FromClient, 'reached'>(client, 'reached', DRAIN_TIMEOUT_MS + 10_000);
    if (warm.timedOut) throw new Error(`the warm-up's deliveries did not all arrive within ${DRAIN_TIMEOUT_MS} ms (${warm.delivered} of ${warmupDeliveries})`);

    const cpuBefore = server.cpuTimes();
    const publisherCpuBefore = process.cpuUsage();
    const publishStartedAt = nowMs();
    const publishSec = await publish(warmupPerChannel, messagesPerChannel, publishesPerSec);
    toClient({ type: 'drain', timeoutMs: DRAIN_TIMEOUT_MS, timedFrom: publishStartedAt });
    const result: ResultReport = await nextMessage<FromClient, 'result'>(client, 'result', DRAIN_TIMEOUT_MS + 10_000);
    const cpuAfter = server.cpuTimes();
    const serverKernelCpuSec = cpuAfter.kernel - cpuBefore.kernel;
    const serverCpuSec = cpuAfter.user - cpuBefore.user + serverKernelCpuSec;
    const publisherCpu = process.cpuUsage(publisherCpuBefore);
    // A crash shows up as loss too, but this says what really happened.
    server.assertRunning();

    // The delivery window: the first publish request after the warm-up to the last delivery parsed.
    const windowSec = (result.lastReceivedAt - publishStartedAt) / 1000;
    const measured = result.delivered - warm.delivered;
    const loadCpuSec = result.clientCpuSec - warm.clientCpuSec + (publisherCpu.user + publisherCpu.system) / 1e6;
    return {
      mode,
      offeredPerSec: publishesPerSec === undefined ? null : Math.round((publishesPerSec * point.subscribers) / point.channels),
      warmupPerChannel,
      messagesPerChannel,
      published: totalPerChannel * point.channels,
      opened: ready.opened,
      ...deliveryChecks(result, transport),
      ...(transport === 'poll' ? { pollReplies: result.pollReplies - warm.pollReplies } : {}),
      measuredDeliveries: measured,
      deliveredPerSec: windowSec > 0 ? Math.round(measured / windowSec) : null,
      latencyMs: result.latencyMs,
      latencyWithWarmupMs: result.latencyWithWarmupMs,
      serverCpuSec: round2(serverCpuSec),
      serverCpuUsPerDelivery: measured > 0 ? round2((serverCpuSec * 1e6) / measured) : null,
      // Of which in the kernel: the write system calls and the loopback TCP stack behind them.
      serverKernelUsPerDelivery: measured > 0 ? round2((serverKernelCpuSec * 1e6) / measured) : null,
      serverCpuPercent: windowSec > 0 ? Math.round((1000 * serverCpuSec) / windowSec) / 10 : null,
      // Load generator + publisher, on their one core: near 100 % means they, not the server, set the pace.
      loadCpuPercent: windowSec > 0 ? Math.round((1000 * loadCpuSec) / windowSec) / 10 : null,
      publishSec: round2(publishSec),
      deliverySec: round2(windowSec),
      ...openingCost(ready, rssBefore, rssIdle),
      timedOut: result.timedOut,
    };
  } catch (error) {
    const log = server.logTail();
    if (log !== '') process.stderr.write(`bench:peers: the ${kind} log ends with:\n${log}\n`);
    throw error;
  } finally {
    if (client) {
      await stopChild(client);
      live.delete(client);
    }
    await server.stop();
    if (server.child) live.delete(server.child);
  }
}

function passed(run: ModeFigures, point: Point): boolean {
  return run['lost'] === 0 && run['duplicates'] === 0 && run['outOfOrder'] === 0 && run['unexpected'] === 0 && run['opened'] === point.subscribers;
}

/** Every mode of one (server, transport, point); a failed run is recorded, and the rest go on. */
async function measureAll(kind: ServerKind, transport: Transport, point: Point, modes: Mode[], cpus: CpuPlan | undefined): Promise<PeerLine> {
  const line: PeerLine = { server: kind, transport, point: point.name, subscribers: point.subscribers, channels: point.channels, ok: true };
  const idleRss: number[] = [];
  for (const mode of modes) {
    try {
      const run = await measure(kind, transport, point, mode, cpus);
      line[mode] = run;
      if (!passed(run, point)) line.ok = false;
      if (typeof run['rssPerIdleConnectionKiB'] === 'number') idleRss.push(run['rssPerIdleConnectionKiB']);
    } catch (error) {
      const cause = (error as Error).cause;
      const message = `${(error as Error).message}${cause ? ` (${(cause as Error).message ?? String(cause)})` : ''}`;
      line[mode] = { mode, error: message };
      line.ok = false;
      process.stderr.write(`bench:peers: ${kind} ${transport} ${point.name} ${mode}: ${message}\n`);
    }
  }
  // Each mode opened the same connections on a fresh server: their mean is the figure.
  line.rssPerIdleConnectionKiB = idleRss.length > 0 ? round2(idleRss.reduce((sum, kib) => sum + kib, 0) / idleRss.length) : null;
  return line;
}

async function main(): Promise<void> {
  const config = parseConfig(process.argv.slice(2));
  const missing = nchanMissing();
  if (missing !== undefined && config.servers.includes('nchan')) {
    const install = 'install it with `sudo apt-get install libnginx-mod-nchan` (or run .ci/setup-system.sh)';
    if (config.servers.length === 1) throw new Error(`nginx + Nchan cannot run: ${missing}; ${install}`);
    process.stderr.write(`bench:peers: nginx + Nchan cannot run: ${missing}; ${install}. Measuring edgepush only, without ratios.\n`);
    config.servers = config.servers.filter((server) => server !== 'nchan');
  }
  const largest = Math.max(...config.points.map((point) => point.subscribers));
  const limit = openFileLimit();
  if (limit !== undefined && limit < largest + SPARE_FILES) {
    throw new Error(
      `open-file limit is ${limit} but ${largest} subscribers need at least ${largest + SPARE_FILES} per process; raise the hard limit (ulimit -Hn, or LimitNOFILE) or pass --points 1k`,
    );
  }
  // Read before pinning: from then on this process sees one CPU.
  const machineCpus = os.availableParallelism();
  const plan = planCpus();
  const cpus = 'unpinned' in plan ? undefined : plan;
  if ('unpinned' in plan) process.stderr.write(`bench:peers: not pinning to cores: ${plan.unpinned}\n`);
  else pin(process.pid, plan.loadCpu);

  const started = Date.now();
  const lines: PeerLine[] = [];
  for (const point of config.points) {
    for (const transport of config.transports) {
      for (const server of config.servers) {
        const line = await measureAll(server, transport, point, config.modes, cpus);
        lines.push(line);
        process.stdout.write(JSON.stringify(line) + '\n');
      }
    }
  }
  const ok = lines.every((line) => line.ok);
  const summary = {
    summary: true,
    ok,
    totalSec: round2((Date.now() - started) / 1000),
    cpus: machineCpus,
    pinned: cpus ? { serverCpu: cpus.serverCpu, loadCpu: cpus.loadCpu } : null,
    node: process.version,
    nchan: config.servers.includes('nchan') ? nchanVersion() : null,
    openFileLimit: limit ?? null,
  };
  process.stdout.write(JSON.stringify(summary) + '\n');
  process.stdout.write(formatTables(lines, STEADY_DELIVERIES_PER_SEC));
  process.exitCode = ok ? 0 : 1;
}

runBenchmark('bench:peers', main, live, WATCHDOG_MS);
