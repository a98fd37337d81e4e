/**
 * The server under test as a child process (`node dist/src/cli.js`, embedded log), plus what the
 * benchmark reads about it from /proc: resident memory and CPU time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

// BENCH_SERVER_CLI runs another build of the server (e.g. an older commit's dist/src/cli.js) under
// the same load, for before/after figures from one harness.
const CLI = process.env['BENCH_SERVER_CLI'] ?? fileURLToPath(new URL('../src/cli.js', import.meta.url));
const HEALTH_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 3_000;

export interface ServerChild {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly baseUrl: string;
  stop(): Promise<void>;
}

/** A port that was free a moment ago; the server binds it right after (loopback only). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

export async function startServerChild(flags: string[]): Promise<ServerChild> {
  const port = await freePort();
  // EDGEPUSH_* from the caller's shell would silently change what is measured.
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('EDGEPUSH_')));
  // Opt-in node flags for the server only, e.g. BENCH_SERVER_NODE_FLAGS="--cpu-prof --cpu-prof-dir=/tmp/prof"
  // (node refuses --cpu-prof in NODE_OPTIONS, and that would profile every process anyway).
  const nodeFlags = [...commandNodeFlags(), ...(process.env['BENCH_SERVER_NODE_FLAGS'] ?? '').split(' ').filter((flag) => flag !== '')];
  const child = spawn(process.execPath, [...nodeFlags, CLI, '--port', String(port), '--host', '127.0.0.1', '--log-level', 'warn', ...loopbackLimitFlags(), ...flags], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Server log lines go to our stderr, so stdout stays pure JSON.
  const forward = (chunk: Buffer): boolean => process.stderr.write(`[server] ${chunk.toString()}`);
  child.stdout?.on('data', forward);
  child.stderr?.on('data', forward);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const baseUrl = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    await exited;
    clearTimeout(timer);
  };
  if (child.pid === undefined) throw new Error('server failed to spawn');
  const server = { child, pid: child.pid, baseUrl, stop };
  try {
    await waitHealthy(baseUrl, child);
  } catch (error) {
    await stop();
    throw error;
  }
  return server;
}

/**
 * History that holds every message of a run (`messagesPerChannel` per channel), so a lagging
 * long-poller resumes instead of being reset.
 */
export function historyFlags(messagesPerChannel: number, payloadBytes: number): string[] {
  const historyBytes = Math.max(1_048_576, 2 * messagesPerChannel * (payloadBytes + 256));
  return ['--history-size', String(Math.max(100, messagesPerChannel)), '--history-bytes', String(historyBytes)];
}

async function waitHealthy(baseUrl: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + HEALTH_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server exited with code ${child.exitCode} before becoming healthy`);
    try {
      const response = await fetch(`${baseUrl}/healthz`, { signal: AbortSignal.timeout(1000) });
      if (response.status === 200) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`server not healthy after ${HEALTH_TIMEOUT_MS} ms`);
}

function statusField(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match?.[1]) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(match[1]);
}

/** Resident set size now, in KiB. */
export function rssKiB(pid: number): number {
  return statusField(pid, 'VmRSS');
}

/** Peak resident set size since the process started, in KiB. */
export function peakRssKiB(pid: number): number {
  return statusField(pid, 'VmHWM');
}

/** User + system CPU seconds the process has used so far. */
export function cpuSeconds(pid: number): number {
  const { user, kernel } = cpuTimes(pid);
  return user + kernel;
}

/** CPU seconds spent in a process's own code and in the kernel on its behalf. */
export interface CpuTimes {
  readonly user: number;
  readonly kernel: number;
}

export function cpuTimes(pid: number): CpuTimes {
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15 overall.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticksPerSecond = 100; // USER_HZ, 100 on every Linux this runs on
  return { user: Number(fields[11]) / ticksPerSecond, kernel: Number(fields[12]) / ticksPerSecond };
}

/** The soft limit on open files, as the children will inherit it; undefined off Linux. */
export function openFileLimit(): number | undefined {
  try {
    const match = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (!match?.[1]) return undefined;
    return match[1] === 'unlimited' ? Infinity : Number(match[1]);
  } catch {
    return undefined;
  }
}

/**
 * The node flags the `edgepush` command runs with (its `#!/usr/bin/env -S node …` line), so the
 * server measured is the one users start, whichever build BENCH_SERVER_CLI names.
 */
function commandNodeFlags(): string[] {
  const shebang = readFileSync(CLI, 'utf8').split('\n', 1)[0] ?? '';
  const match = /^#!\S*env -S node (.+)$/.exec(shebang);
  return match ? (match[1] as string).trim().split(/\s+/) : [];
}

/**
 * Every benchmark client comes from 127.0.0.1: the per-address limits are lifted, or they would
 * be what is measured. A build from before the limits (BENCH_SERVER_CLI) has no such flags, so
 * they are left out for it unless BENCH_SERVER_LIMIT_FLAGS=1.
 */
function loopbackLimitFlags(): string[] {
  if (process.env['BENCH_SERVER_CLI'] !== undefined && process.env['BENCH_SERVER_LIMIT_FLAGS'] !== '1') return [];
  return ['--max-connections-per-ip', '1000000', '--connection-rate-per-ip', '1000000', '--op-rate', '1000000', '--publish-rate', '1000000'];
}
