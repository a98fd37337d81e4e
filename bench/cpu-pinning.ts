/**
 * Keeps the server under test and the load off each other's core with `taskset` (util-linux):
 * the server on the first CPU this process may use, the load generator and publisher on the
 * second. Without taskset, or with fewer than two CPUs, nothing is pinned and the run says so.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface CpuPlan {
  readonly serverCpu: number;
  readonly loadCpu: number;
}

/** The two CPUs to pin to, or why there are none. */
export function planCpus(): CpuPlan | { unpinned: string } {
  const probe = spawnSync('taskset', ['--version'], { stdio: 'ignore' });
  if (probe.error !== undefined || probe.status !== 0) return { unpinned: 'taskset not found (Debian: util-linux)' };
  const cpus = allowedCpus();
  const [serverCpu, loadCpu] = cpus;
  if (serverCpu === undefined || loadCpu === undefined) return { unpinned: `only ${cpus.length} CPU allowed` };
  return { serverCpu, loadCpu };
}

/** Pins every thread of `pid` to `cpu`; threads it starts later inherit the affinity. */
export function pin(pid: number, cpu: number): void {
  const result = spawnSync('taskset', ['--all-tasks', '--cpu-list', '--pid', String(cpu), String(pid)], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`taskset could not pin ${pid} to CPU ${cpu}: ${result.stderr.trim() || result.error?.message}`);
}

/** The CPUs this process may run on (`Cpus_allowed_list`, e.g. `0-1` or `0,2-3`), in order. */
function allowedCpus(): number[] {
  const list = /^Cpus_allowed_list:\s*(\S+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '';
  return list.split(',').flatMap((range) => {
    const [from, to = from] = range.split('-').map(Number);
    if (from === undefined || to === undefined || !Number.isInteger(from) || !Number.isInteger(to)) return [];
    return Array.from({ length: to - from + 1 }, (_, i) => from + i);
  });
}
