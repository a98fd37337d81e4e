/**
 * Traffic-shaping benchmark: `npm run bench:shaping [-- --parts patterns,elide --messages 200000
 * --seconds 5]`.
 *
 * (a) Patterns, in process (shaping-patterns.ts): 100,000 pattern subscriptions over 10,000
 *     channels in one ChannelEngine: heap per subscription, and the publish-side cost of matching
 *     per message (µs, against the same engine with no patterns), caches cold and warm. Checked
 *     against brute-force matching on a sample.
 * (b) Eliding, over real sockets (shaping-elide.ts): 1,000 WebSocket subscribers on 100 channels,
 *     100 messages/s per channel, with maxRate 1000 and without; the server's CPU seconds per
 *     second of publishing, frames per subscriber, Σ elided. Checked: per subscriber, frames +
 *     Σ elided = published (plain: frames = published), and every final message arrived.
 *
 * Prints readable lines, then one JSON summary line. No thresholds: exit 1 when a check fails, 2
 * when the watchdog fires. Run with --expose-gc (the npm script does) for exact heap figures.
 */
import type { ChildProcess } from 'node:child_process';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { ELIDE_DEFAULTS, runElide, type ElideRun, type RunKind } from './shaping-elide.js';
import { PATTERN_DEFAULTS, measurePatterns, type PatternResult } from './shaping-patterns.js';
import { openFileLimit } from './server-process.js';
import { round2 } from './tally.js';
import { runBenchmark } from './harness.js';

/** Kills everything and fails the run if it is still going after this long. */
const WATCHDOG_MS = 120_000;
const SPARE_FILES = 200;

const live = new Set<ChildProcess>();

function parseConfig(argv: string[]): { parts: Set<string>; messages: number; seconds: number } {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      parts: { type: 'string', default: 'patterns,elide' },
      messages: { type: 'string', default: String(PATTERN_DEFAULTS.messages) },
      seconds: { type: 'string', default: String(ELIDE_DEFAULTS.seconds) },
    },
  });
  const int = (name: string, text: string, min: number, max: number): number => {
    const value = Number(text);
    if (!Number.isInteger(value) || value < min || value > max) throw new Error(`--${name} must be an integer from ${min} to ${max}, got ${text}`);
    return value;
  };
  const parts = new Set(values.parts.split(',').map((part) => part.trim()));
  for (const part of parts) if (part !== 'patterns' && part !== 'elide') throw new Error(`--parts: unknown ${part}; known: patterns,elide`);
  return { parts, messages: int('messages', values.messages, PATTERN_DEFAULTS.channels, 2_000_000), seconds: int('seconds', values.seconds, 2, 20) };
}

function say(line: string): void {
  process.stdout.write(line + '\n');
}

function describe(run: ElideRun): void {
  const label = run.run === 'elided' ? `elided (maxRate ${run.maxRate})` : run.run === 'plain' ? 'plain (no maxRate)' : 'publish only (no subscribers, for scale)';
  say(`elide: ${label}: published ${run.published} (${run.publishedPerChannel} per channel) in ${run.publishSec} s`);
  say(
    `elide:   server CPU ${run.serverCpuSecThroughDelivery} s through the last final delivery (${run.serverCpuSecPublishWindow} s in the publish window) = ` +
      `${run.serverCpuPerPublishSec} CPU s per s of publishing; RSS ${run.serverRssMiB} MiB`,
  );
  if (run.subscribers > 0) {
    say(
      `elide:   ${run.frames} frames to ${run.subscribers} subscribers = ${run.framesPerSubscriberPerSec} frames per subscriber per s; Σ elided ${run.elidedSum}; ` +
        `every final message in ${run.finalDeliveredMsAfterPublish} ms after publishing ended; client CPU ${run.clientCpuSec} s`,
    );
    say(`elide:   check (${run.run === 'elided' ? 'frames + Σ elided = published, per subscriber' : 'frames = published, per subscriber'}; final message held): ${run.checks.ok ? 'OK' : `FAILED: ${run.checks.failures.join('; ')}`}`);
  }
}

async function main(): Promise<void> {
  const config = parseConfig(process.argv.slice(2));
  const started = Date.now();
  let patterns: PatternResult | undefined;
  const runs: ElideRun[] = [];

  if (config.parts.has('patterns')) {
    patterns = await measurePatterns({ ...PATTERN_DEFAULTS, messages: config.messages }, (line) => say(line));
    if (!patterns.ok) say(`patterns: FAILED: ${patterns.failures.join('; ')}`);
  }

  if (config.parts.has('elide')) {
    const elide = { ...ELIDE_DEFAULTS, seconds: config.seconds };
    const limit = openFileLimit();
    if (limit !== undefined && limit < elide.subscribers + SPARE_FILES) {
      throw new Error(`open-file limit is ${limit} but ${elide.subscribers} subscribers need at least ${elide.subscribers + SPARE_FILES} per process; raise it (ulimit -n)`);
    }
    say(
      `elide: ${elide.subscribers} WebSocket subscribers on ${elide.channels} channels (${elide.subscribers / elide.channels} each); ${elide.rate} msg/s per channel ` +
        `(${elide.rate * elide.channels} msg/s) for ${elide.seconds} s, a POST of ${(elide.rate * elide.channels * elide.tickMs) / 1000} messages every ${elide.tickMs} ms, ~${elide.payloadBytes}-byte payloads`,
    );
    const kinds: RunKind[] = ['elided', 'plain', 'publish-only'];
    for (const kind of kinds) {
      const run = await runElide(kind, elide, live);
      runs.push(run);
      describe(run);
    }
  }

  const elided = runs.find((run) => run.run === 'elided');
  const plain = runs.find((run) => run.run === 'plain');
  const ingest = runs.find((run) => run.run === 'publish-only');
  const ratio = elided && plain ? Math.round((elided.serverCpuPerPublishSec / plain.serverCpuPerPublishSec) * 1000) / 1000 : null;
  // The same ratio without what publishing alone costs (HTTP, log, engine), which both runs pay.
  const deliveryRatio =
    elided && plain && ingest && plain.serverCpuPerPublishSec > ingest.serverCpuPerPublishSec
      ? Math.round(((elided.serverCpuPerPublishSec - ingest.serverCpuPerPublishSec) / (plain.serverCpuPerPublishSec - ingest.serverCpuPerPublishSec)) * 1000) / 1000
      : null;
  if (ratio !== null) {
    const above = deliveryRatio === null ? '' : `; counting only what each run used above publish-only: ${deliveryRatio}${deliveryRatio <= 0 ? ' (≤ 0: eliding added less than run-to-run noise)' : ''}`;
    say(`elide: server CPU per s of publishing, elided ÷ plain = ${ratio}${above}`);
  }

  const ok = (patterns?.ok ?? true) && runs.every((run) => run.checks.ok);
  const summary = {
    summary: true,
    bench: 'shaping',
    ok,
    totalSec: round2((Date.now() - started) / 1000),
    cpus: os.availableParallelism(),
    node: process.version,
    patterns: patterns
      ? {
          ok: patterns.ok,
          channels: patterns.channels,
          patternSubscriptions: patterns.patternSubscriptions,
          distinctPatterns: patterns.distinctPatterns,
          shapes: patterns.shapes,
          heapBytesPerPatternSubscription: patterns.heapBytesPerPatternSubscription,
          subscribeUsPerPattern: patterns.subscribeUsPerPattern,
          matchCacheBytesPerChannel: patterns.matchCacheBytesPerChannel,
          messagesPerPass: patterns.messagesPerPass,
          deliveriesPerMessage: patterns.deliveriesPerMessage,
          pass1Cold: patterns.pass1Cold,
          pass1FirstTouch: patterns.pass1FirstTouch,
          pass2Warm: patterns.pass2Warm,
          check: patterns.check,
          failures: patterns.failures,
        }
      : null,
    elide: runs.length
      ? {
          runs: Object.fromEntries(
            runs.map((run) => [
              run.run,
              {
                maxRate: run.maxRate,
                published: run.published,
                publishSec: run.publishSec,
                serverCpuSec: run.serverCpuSecThroughDelivery,
                serverCpuSecPublishWindow: run.serverCpuSecPublishWindow,
                serverCpuPerPublishSec: run.serverCpuPerPublishSec,
                frames: run.frames,
                framesPerSubscriberPerSec: run.framesPerSubscriberPerSec,
                elidedSum: run.elidedSum,
                finalDeliveredMsAfterPublish: run.finalDeliveredMsAfterPublish,
                ok: run.checks.ok,
                failures: run.checks.failures,
              },
            ]),
          ),
          cpuRatioElidedToPlain: ratio,
          cpuRatioAbovePublishOnly: deliveryRatio,
        }
      : null,
  };
  say(JSON.stringify(summary));
  process.exitCode = ok ? 0 : 1;
}

runBenchmark('bench:shaping', main, live, WATCHDOG_MS);
