/**
 * The readable end of bench/peers.ts: a Markdown table per point and transport, edgepush and
 * nginx + Nchan side by side, and edgepush ÷ Nchan for every figure (deliveries/s: above 1 means
 * edgepush delivers more; everything else: above 1 means edgepush spends or waits more).
 */
import type { ServerKind, Transport } from './ipc.js';

/** The figures of one mode of one run that the table shows (the JSON line has them all). */
export interface ModeFigures {
  readonly mode: 'flat' | 'steady';
  readonly deliveredPerSec?: number | null;
  readonly serverCpuUsPerDelivery?: number | null;
  readonly serverKernelUsPerDelivery?: number | null;
  readonly serverCpuPercent?: number | null;
  readonly loadCpuPercent?: number | null;
  readonly latencyMs?: { readonly p50: number; readonly p99: number };
  readonly error?: string;
  readonly [figure: string]: unknown;
}

/** One JSON line of bench/peers.ts: every mode of one (server, transport, point). */
export interface PeerLine {
  server: ServerKind;
  transport: Transport;
  point: string;
  subscribers: number;
  channels: number;
  ok: boolean;
  flat?: ModeFigures;
  steady?: ModeFigures;
  /** Mean over the modes run; each mode opened the same connections on a fresh server. */
  rssPerIdleConnectionKiB?: number | null;
}

const TRANSPORT_NAMES: Partial<Record<Transport, string>> = { sse: 'SSE', ws: 'WebSocket', poll: 'Long-poll' };
const SERVER_NAMES: Record<ServerKind, string> = { edgepush: 'edgepush', nchan: 'nginx + Nchan' };

interface Row {
  label: string;
  value(line: PeerLine): number | null | undefined;
  format(value: number): string;
}

const integer = (value: number): string => Math.round(value).toLocaleString('en-US');
const fixed =
  (digits: number) =>
  (value: number): string =>
    value.toFixed(digits);

function rows(steadyRate: number): Row[] {
  const steady = `at ${integer(steadyRate)} deliveries/s`;
  return [
    { label: 'deliveries/s, flat out', value: (line) => line.flat?.deliveredPerSec, format: integer },
    { label: 'server CPU µs per delivery, flat out', value: (line) => line.flat?.serverCpuUsPerDelivery, format: fixed(2) },
    { label: '… of which in the kernel', value: (line) => line.flat?.serverKernelUsPerDelivery, format: fixed(2) },
    { label: 'load generator + publisher CPU %, flat out', value: (line) => line.flat?.loadCpuPercent, format: fixed(1) },
    { label: `p50 ms ${steady}`, value: (line) => line.steady?.latencyMs?.p50, format: fixed(2) },
    { label: `p99 ms ${steady}`, value: (line) => line.steady?.latencyMs?.p99, format: fixed(2) },
    { label: `server CPU % ${steady}`, value: (line) => line.steady?.serverCpuPercent, format: fixed(1) },
    { label: 'idle RSS KiB per connection', value: (line) => line.rssPerIdleConnectionKiB, format: fixed(1) },
  ];
}

/** `ok`, or what went wrong in which mode. */
function checks(line: PeerLine): string {
  if (line.ok) return 'ok';
  const problems: string[] = [];
  for (const run of [line.flat, line.steady]) {
    if (!run) continue;
    if (run.error !== undefined) problems.push(`${run.mode}: ${run.error.slice(0, 80)}`);
    else problems.push(`${run.mode}: lost ${run['lost']}, dup ${run['duplicates']}, reordered ${run['outOfOrder']}, unexpected ${run['unexpected']}, opened ${run['opened']}/${line.subscribers}`);
  }
  return `FAILED (${problems.join('; ')})`;
}

export function formatTables(lines: readonly PeerLine[], steadyRate: number): string {
  const groups = new Map<string, PeerLine[]>();
  for (const line of lines) {
    const key = `${line.point} ${line.transport}`;
    groups.set(key, [...(groups.get(key) ?? []), line]);
  }
  let text = '';
  for (const group of groups.values()) {
    const [first] = group;
    if (!first) continue;
    const edgepush = group.find((line) => line.server === 'edgepush');
    const nchan = group.find((line) => line.server === 'nchan');
    const servers = group.map((line) => SERVER_NAMES[line.server]);
    const withRatio = edgepush !== undefined && nchan !== undefined;
    const header = ['', ...servers, ...(withRatio ? ['edgepush ÷ Nchan'] : [])];
    text += `\n### ${TRANSPORT_NAMES[first.transport] ?? first.transport}, ${integer(first.subscribers)} subscribers on ${first.channels} channels\n\n`;
    text += `| ${header.join(' | ')} |\n|${header.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|\n`;
    for (const row of rows(steadyRate)) {
      const values = group.map((line) => row.value(line));
      if (values.every((value) => typeof value !== 'number')) continue;
      const cells = values.map((value) => (typeof value === 'number' ? row.format(value) : '–'));
      if (withRatio) {
        const mine = row.value(edgepush);
        const theirs = row.value(nchan);
        cells.push(typeof mine === 'number' && typeof theirs === 'number' && theirs > 0 ? (mine / theirs).toFixed(2) : '–');
      }
      text += `| ${row.label} | ${cells.join(' | ')} |\n`;
    }
    text += `| checks | ${group.map(checks).join(' | ')} |${withRatio ? ' |' : ''}\n`;
  }
  return text;
}
