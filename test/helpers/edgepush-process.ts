/**
 * Real edgepush processes for multi-node, restart and worker tests: `node dist/src/cli.js` as a
 * separate OS process (its own process group, so `--workers` children die with it), on 127.0.0.1,
 * with its options in a JSON config file. Every process started here is killed when the test
 * process exits, whatever happens to the test.
 *
 * `ensureBuilt()` compiles src/ and transports/ with `tsc -p tsconfig.build.json` when dist/ is
 * missing or older than a source file (not `npm run build`, which also builds the client). A lock
 * directory keeps parallel test files from compiling into dist/ at the same time.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { LOOPBACK_LIMITS } from './loopback-limits.js';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CLI = join(REPO_ROOT, 'dist', 'src', 'cli.js');

// ---------------------------------------------------------------------------------------------
// Build

function newestSource(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(path));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

function distIsFresh(): boolean {
  if (!existsSync(CLI)) return false;
  const built = statSync(CLI).mtimeMs;
  return ['src', 'transports', 'bench'].every((dir) => newestSource(join(REPO_ROOT, dir)) <= built);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

let built: Promise<void> | undefined;

/** Compiles to dist/ unless it is up to date; once per test process. */
export function ensureBuilt(): Promise<void> {
  built ??= (async () => {
    const lock = join(REPO_ROOT, '.cache', 'edgepush-build.lock');
    mkdirSync(join(REPO_ROOT, '.cache'), { recursive: true });
    const deadline = Date.now() + 180_000;
    for (;;) {
      try {
        mkdirSync(lock);
        writeFileSync(join(lock, 'pid'), String(process.pid));
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      let holder = NaN;
      try {
        holder = Number(readFileSync(join(lock, 'pid'), 'utf8'));
      } catch {
        // Between mkdir and write, or just released.
      }
      const age = (() => {
        try {
          return Date.now() - statSync(lock).mtimeMs;
        } catch {
          return 0;
        }
      })();
      if ((Number.isInteger(holder) && holder > 0 && !pidAlive(holder)) || age > 120_000) rmSync(lock, { recursive: true, force: true });
      else if (Date.now() > deadline) throw new Error(`timed out waiting for the build lock ${lock}`);
      else await new Promise((resolve) => setTimeout(resolve, 200));
    }
    try {
      if (distIsFresh()) return;
      const result = spawnSync(process.execPath, [join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 170_000 });
      // tsc emits even with type errors elsewhere in the tree (someone's work in progress); only a
      // missing output is fatal here.
      if (!existsSync(CLI)) throw new Error(`tsc -p tsconfig.build.json produced no ${CLI}: ${result.stdout}${result.stderr}`);
    } finally {
      rmSync(lock, { recursive: true, force: true });
    }
  })();
  return built;
}

// ---------------------------------------------------------------------------------------------
// Processes

const running = new Set<ChildProcess>();

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  for (const target of [-child.pid, child.pid]) {
    try {
      process.kill(target, signal);
      return;
    } catch {
      // Not a group leader any more, or gone.
    }
  }
}

process.once('exit', () => {
  for (const child of running) killGroup(child, 'SIGKILL');
});

/** A port that was free a moment ago. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (typeof address !== 'object' || !address) throw new Error('no free port');
  return address.port;
}

export interface Health {
  status: string;
  source: string;
  writable: boolean;
  epoch: string;
  pid: number;
}

/** GET on a fresh connection (no keep-alive), so `--workers` spreads these requests too. */
export function getJson<T>(url: string, timeoutMs = 5_000): Promise<{ status: number; body: T }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, headers: { connection: 'close' }, timeout: timeoutMs }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as T });
        } catch (error) {
          reject(error);
        }
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

export interface EdgepushOptions {
  /** Written to a JSON config file passed with --config. */
  readonly config: Record<string, unknown>;
  /** More command-line flags. */
  readonly args?: readonly string[];
  readonly workers?: number;
  /** Defaults to a free port; a restarted process keeps its port. */
  readonly port?: number;
  /** Keep the log (stdout) for `stdout`, as well as stderr. */
  readonly captureStdout?: boolean;
}

/** How a process ended: its exit code, or the signal that killed it. */
export interface ExitStatus {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export class EdgepushProcess {
  #child: ChildProcess | undefined;
  #stderr = '';
  #stdout = '';
  #exited: Promise<ExitStatus | undefined> = Promise.resolve(undefined);
  readonly #dir: string;

  private constructor(readonly port: number, private readonly options: EdgepushOptions) {
    this.#dir = mkdtempSync(join(tmpdir(), 'edgepush-node-'));
    writeFileSync(join(this.#dir, 'config.json'), JSON.stringify({ ...LOOPBACK_LIMITS, ...options.config }));
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** pid of the process started (the cluster primary with --workers), or undefined while down. */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  /** Starts a process and resolves once /healthz answers. */
  static async start(options: EdgepushOptions): Promise<EdgepushProcess> {
    await ensureBuilt();
    const node = new EdgepushProcess(options.port ?? (await freePort()), options);
    await node.start();
    return node;
  }

  /** Starts (again, on the same port and config) and waits for /healthz. */
  async start(): Promise<Health> {
    if (this.#child) throw new Error('already running');
    const args = [CLI, '--port', String(this.port), '--host', '127.0.0.1', '--config', join(this.#dir, 'config.json'), '--log-level', 'warn', '--workers', String(this.options.workers ?? 1), ...(this.options.args ?? [])];
    const child = spawn(process.execPath, args, { cwd: REPO_ROOT, stdio: ['ignore', this.options.captureStdout ? 'pipe' : 'ignore', 'pipe'], detached: true });
    this.#child = child;
    this.#stderr = '';
    this.#stdout = '';
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => (this.#stdout = (this.#stdout + chunk).slice(-64_000)));
    running.add(child);
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => (this.#stderr = (this.#stderr + chunk).slice(-8000)));
    let exitInfo: string | undefined;
    this.#exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        exitInfo = `exit code ${code}, signal ${signal}`;
        running.delete(child);
        if (this.#child === child) this.#child = undefined;
        resolve({ code, signal });
      }),
    );
    const deadline = Date.now() + 60_000;
    // With --workers N, healthy means every worker answers (connections go round robin).
    const pids = new Set<number>();
    for (let attempt = 0; ; attempt++) {
      if (exitInfo !== undefined) throw new Error(`edgepush on port ${this.port} exited before it was healthy (${exitInfo}): ${this.#stderr}`);
      try {
        const { status, body } = await getJson<Health>(`${this.url}/healthz`, 2_000);
        if (status === 200 && body.status === 'ok') pids.add(body.pid);
        if (pids.size >= (this.options.workers ?? 1)) return body;
      } catch {
        // Not listening yet.
      }
      if (Date.now() > deadline) throw new Error(`edgepush on port ${this.port} not healthy within 60 s: ${this.#stderr}`);
      await new Promise((resolve) => setTimeout(resolve, Math.min(20 * (attempt + 1), 250)));
    }
  }

  health(): Promise<Health> {
    return getJson<Health>(`${this.url}/healthz`).then((r) => r.body);
  }

  /**
   * Sends `signal` to the whole process group and resolves once the process has exited (killed
   * after 15 s), with how it ended; undefined when it was not running.
   */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<ExitStatus | undefined> {
    const child = this.#child;
    if (!child) return undefined;
    killGroup(child, signal);
    const exited = this.#exited;
    let timer: NodeJS.Timeout | undefined;
    const bounded = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        killGroup(child, 'SIGKILL');
        resolve();
      }, 15_000);
    });
    await Promise.race([exited, bounded]);
    clearTimeout(timer);
    // With --workers, the workers are in the same group: the signal reached them too.
    return exited;
  }

  /** Kills the process and removes its config folder. */
  async stop(): Promise<void> {
    await this.kill('SIGKILL');
    rmSync(this.#dir, { recursive: true, force: true });
  }

  get stderr(): string {
    return this.#stderr;
  }

  /** The log lines written so far (the last 64 KB), with `captureStdout`. */
  get stdout(): string {
    return this.#stdout;
  }
}
