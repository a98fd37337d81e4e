/**
 * Messages between a benchmark orchestrator (run.ts, peers.ts) and its load-generator child
 * (load-client.ts), plus the clock both sides stamp messages with.
 */

/** `mqtt` and `mqtt-qos1`: MQTT 3.1.1 over WebSocket at /mqtt, subscribed at QoS 0 or 1 (PUBACK per delivery). */
export type Transport = 'sse' | 'poll' | 'ws' | 'mqtt' | 'mqtt-qos1';
export const TRANSPORTS: readonly Transport[] = ['sse', 'poll', 'ws', 'mqtt', 'mqtt-qos1'];
/** What `npm run bench` runs without --transports. */
export const DEFAULT_TRANSPORTS: readonly Transport[] = ['sse', 'poll', 'ws'];

/** Whose wire protocol the load generator speaks: edgepush's, or nginx + Nchan's (peers.ts). */
export type ServerKind = 'edgepush' | 'nchan';

export interface OpenCommand {
  type: 'open';
  server: ServerKind;
  transport: Transport;
  /** `http://127.0.0.1:PORT` */
  baseUrl: string;
  subscribers: number;
  channels: number;
  messagesPerChannel: number;
  /** Connections opened concurrently while setting up. */
  openConcurrency: number;
  openTimeoutMs: number;
}

/** After publishing: report once everything arrived, or when timeoutMs passes. */
export interface DrainCommand {
  type: 'drain';
  timeoutMs: number;
  /**
   * Warm-up: messages stamped before this time (nowMs) are checked like the others but left out
   * of latencyMs (they are in latencyWithWarmupMs). Absent: every delivery is timed.
   */
  timedFrom?: number;
}

/** During publishing: report once `deliveries` have arrived (a warm-up's), or when timeoutMs passes. */
export interface AwaitCommand {
  type: 'await';
  deliveries: number;
  timeoutMs: number;
}

export type ToClient = OpenCommand | DrainCommand | AwaitCommand;

export interface ReachedReport {
  type: 'reached';
  delivered: number;
  /** Long-poll replies so far. */
  pollReplies: number;
  /** Load-generator CPU time so far (as in ResultReport). */
  clientCpuSec: number;
  timedOut: boolean;
}

export interface ReadyReport {
  type: 'ready';
  opened: number;
  failed: number;
  openMs: number;
  firstError?: string;
}

export interface ResultReport {
  type: 'result';
  expected: number;
  /** Unique (subscriber, seq) pairs received. */
  delivered: number;
  lost: number;
  duplicates: number;
  /** Same subscriber saw a lower seq after a higher one (one channel per subscriber). */
  outOfOrder: number;
  /** Messages for a channel the subscriber did not ask for, or with a seq out of range. */
  unexpected: number;
  /** Reset notices: the server could no longer replay from the client's position. */
  resets: number;
  /** Streams or sockets the server ended (slow-client disconnect, shutdown, error). */
  disconnects: number;
  /** Poll requests that failed at the HTTP level and were retried with the same cursor. */
  pollRetries: number;
  /** Long-poll replies received after ready (deliveries / replies = messages per reply). */
  pollReplies: number;
  /** End-to-end latency in ms: publisher's stamp just before POST → subscriber parsed it (messages stamped from timedFrom on). */
  latencyMs: { p50: number; p99: number; max: number };
  /** The same over every delivery, a warm-up's too. */
  latencyWithWarmupMs: { p50: number; p99: number; max: number };
  /** Earliest publisher stamp and latest receive time seen, in ms on the shared clock. */
  firstSentAt: number;
  lastReceivedAt: number;
  /** Load-generator CPU time (user + system) from ready to this report, in seconds. */
  clientCpuSec: number;
  timedOut: boolean;
}

export type FromClient = ReadyReport | ResultReport | ReachedReport;

/**
 * Wall-clock milliseconds with sub-millisecond resolution. Both processes run on one machine, so
 * timeOrigin + now() stamps from different processes are comparable.
 */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * For a forked load generator: exit by itself after `ms` in case the parent forgets it (code 3),
 * and at once when the parent dies or closes the channel, as nothing is left to report to (code 4).
 */
export function guardChildProcess(name: string, ms: number): void {
  setTimeout(() => {
    process.stderr.write(`${name}: watchdog fired, exiting\n`);
    process.exit(3);
  }, ms).unref();
  process.on('disconnect', () => process.exit(4));
}
