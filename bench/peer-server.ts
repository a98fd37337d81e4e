/**
 * A server under test in bench/peers.ts, whichever it is: where it listens, which processes to pin
 * and read, how to publish one message to it, and how to tell it is still the same server. The
 * edgepush one is here; the nginx + Nchan one is in nchan-server.ts.
 */
import type { ChildProcess } from 'node:child_process';
import { cpuTimes, historyFlags, rssKiB, startServerChild, type CpuTimes } from './server-process.js';

export interface PublishTarget {
  /** Path and body of the one request that publishes `payload` (JSON text) to `channel`. */
  request(channel: string, payload: string): { path: string; body: string };
  /** Throws unless the reply says the message was published. */
  check(status: number, body: string): void;
}

export interface ServerUnderTest {
  /** `http://127.0.0.1:PORT` */
  readonly baseUrl: string;
  /** Every process of the server, to pin to its core. */
  readonly pids: readonly number[];
  /** The child to kill if the benchmark is interrupted (nginx is killed by its own exit hook). */
  readonly child?: ChildProcess;
  readonly publishTarget: PublishTarget;
  /** CPU seconds of all its processes so far, in their own code and in the kernel. */
  cpuTimes(): CpuTimes;
  /** Resident memory, in KiB, of the process that holds the connections. */
  rssKiB(): number;
  /**
   * Resolves once the server counts `subscribers` subscribers on `channels`, for subscribers the
   * load generator cannot see confirmed on the wire.
   */
  confirmSubscribers(channels: readonly string[], subscribers: number, timeoutMs: number): Promise<void>;
  /** The end of the server's own log when it keeps one apart (nginx's error.log), for a failed run. */
  logTail(): string;
  /** Throws if the server exited or restarted since it started. */
  assertRunning(): void;
  stop(): Promise<void>;
}

/** `POST /v1/publish` of one message: `{"channel": …, "data": <payload>}` → `201 {"ids": [id]}`. */
const EDGEPUSH_PUBLISH: PublishTarget = {
  request: (channel, payload) => ({ path: '/v1/publish', body: `{"channel":${JSON.stringify(channel)},"data":${payload}}` }),
  check(status, body) {
    if (status !== 201 || (JSON.parse(body) as { ids?: unknown[] }).ids?.length !== 1) throw new Error(`edgepush publish failed: HTTP ${status} ${body.slice(0, 200)}`);
  },
};

/** edgepush as one process (no --workers), embedded log, history that holds the whole run. */
export async function startEdgepush(messagesPerChannel: number, payloadBytes: number): Promise<ServerUnderTest> {
  const server = await startServerChild(historyFlags(messagesPerChannel, payloadBytes));
  return {
    baseUrl: server.baseUrl,
    pids: [server.pid],
    child: server.child,
    publishTarget: EDGEPUSH_PUBLISH,
    cpuTimes: () => cpuTimes(server.pid),
    rssKiB: () => rssKiB(server.pid),
    // Every edgepush subscriber was confirmed by the server (subscribed op, first event) before `ready`.
    confirmSubscribers: async () => {},
    // Its log lines are on stderr already, as `[server] …`.
    logTail: () => '',
    assertRunning() {
      const { exitCode, signalCode } = server.child;
      if (exitCode !== null || signalCode !== null) throw new Error(`edgepush exited during the run (code ${exitCode}, signal ${signalCode})`);
    },
    stop: () => server.stop(),
  };
}
