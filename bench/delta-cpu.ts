/**
 * CPU time per delta, in process: the server's own codecs (dist/src/delta) called as the engine
 * calls them, once per channel message with the channel's previous message as the base.
 *
 * Fresh Payload objects for every pass: the codecs cache the parsed value (and the canonical
 * text) per Payload, so reusing payloads would time only the diff. Within a pass the base is the
 * previous target object, already parsed, exactly as on the server; each timed call therefore
 * includes one JSON.parse of the target (plus, for vcdiff, its JSON.stringify) and the diff.
 */
import type { DeltaCodec } from '../src/delta/codec.js';
import { JSON_PATCH } from '../src/delta/json-patch.js';
import { VCDIFF } from '../src/delta/vcdiff.js';
import { payloadFromValue, type Payload } from '../src/protocol/envelope.js';
import type { Dataset } from './delta-datasets.js';
import { round2 } from './tally.js';

const WARMUP_PASSES = 2;
/** Passes are bounded by count and by time, whichever ends first. */
const MAX_PASSES = 10;
const TIME_BUDGET_MS = 2_000;

export const CODECS: readonly DeltaCodec[] = [JSON_PATCH, VCDIFF];

export interface CpuResult {
  dataset: string;
  format: string;
  deltas: number;
  passes: number;
  /** Wall time per diff call. */
  usPerDelta: { mean: number; p50: number; p99: number; max: number };
  /** Process CPU time over the timed passes ÷ diffs. */
  cpuUsPerDelta: number;
  /** For scale: wall time of JSON.parse of one message's data, which each diff includes once. */
  parseUsPerMessage: number;
  /** Share of diffs the engine would send as deltas (a delta not smaller than the full is dropped). */
  smallerThanFull: number;
}

/** Per channel, the messages' payloads in order, as fresh objects. */
function payloadChains(dataset: Dataset): Payload[][] {
  const byChannel = new Map<string, Payload[]>();
  for (const message of dataset.messages) {
    let chain = byChannel.get(message.channel);
    if (!chain) byChannel.set(message.channel, (chain = []));
    chain.push(payloadFromValue(message.data));
  }
  return [...byChannel.values()];
}

/**
 * One pass over the data set; pushes each diff's wall time in µs when `times` is given. Also
 * returns the process CPU time the diffs took (GC threads included; other processes' work,
 * which inflates wall times on a shared machine, excluded).
 */
function pass(codec: DeltaCodec, dataset: Dataset, times?: number[]): { deltas: number; smaller: number; cpuUs: number } {
  let deltas = 0;
  let smaller = 0;
  const chains = payloadChains(dataset);
  const cpuBefore = process.cpuUsage();
  for (const chain of chains) {
    for (let i = 1; i < chain.length; i++) {
      const base = chain[i - 1]!;
      const target = chain[i]!;
      const started = process.hrtime.bigint();
      const data = codec.diff(base, target);
      const elapsed = process.hrtime.bigint() - started;
      times?.push(Number(elapsed) / 1000);
      deltas++;
      if (data !== undefined && Buffer.byteLength(data) < Buffer.byteLength(target.json)) smaller++;
    }
  }
  const cpu = process.cpuUsage(cpuBefore);
  return { deltas, smaller, cpuUs: cpu.user + cpu.system };
}

function nearestRank(sorted: Float64Array, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? NaN;
}

/** Mean wall time in µs of JSON.parse of each message's data text, over `passes` passes. */
function parseTime(dataset: Dataset, passes: number): number {
  const texts = dataset.messages.map((m) => JSON.stringify(m.data));
  let sink = 0;
  const started = process.hrtime.bigint();
  for (let p = 0; p < passes; p++) for (const text of texts) sink += (JSON.parse(text) as object) ? 1 : 0;
  const elapsed = Number(process.hrtime.bigint() - started) / 1000;
  return sink > 0 ? elapsed / sink : NaN;
}

export function measureCpu(dataset: Dataset, codec: DeltaCodec): CpuResult {
  // Warm-up lets V8 optimise the codec before anything is timed.
  for (let i = 0; i < WARMUP_PASSES; i++) pass(codec, dataset);
  const times: number[] = [];
  let passes = 0;
  let counts = { deltas: 0, smaller: 0, cpuUs: 0 };
  let cpuUs = 0;
  const deadline = performance.now() + TIME_BUDGET_MS;
  while (passes < MAX_PASSES && (passes === 0 || performance.now() < deadline)) {
    counts = pass(codec, dataset, times);
    cpuUs += counts.cpuUs;
    passes++;
  }
  const sorted = Float64Array.from(times).sort();
  const mean = times.reduce((sum, t) => sum + t, 0) / times.length;
  return {
    dataset: dataset.name,
    format: codec.format,
    deltas: counts.deltas,
    passes,
    usPerDelta: { mean: round2(mean), p50: round2(nearestRank(sorted, 0.5)), p99: round2(nearestRank(sorted, 0.99)), max: round2(nearestRank(sorted, 1)) },
    cpuUsPerDelta: round2(cpuUs / times.length),
    parseUsPerMessage: round2(parseTime(dataset, passes)),
    smallerThanFull: round2(counts.smaller / counts.deltas),
  };
}
