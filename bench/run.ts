/**
 * End-to-end benchmark: `npm run bench [-- --subscribers 1000 --channels 10 --messages 200
 * --rate 100 --transports sse,poll,ws --payload-bytes 200]`. Transports: sse, poll, ws, mqtt (MQTT
 * over WebSocket, QoS 0) and mqtt-qos1 (QoS 1, a PUBACK per delivery); the default is sse,poll,ws.
 *
 * For each transport: a fresh server child (embedded log, 127.0.0.1 only), a load-generator child
 * holding N subscribers over C channels, then M messages per channel published from this process
 * at a bounded rate. Prints one JSON line per transport and a summary line; exits non-zero when
 * anything was lost, duplicated, misrouted or reordered, or a subscriber failed to open.
 * See docs/benchmarks.md for what each figure means.
 */
import { fork, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DEFAULT_TRANSPORTS, TRANSPORTS, nowMs, type FromClient, type ReadyReport, type ResultReport, type ToClient, type Transport } from './ipc.js';
import { deliveryChecks, openingCost } from './report-fields.js';
import { cpuSeconds, historyFlags, openFileLimit, peakRssKiB, rssKiB, startServerChild, type ServerChild } from './server-process.js';
import { round2 } from './tally.js';
import { nextMessage, runBenchmark, sleep, stopChild } from './harness.js';

/** Kills everything and fails the run if it is still going after this long. */
const WATCHDOG_MS = 150_000;
const OPEN_CONCURRENCY = 100;
const OPEN_TIMEOUT_MS = 20_000;
/** Lets the server finish setting connections up before its memory is read. */
const SETTLE_MS = 1_000;
const PUBLISH_TICK_MS = 20;
const MAX_BATCH = 1_000;
const DRAIN_TIMEOUT_MS = 20_000;
/** Sockets the server and the load generator each need beyond one per subscriber. */
const SPARE_FILES = 200;

const CLIENT = fileURLToPath(new URL('./load-client.js', import.meta.url));
const live = new Set<ChildProcess>();

interface Config {
  subscribers: number;
  channels: number;
  messages: number;
  /** Messages per second per channel. */
  rate: number;
  transports: Transport[];
  payloadBytes: number;
}

function parseConfig(argv: string[]): Config {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      subscribers: { type: 'string', default: '1000' },
      channels: { type: 'string', default: '10' },
      messages: { type: 'string', default: '200' },
      rate: { type: 'string', default: '100' },
      transports: { type: 'string', default: DEFAULT_TRANSPORTS.join(',') },
      'payload-bytes': { type: 'string', default: '200' },
    },
  });
  const int = (name: string, text: string, min: number, max: number): number => {
    const value = Number(text);
    if (!Number.isInteger(value) || value < min || value > max) throw new Error(`--${name} must be an integer from ${min} to ${max}, got ${text}`);
    return value;
  };
  const transports = values.transports.split(',').map((name) => name.trim());
  for (const name of transports) if (!TRANSPORTS.includes(name as Transport)) throw new Error(`unknown transport ${name}; known: ${TRANSPORTS.join(',')}`);
  return {
    subscribers: int('subscribers', values.subscribers, 1, 10_000),
    channels: int('channels', values.channels, 1, 1_000),
    messages: int('messages', values.messages, 1, 10_000),
    rate: int('rate', values.rate, 1, 10_000),
    transports: transports as Transport[],
    payloadBytes: int('payload-bytes', values['payload-bytes'], 0, 60_000),
  };
}

/**
 * Publishes `messages` per channel at `rate` per channel per second; message i goes to channel
 * i % C with seq floor(i / C). One request in flight at a time keeps each channel's order; a
 * slow request just makes the next batch bigger.
 */
async function publish(baseUrl: string, config: Config): Promise<number> {
  const total = config.messages * config.channels;
  const perMs = (config.rate * config.channels) / 1000;
  const pad = 'x'.repeat(Math.max(0, config.payloadBytes - 48));
  const deadline = Date.now() + (2 * total) / perMs + 15_000;
  const started = Date.now();
  let published = 0;
  while (published < total) {
    if (Date.now() > deadline) throw new Error(`publishing stalled at ${published}/${total}`);
    const target = Math.min(total, published + MAX_BATCH, Math.ceil((Date.now() - started + PUBLISH_TICK_MS) * perMs));
    if (target > published) {
      const batch = [];
      for (let i = published; i < target; i++) {
        batch.push({ channel: `bench/${i % config.channels}`, data: { seq: Math.floor(i / config.channels), sentAt: nowMs(), pad } });
      }
      const response = await fetch(`${baseUrl}/v1/publish`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ messages: batch }),
        signal: AbortSignal.timeout(10_000),
      });
      const reply = (await response.json()) as { ids?: unknown[] };
      if (response.status !== 201 || reply.ids?.length !== batch.length) throw new Error(`publish failed: HTTP ${response.status} ${JSON.stringify(reply).slice(0, 200)}`);
      published = target;
    }
    await sleep(PUBLISH_TICK_MS);
  }
  return (Date.now() - started) / 1000;
}

async function runTransport(transport: Transport, config: Config): Promise<Record<string, unknown>> {
  const server: ServerChild = await startServerChild(historyFlags(config.messages, config.payloadBytes));
  live.add(server.child);
  let client: ChildProcess | undefined;
  try {
    await sleep(300);
    const rssBefore = rssKiB(server.pid);
    client = fork(CLIENT, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    live.add(client);
    const toClient = (message: ToClient): void => void client?.send(message);
    toClient({
      type: 'open',
      server: 'edgepush',
      transport,
      baseUrl: server.baseUrl,
      subscribers: config.subscribers,
      channels: config.channels,
      messagesPerChannel: config.messages,
      openConcurrency: OPEN_CONCURRENCY,
      openTimeoutMs: OPEN_TIMEOUT_MS,
    });
    const ready: ReadyReport = await nextMessage<FromClient, 'ready'>(client, 'ready', OPEN_TIMEOUT_MS * 2);
    // Publishing to a partial audience would only blur every figure; stop with the cause instead.
    if (ready.failed > 0) throw new Error(`${ready.failed} of ${config.subscribers} ${transport} subscribers failed to open; first error: ${ready.firstError}`);
    await sleep(SETTLE_MS);
    const rssIdle = rssKiB(server.pid);
    const cpuBefore = cpuSeconds(server.pid);

    const publishSec = await publish(server.baseUrl, config);
    toClient({ type: 'drain', timeoutMs: DRAIN_TIMEOUT_MS });
    const result: ResultReport = await nextMessage<FromClient, 'result'>(client, 'result', DRAIN_TIMEOUT_MS + 10_000);
    // A crash shows up as loss too, but the exit status says what really happened.
    if (server.child.exitCode !== null || server.child.signalCode !== null) {
      throw new Error(`server exited during the ${transport} run (code ${server.child.exitCode}, signal ${server.child.signalCode})`);
    }
    const serverCpuSec = cpuSeconds(server.pid) - cpuBefore;
    const deliverySec = (result.lastReceivedAt - result.firstSentAt) / 1000;
    return {
      transport,
      subscribers: config.subscribers,
      opened: ready.opened,
      channels: config.channels,
      messagesPerChannel: config.messages,
      published: config.messages * config.channels,
      ...deliveryChecks(result, transport),
      // What the publisher asked for; deliveredPerSec falls below it only once the server saturates.
      offeredPerSec: config.rate * config.subscribers,
      deliveredPerSec: deliverySec > 0 ? Math.round(result.delivered / deliverySec) : null,
      latencyMs: result.latencyMs,
      publishSec: round2(publishSec),
      deliverySec: round2(deliverySec),
      ...openingCost(ready, rssBefore, rssIdle),
      serverRssMiB: round2(rssKiB(server.pid) / 1024),
      serverPeakRssMiB: round2(peakRssKiB(server.pid) / 1024),
      serverCpuSec: round2(serverCpuSec),
      clientCpuSec: result.clientCpuSec,
      timedOut: result.timedOut,
    };
  } finally {
    if (client) await stopClient(client);
    await server.stop();
    live.delete(server.child);
  }
}

async function stopClient(client: ChildProcess): Promise<void> {
  await stopChild(client);
  live.delete(client);
}

function killAll(): void {
  for (const child of live) child.kill('SIGKILL');
}

function passed(line: Record<string, unknown>): boolean {
  return line['lost'] === 0 && line['duplicates'] === 0 && line['unexpected'] === 0 && line['outOfOrder'] === 0 && line['opened'] === line['subscribers'];
}

async function main(): Promise<void> {
  const config = parseConfig(process.argv.slice(2));
  const limit = openFileLimit();
  if (limit !== undefined && limit < config.subscribers + SPARE_FILES) {
    throw new Error(`open-file limit is ${limit} but ${config.subscribers} subscribers need at least ${config.subscribers + SPARE_FILES} per process; raise it (ulimit -n) or pass fewer --subscribers`);
  }
  const started = Date.now();
  const lines: Record<string, unknown>[] = [];
  for (const transport of config.transports) {
    const line = await runTransport(transport, config);
    lines.push(line);
    process.stdout.write(JSON.stringify(line) + '\n');
  }
  const ok = lines.every(passed);
  const summary = {
    summary: true,
    ok,
    totalSec: round2((Date.now() - started) / 1000),
    cpus: os.availableParallelism(),
    node: process.version,
    openFileLimit: limit ?? null,
    results: Object.fromEntries(
      lines.map((line) => [line['transport'], { deliveredPerSec: line['deliveredPerSec'], latencyMs: line['latencyMs'], lost: line['lost'], duplicates: line['duplicates'], rssPerIdleConnectionKiB: line['rssPerIdleConnectionKiB'] }]),
    ),
  };
  process.stdout.write(JSON.stringify(summary) + '\n');
  process.exitCode = ok ? 0 : 1;
}

runBenchmark('bench', main, live, WATCHDOG_MS);
