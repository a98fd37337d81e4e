/**
 * What the parent process of every benchmark needs: waiting, talking to its load-generator child
 * over IPC, publishing a batch, and a main() that always stops (a watchdog and signals kill the
 * children it started, so no server is left running).
 */
import type { ChildProcess } from 'node:child_process';

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The next IPC message of `type` from `child`, failing if it exits or `timeoutMs` passes first. */
export function nextMessage<M extends { type: string }, T extends M['type']>(child: ChildProcess, type: T, timeoutMs: number, who = 'load client'): Promise<Extract<M, { type: T }>> {
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    const onMessage = (message: M): void => {
      if (message.type !== type) return;
      cleanup();
      resolve(message as Extract<M, { type: T }>);
    };
    const onExit = (code: number | null): void => {
      cleanup();
      reject(new Error(`${who} exited (code ${code}) while waiting for ${type}`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`no ${type} from the ${who} within ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

/** Lets a load-generator child exit on its own after it reported, then makes sure it is gone. */
export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  await Promise.race([exited, sleep(3_000)]);
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGKILL');
    await exited;
  }
}

/** One `POST /v1/publish` of a batch; throws unless every message got an id. */
export async function publishBatch(baseUrl: string, messages: unknown[]): Promise<void> {
  const response = await fetch(`${baseUrl}/v1/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ messages }),
    signal: AbortSignal.timeout(10_000),
  });
  const reply = (await response.json()) as { ids?: unknown[] };
  if (response.status !== 201 || reply.ids?.length !== messages.length) throw new Error(`publish failed: HTTP ${response.status} ${JSON.stringify(reply).slice(0, 200)}`);
}

/**
 * Runs `main` and makes sure the process ends: after `watchdogMs`, on SIGINT/SIGTERM, or on an
 * error, every child in `live` is killed. Exit codes: 1 error, 2 watchdog, 130 interrupted.
 */
export function runBenchmark(name: string, main: () => Promise<void>, live: Set<ChildProcess>, watchdogMs: number): void {
  const killAll = (): void => {
    for (const child of live) child.kill('SIGKILL');
  };
  const watchdog = setTimeout(() => {
    process.stderr.write(`${name}: still running after ${watchdogMs / 1000} s; killing the server and load client\n`);
    killAll();
    process.exit(2);
  }, watchdogMs);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      killAll();
      process.exit(130);
    });
  }
  main()
    .catch((error: unknown) => {
      // fetch() hides the socket error (e.g. the server died) in `cause`.
      const cause = (error as Error).cause;
      process.stderr.write(`${name}: ${(error as Error).message}${cause ? ` (${(cause as Error).message ?? String(cause)})` : ''}\n`);
      killAll();
      process.exitCode = 1;
    })
    .finally(() => clearTimeout(watchdog));
}
