/**
 * Real nginx processes for the tests (Debian's package), each on 127.0.0.1 with its config, pid,
 * logs and temp files in a temp folder of its own:
 * - restrictive proxies for the client tests (`startRestrictiveProxy`):
 *   - `no-websocket`: answers every WebSocket upgrade with 403, streams SSE (the server's
 *     X-Accel-Buffering: no is honoured);
 *   - `buffering`: the same, and also buffers responses until they complete, ignoring
 *     X-Accel-Buffering, with buffers large enough that an SSE stream never gets through;
 * - a round-robin load balancer (round-robin-proxy.ts), using the same NginxProcess.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './edgepush-process.js';

export const NGINX = process.env['NGINX_PATH'] ?? ['/usr/sbin/nginx', '/usr/bin/nginx'].find((path) => existsSync(path)) ?? 'nginx';
export const nginxAvailable = existsSync(NGINX);

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) if (child.pid) process.kill(-child.pid, 'SIGKILL');
});

/** nginx's temp folders, made by NginxProcess.start in each instance's own folder. */
const TEMP_FOLDERS = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'] as const;

/** The `http` block's lines that point nginx's temp files at those folders (nginx.conf's own are outside `dir`). */
export function tempPathDirectives(dir: string): string {
  return TEMP_FOLDERS.map((sub) => `  ${sub}_temp_path ${dir}/${sub};`).join('\n');
}

/** One nginx master (and its workers) with a config written from `config(dir, port)`. */
export class NginxProcess {
  #process: ChildProcess | undefined;

  private constructor(readonly dir: string, readonly port: number) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  static async start(name: string, config: (dir: string, port: number) => string): Promise<NginxProcess> {
    const dir = mkdtempSync(join(tmpdir(), `edgepush-nginx-${name}-`));
    chmodSync(dir, 0o755);
    for (const sub of TEMP_FOLDERS) mkdirSync(join(dir, sub), { mode: 0o777 });
    const nginx = new NginxProcess(dir, await freePort());
    writeFileSync(join(dir, 'nginx.conf'), config(dir, nginx.port));
    await nginx.resume();
    return nginx;
  }

  /** Starts (or restarts, on the same port) the nginx process; resolves once it accepts connections. */
  async resume(): Promise<void> {
    const child = spawn(NGINX, ['-p', this.dir, '-c', join(this.dir, 'nginx.conf'), '-g', 'daemon off;'], {
      stdio: ['ignore', 'ignore', 'pipe'],
      // Its own process group, so kill() takes the workers down with the master.
      detached: true,
    });
    running.add(child);
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<never>((_, reject) =>
      child.once('exit', (code) => {
        running.delete(child);
        reject(new Error(`nginx exited with ${code}: ${stderr}${this.errorLog()}`));
      }),
    );
    exited.catch(() => {});
    this.#process = child;
    // nginx says nothing when it is ready: try to connect, a bounded number of times.
    for (let attempt = 0; ; attempt++) {
      const ok = await Promise.race([canConnect(this.port), exited]);
      if (ok) return;
      if (attempt >= 200) throw new Error(`nginx did not listen on ${this.port}: ${stderr}${this.errorLog()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Kills the process (every connection through it drops); resume() brings it back. */
  async kill(): Promise<void> {
    const child = this.#process;
    this.#process = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    // SIGKILL skips nginx's graceful path, so the workers would outlive the master: kill the group.
    if (child.pid) process.kill(-child.pid, 'SIGKILL');
    await exited;
  }

  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** The access log's lines, for configs that write one. */
  accessLog(): string[] {
    return this.#read('access.log').split('\n').filter(Boolean);
  }

  errorLog(): string {
    return this.#read('error.log');
  }

  #read(name: string): string {
    try {
      return readFileSync(join(this.dir, name), 'utf8');
    } catch {
      return '';
    }
  }
}

export type ProxyMode = 'no-websocket' | 'buffering';

/** A proxy that refuses WebSocket upgrades, and in `buffering` mode also holds responses back. */
export function startRestrictiveProxy(upstreamUrl: string, mode: ProxyMode): Promise<NginxProcess> {
  return NginxProcess.start(mode, (dir, port) => config(dir, port, new URL(upstreamUrl).host, mode));
}

function config(dir: string, port: number, upstream: string, mode: ProxyMode): string {
  const buffering =
    mode === 'buffering'
      ? `proxy_buffering on;
        proxy_ignore_headers X-Accel-Buffering;
        proxy_buffer_size 256k;
        proxy_buffers 64 256k;
        proxy_busy_buffers_size 512k;
        # proxy_buffering alone still passes each upstream read on at once (nginx flushes its
        # recycled buffers); compression is what holds a stream back in the wild, and here too:
        # gzip output is only written when a 64 KiB buffer fills or the response completes.
        gzip on;
        gzip_proxied any;
        gzip_min_length 0;
        gzip_types text/event-stream application/json text/plain;
        gzip_buffers 16 64k;`
      : '';
  return `worker_processes 1;
master_process on;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 512; }
http {
  access_log off;
${tempPathDirectives(dir)}
  server {
    listen 127.0.0.1:${port};
    location / {
      # A proxy that does not do WebSockets: every upgrade is refused.
      if ($http_upgrade) { return 403; }
      proxy_pass http://${upstream};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_read_timeout 3600s;
      ${buffering}
    }
  }
}
`;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
