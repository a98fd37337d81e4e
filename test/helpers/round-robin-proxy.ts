/**
 * nginx (Debian's package) as a plain round-robin load balancer in front of several edgepush
 * nodes, as deployed: no stickiness, SSE unbuffered, long read timeouts, WebSocket upgrades passed
 * through, and a connection refused by a dead node retried on the next one. Its own process on
 * 127.0.0.1 with config, pid and logs in a temp folder; killed when the test process exits.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './edgepush-process.js';

export const NGINX_BINARY = process.env['EDGEPUSH_NGINX'] ?? ['/usr/sbin/nginx', '/usr/bin/nginx'].find((path) => existsSync(path));

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export class RoundRobinProxy {
  #child: ChildProcess | undefined;

  private constructor(readonly dir: string, readonly port: number) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Starts nginx balancing over `upstreams` (`http://127.0.0.1:PORT` each); resolves once it listens. */
  static async start(upstreams: readonly string[]): Promise<RoundRobinProxy> {
    if (!NGINX_BINARY) throw new Error('nginx not found (apt-get install nginx-light, or set EDGEPUSH_NGINX)');
    const dir = mkdtempSync(join(tmpdir(), 'edgepush-round-robin-'));
    chmodSync(dir, 0o755);
    for (const sub of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, sub), { mode: 0o777 });
    const proxy = new RoundRobinProxy(dir, await freePort());
    writeFileSync(join(dir, 'nginx.conf'), config(dir, proxy.port, upstreams.map((u) => new URL(u).host)));
    await proxy.#spawn();
    return proxy;
  }

  async #spawn(): Promise<void> {
    const child = spawn(NGINX_BINARY as string, ['-p', this.dir, '-c', join(this.dir, 'nginx.conf'), '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
    running.add(child);
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    let exited: string | undefined;
    child.once('exit', (code) => {
      exited = `nginx exited with ${code}: ${stderr}${this.errorLog()}`;
      running.delete(child);
    });
    this.#child = child;
    // nginx says nothing when it is ready: try to connect, a bounded number of times.
    for (let attempt = 0; attempt < 200; attempt++) {
      if (exited) throw new Error(exited);
      if (await canConnect(this.port)) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`nginx did not listen on ${this.port}: ${stderr}${this.errorLog()}`);
  }

  /** Which upstream served each request so far, from the access log ("METHOD path upstream status"). */
  accessLog(): string[] {
    try {
      return readFileSync(join(this.dir, 'access.log'), 'utf8').split('\n').filter(Boolean);
    } catch {
      return [];
    }
  }

  errorLog(): string {
    try {
      return readFileSync(join(this.dir, 'error.log'), 'utf8');
    } catch {
      return '';
    }
  }

  async stop(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    }
    // The master's worker dies with it only on a graceful stop: make sure of it.
    try {
      const pid = Number(readFileSync(join(this.dir, 'nginx.pid'), 'utf8'));
      if (pid > 0 && pid !== child?.pid) process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function config(dir: string, port: number, upstreams: readonly string[]): string {
  return `worker_processes 1;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  log_format upstream '$request_method $uri $upstream_addr $status';
  access_log ${dir}/access.log upstream;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  map $http_upgrade $connection_upgrade { default upgrade; '' ''; }
  upstream edgepush {
    # Plain round robin, no stickiness. max_fails=0: never take a node out of rotation, so a
    # node that comes back is used again at once (a refused connection still moves on to the next).
    ${upstreams.map((host) => `server ${host} max_fails=0;`).join('\n    ')}
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://edgepush;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_buffering off;
      proxy_cache off;
      proxy_connect_timeout 2s;
      proxy_read_timeout 3600s;
      proxy_send_timeout 3600s;
      proxy_next_upstream error timeout;
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
