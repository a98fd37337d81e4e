/**
 * nginx + Nchan, the C reference push server, as the peer bench/peers.ts measures edgepush
 * against: Debian's nginx with its libnginx-mod-nchan module, configured here rather than from
 * /etc/nginx, in a temp folder (test/helpers/nginx.ts runs it), one worker, on 127.0.0.1.
 *
 * Channels are the path after the location: `POST /pub/bench/3` publishes the body as one message
 * to `bench/3`; `/sse/bench/3`, `/ws/bench/3` and `/poll/bench/3` subscribe to it over
 * EventSource, WebSocket and long-poll.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { NGINX, NginxProcess, nginxAvailable, tempPathDirectives } from '../test/helpers/nginx.js';
import { sleep } from './harness.js';
import type { PublishTarget, ServerUnderTest } from './peer-server.js';
import { cpuTimes, rssKiB } from './server-process.js';

/** Where Debian's libnginx-mod-nchan puts the module. */
export const NCHAN_MODULE = '/usr/lib/nginx/modules/ngx_nchan_module.so';
const PROCESS_START_TIMEOUT_MS = 5_000;
const COUNT_INTERVAL_MS = 100;
const LOG_TAIL_CHARS = 2_000;

/** Why nginx + Nchan cannot run here, or undefined when it can. */
export function nchanMissing(): string | undefined {
  if (!nginxAvailable) return `nginx not found (${NGINX})`;
  if (!existsSync(NCHAN_MODULE)) return `the Nchan module is not installed (${NCHAN_MODULE})`;
  return undefined;
}

/** `nginx/1.22.1, libnginx-mod-nchan 1:1.3.6+dfsg-2` as far as this machine can tell. */
export function nchanVersion(): string {
  const nginx = /nginx\/\S+/.exec(spawnSync(NGINX, ['-v'], { encoding: 'utf8' }).stderr ?? '')?.[0] ?? 'nginx';
  const dpkg = spawnSync('dpkg-query', ['--showformat=${Version}', '--show', 'libnginx-mod-nchan'], { encoding: 'utf8' });
  return dpkg.status === 0 ? `${nginx}, libnginx-mod-nchan ${dpkg.stdout}` : nginx;
}

export interface NchanLimits {
  /** Messages each channel must keep until the run ends. */
  messagesPerChannel: number;
  /** Connections the worker must hold at once. */
  connections: number;
  /** Its open-file limit (worker_rlimit_nofile). */
  files: number;
}

/**
 * One message per `POST /pub/<channel>`, the body as is: `201 Created` when the channel had
 * subscribers, `202 Accepted` when it had none (the message is still queued).
 */
const NCHAN_PUBLISH: PublishTarget = {
  request: (channel, payload) => ({ path: `/pub/${channel}`, body: payload }),
  check(status, body) {
    if (status !== 201 && status !== 202) throw new Error(`nchan publish failed: HTTP ${status} ${body.slice(0, 200)}`);
  },
};

export async function startNchan(limits: NchanLimits): Promise<ServerUnderTest> {
  const nginx = await NginxProcess.start('nchan', (dir, port) => nchanConfig(dir, port, limits));
  try {
    const { master, worker } = await processesOf(nginx);
    return {
      baseUrl: nginx.url,
      pids: [master, worker],
      publishTarget: NCHAN_PUBLISH,
      cpuTimes: () => {
        const [a, b] = [cpuTimes(master), cpuTimes(worker)];
        return { user: a.user + b.user, kernel: a.kernel + b.kernel };
      },
      // The worker holds every connection; the master only watches it.
      rssKiB: () => rssKiB(worker),
      confirmSubscribers: (channels, subscribers, timeoutMs) => waitForSubscribers(nginx.url, channels, subscribers, timeoutMs),
      logTail: () => nginx.errorLog().slice(-LOG_TAIL_CHARS),
      assertRunning() {
        // A crashed worker is replaced by the master: a new pid means every connection was lost.
        if (!childrenOf(master).includes(worker)) throw new Error(`the nginx worker ${worker} is gone`);
      },
      stop: () => nginx.stop(),
    };
  } catch (error) {
    await nginx.stop();
    throw error;
  }
}

function nchanConfig(dir: string, port: number, limits: NchanLimits): string {
  // nginx started by root runs its workers as `nobody`; the benchmark runs them as whoever runs it.
  const user = process.getuid?.() === 0 ? `user ${userInfo().username};` : '';
  return `load_module ${NCHAN_MODULE};
${user}
worker_processes 1;
master_process on;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
worker_rlimit_nofile ${limits.files};
events { worker_connections ${limits.connections}; }
http {
  access_log off;
${tempPathDirectives(dir)}
  # nginx closes a keep-alive connection after 1,000 requests by default; edgepush never does, and
  # the publisher and every long-poller make more than that on one connection.
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:${port};
    location ~ ^/pub/(.+)$ {
      nchan_publisher;
      nchan_channel_id $1;
      # Every message of the run stays queued, so a subscriber that falls behind (a long-poller
      # between two requests) still gets all of them, as edgepush's history does.
      nchan_message_buffer_length ${limits.messagesPerChannel};
      nchan_message_timeout 10m;
    }
    location ~ ^/sse/(.+)$ {
      nchan_subscriber eventsource;
      nchan_channel_id $1;
      # The default, spelled out: a subscriber that joins late still starts at the first message.
      nchan_subscriber_first_message oldest;
    }
    location ~ ^/ws/(.+)$ {
      nchan_subscriber websocket;
      nchan_channel_id $1;
      nchan_subscriber_first_message oldest;
    }
    location ~ ^/poll/(.+)$ {
      nchan_subscriber longpoll;
      nchan_channel_id $1;
      nchan_subscriber_first_message oldest;
      # Everything queued since the last poll in one reply, as edgepush's long-poll does.
      nchan_longpoll_multipart_response on;
    }
  }
}
`;
}

/** The pids whose parent is `pid`, from /proc. */
function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    // After the parenthesised command name: state, then the parent pid.
    const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (parent === pid) children.push(Number(entry));
  }
  return children;
}

/**
 * The master (from its pid file) and its one worker. nginx accepts connections on the master's
 * socket before it has written the pid file and forked the worker: wait for both.
 */
async function processesOf(nginx: NginxProcess): Promise<{ master: number; worker: number }> {
  const deadline = Date.now() + PROCESS_START_TIMEOUT_MS;
  for (;;) {
    const master = Number(existsSync(`${nginx.dir}/nginx.pid`) ? readFileSync(`${nginx.dir}/nginx.pid`, 'utf8') : NaN);
    const children = master > 0 ? childrenOf(master) : [];
    if (children.length === 1 && children[0] !== undefined) return { master, worker: children[0] };
    if (Date.now() > deadline) throw new Error(`nginx did not start one worker within ${PROCESS_START_TIMEOUT_MS} ms (master ${master}, ${children.length} workers)`);
    await sleep(50);
  }
}

/**
 * Nchan answers a long-poll only once there is a message, so the load generator cannot see such a
 * subscriber confirmed; Nchan's channel info (`GET /pub/<channel>`) counts them. Used for every
 * transport, so no Nchan run starts publishing before all its subscribers are in their channels.
 */
async function waitForSubscribers(baseUrl: string, channels: readonly string[], expected: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let counted = 0;
    for (const channel of channels) counted += await subscribersOf(baseUrl, channel);
    if (counted === expected) return;
    if (Date.now() > deadline) throw new Error(`Nchan counts ${counted} of ${expected} subscribers after ${timeoutMs} ms`);
    await sleep(COUNT_INTERVAL_MS);
  }
}

async function subscribersOf(baseUrl: string, channel: string): Promise<number> {
  const response = await fetch(`${baseUrl}/pub/${channel}`, { headers: { accept: 'text/json' }, signal: AbortSignal.timeout(5_000) });
  const body = await response.text();
  // No subscriber has created the channel yet.
  if (response.status === 404) return 0;
  const count = /"subscribers": (\d+)/.exec(body)?.[1];
  if (response.status !== 200 || count === undefined) throw new Error(`nchan channel info for ${channel}: HTTP ${response.status} ${body.slice(0, 200)}`);
  return Number(count);
}
