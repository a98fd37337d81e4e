/**
 * Delta-stream benchmark: `npm run bench:delta [-- --messages 300 --fanout-subscribers 1000
 * --fanout-burst 30 --fanout-bursts 13 --fanout-batch 10 --fanout-transports ws,sse]`.
 *
 * 1. CPU per delta: the server's codecs called in process on both data sets (delta-cpu.ts).
 * 2. Bytes per message, full vs json-patch vs vcdiff, through a real server process over SSE and
 *    WebSocket, every message rebuilt and checked against what was published (delta-wire.ts).
 * 3. Fan-out: delivered messages/s with N subscribers on one channel, without and with deltas, in
 *    interleaved bursts within one server process (delta-fanout.ts).
 *
 * Prints JSON lines, then a summary line. Exit 1 when any check fails (a message that does not
 * rebuild exactly, loss, duplicates, deltas that did not happen), 2 when the watchdog fires.
 * A fan-out ratio below 0.9 is reported (`withinTenPercent: false`), not a failure.
 * See docs/benchmarks.md, "Delta streams".
 */
import type { ChildProcess } from 'node:child_process';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { CODECS, measureCpu } from './delta-cpu.js';
import { datasets } from './delta-datasets.js';
import { fanoutPassed, runFanout, type FanoutConfig } from './delta-fanout.js';
import type { FanoutTransport } from './delta-fanout-ipc.js';
import { measureWire } from './delta-wire.js';
import { openFileLimit, startServerChild } from './server-process.js';
import { round2 } from './tally.js';

/** Kills everything and fails the run if it is still going after this long. */
const WATCHDOG_MS = 150_000;
const SPARE_FILES = 200;
/** The vehicle snapshots are ~70 KB: above the default 64 KiB message limit. */
const WIRE_SERVER_FLAGS = [
  '--max-message-bytes', String(256 * 1024),
  '--history-size', '1000',
  '--history-bytes', String(64 * 1024 * 1024),
  // Full-mode subscribers get ~20 MB of snapshots in a burst; they must not be cut as slow.
  '--max-buffered-bytes', String(64 * 1024 * 1024),
  // No heartbeat may land inside the measured SSE byte counts.
  '--heartbeat-interval', '600',
];

const live = new Set<ChildProcess>();

function parseConfig(argv: string[]): { messages: number; fanout: FanoutConfig } {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      messages: { type: 'string', default: '300' },
      'fanout-subscribers': { type: 'string', default: '1000' },
      'fanout-burst': { type: 'string', default: '30' },
      'fanout-bursts': { type: 'string', default: '13' },
      'fanout-batch': { type: 'string', default: '10' },
      'fanout-transports': { type: 'string', default: 'ws,sse' },
    },
  });
  const int = (name: string, text: string, min: number, max: number): number => {
    const value = Number(text);
    if (!Number.isInteger(value) || value < min || value > max) throw new Error(`--${name} must be an integer from ${min} to ${max}, got ${text}`);
    return value;
  };
  const transports = values['fanout-transports'].split(',').map((t) => t.trim()).filter((t) => t !== '');
  for (const t of transports) if (t !== 'ws' && t !== 'sse') throw new Error(`--fanout-transports: unknown ${t}; known: ws,sse`);
  return {
    messages: int('messages', values.messages, 20, 2_000),
    fanout: {
      transports: transports as FanoutTransport[],
      subscribers: int('fanout-subscribers', values['fanout-subscribers'], 1, 5_000),
      burst: int('fanout-burst', values['fanout-burst'], 1, 1_000),
      bursts: int('fanout-bursts', values['fanout-bursts'], 2, 50),
      batch: int('fanout-batch', values['fanout-batch'], 1, 1_000),
    },
  };
}

function print(line: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(line) + '\n');
}

async function main(): Promise<void> {
  const config = parseConfig(process.argv.slice(2));
  const limit = openFileLimit();
  // Four groups (full, json-patch, vcdiff, full again) of subscribers are open at once.
  const files = 4 * config.fanout.subscribers + SPARE_FILES;
  if (limit !== undefined && config.fanout.transports.length > 0 && limit < files) {
    throw new Error(`open-file limit is ${limit} but 4 × ${config.fanout.subscribers} subscribers need at least ${files}; raise it (ulimit -n) or pass fewer --fanout-subscribers`);
  }
  const started = Date.now();
  const sets = datasets(config.messages);

  // In process and first, while no server or load generator competes for the cores.
  const cpu = sets.flatMap((set) => CODECS.map((codec) => measureCpu(set, codec)));
  for (const line of cpu) print({ phase: 'cpu', ...line });

  const wire: Record<string, unknown>[] = [];
  const server = await startServerChild(WIRE_SERVER_FLAGS);
  live.add(server.child);
  try {
    for (const set of sets) {
      for (const line of await measureWire(server.baseUrl, set)) {
        wire.push(line);
        print(line);
      }
    }
  } finally {
    await server.stop();
    live.delete(server.child);
  }

  const fanout = await runFanout(config.fanout, live, print);
  const summaries = fanout.filter((l) => l['phase'] === 'fanout-summary');

  const ok = wire.every((l) => l['verified'] === true) && fanout.every(fanoutPassed);
  print({
    summary: true,
    ok,
    totalSec: round2((Date.now() - started) / 1000),
    cpus: os.availableParallelism(),
    node: process.version,
    bytesRatio: Object.fromEntries(wire.map((l) => [`${l['dataset']}/${l['transport']}`, l['ratio']])),
    usPerDelta: Object.fromEntries(cpu.map((c) => [`${c.dataset}/${c.format}`, { mean: c.usPerDelta.mean, p99: c.usPerDelta.p99, cpu: c.cpuUsPerDelta }])),
    fanout: Object.fromEntries(
      summaries.map((s) => [s['transport'], Object.fromEntries(['json-patch', 'vcdiff', 'full-control'].map((g) => [g, { ratio: (s[g] as Record<string, unknown>)['ratio'], withinTenPercent: (s[g] as Record<string, unknown>)['withinTenPercent'] }]))]),
    ),
  });
  process.exitCode = ok ? 0 : 1;
}

const watchdog = setTimeout(() => {
  process.stderr.write(`bench:delta: still running after ${WATCHDOG_MS / 1000} s; killing the server and load client\n`);
  for (const child of live) child.kill('SIGKILL');
  process.exit(2);
}, WATCHDOG_MS);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    for (const child of live) child.kill('SIGKILL');
    process.exit(130);
  });
}

main()
  .catch((error: unknown) => {
    const cause = (error as Error).cause;
    process.stderr.write(`bench:delta: ${(error as Error).message}${cause ? ` (${(cause as Error).message ?? String(cause)})` : ''}\n`);
    for (const child of live) child.kill('SIGKILL');
    process.exitCode = 1;
  })
  .finally(() => clearTimeout(watchdog));
