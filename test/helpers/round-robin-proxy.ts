/**
 * nginx (Debian's package) as a plain round-robin load balancer in front of several edgepush
 * nodes, as deployed: no stickiness, SSE unbuffered, long read timeouts, WebSocket upgrades passed
 * through, and a connection refused by a dead node retried on the next one. Its access log says
 * which upstream served each request.
 */
import { NginxProcess, tempPathDirectives } from './nginx.js';

/** Starts nginx balancing over `upstreams` (`http://127.0.0.1:PORT` each); resolves once it listens. */
export function startRoundRobinProxy(upstreams: readonly string[]): Promise<NginxProcess> {
  return NginxProcess.start('round-robin', (dir, port) => config(dir, port, upstreams.map((u) => new URL(u).host)));
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
${tempPathDirectives(dir)}
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
