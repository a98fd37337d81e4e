/**
 * `--workers N`: N processes on one machine sharing the listening port (node:cluster). Each worker
 * is a full consumer of every partition, so cursors are valid on any of them and a client may land
 * on any worker after a reconnect. A worker that dies is replaced. SIGTERM (or SIGINT) is
 * forwarded to every worker, each drains (clients told to reconnect elsewhere, at most
 * drainTimeout), and the primary exits once they all have.
 */
import cluster from 'node:cluster';
import type { Logger } from './logger.js';

/** In the primary: forks and supervises workers; resolves when all have exited after a signal. */
export function superviseWorkers(count: number, log: Logger): void {
  let stopping = false;
  const fork = (): void => {
    cluster.fork();
  };
  for (let i = 0; i < count; i++) fork();
  let listening = false;
  cluster.once('listening', () => (listening = true));
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(process.exitCode ?? 0);
      return;
    }
    // Exit code 2 before any worker listened is a start-up error (a bad option, Kafka unreachable,
    // a missing topic) that every worker would hit again: stop, with the worker's one line said.
    if (code === 2 && !listening) {
      stopping = true;
      for (const other of Object.values(cluster.workers ?? {})) other?.process.kill('SIGTERM');
      process.exitCode = 2;
      return;
    }
    log.warn({ pid: worker.process.pid, code, signal }, 'worker exited; starting another');
    // A worker that crashes at once (a bad broker address) must not turn into a fork loop.
    setTimeout(fork, 1000).unref();
  });
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    log.info(`${signal}: stopping ${count} workers`);
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill(signal);
    if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(process.exitCode ?? 0);
  };
  // Not once: a second signal during the drain is ignored by stop(), not fatal to the primary.
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

export function isWorkerPrimary(count: number): boolean {
  return count > 1 && cluster.isPrimary;
}
