/**
 * What one held long-poll costs the server: `npm run bench:held-polls [-- --pollers 2000
 * --channels 20 --rounds 150]`.
 *
 * bench:peers measures long-poll flat out, where how many messages a reply carries depends on how
 * fast the publisher and the pollers happen to go, and so does the cost per delivery. This one
 * fixes the shape: every poller waits on its channel, one message per channel is published, and
 * the next round begins only when every poller has it. Nearly every reply is then a held poll
 * woken by one message, and the server's CPU per reply is the cost of a poll's whole life: its
 * request, its hold, its answer. The server is pinned to one core, this process (pollers and
 * publisher) to the other, where taskset exists. Every message must reach every poller of its
 * channel once and in order, or the run fails.
 */
import type { ChildProcess } from 'node:child_process';
import net from 'node:net';
import { parseArgs } from 'node:util';
import { planCpus, pin } from './cpu-pinning.js';
import { runBenchmark } from './harness.js';
import { startEdgepush } from './peer-server.js';
import { openFileLimit } from './server-process.js';
import { round2 } from './tally.js';

const WATCHDOG_MS = 300_000;
const ROUND_TIMEOUT_MS = 20_000;
const PAYLOAD_PAD = 'x'.repeat(140);

interface Config {
  pollers: number;
  channels: number;
  rounds: number;
}

function config(): Config {
  const { values } = parseArgs({ options: { pollers: { type: 'string', default: '2000' }, channels: { type: 'string', default: '20' }, rounds: { type: 'string', default: '150' } } });
  const number = (name: string, text: string, max: number): number => {
    const value = Number(text);
    if (!Number.isInteger(value) || value < 1 || value > max) throw new Error(`--${name} must be a whole number from 1 to ${max}`);
    return value;
  };
  return { pollers: number('pollers', values.pollers, 10_000), channels: number('channels', values.channels, 1_000), rounds: number('rounds', values.rounds, 10_000) };
}

/** One poller: a keep-alive connection that polls its channel from its cursor, again and again. */
class Poller {
  #buffer = '';
  #cursor: string;
  /** The seq it expects next on its channel. */
  next = 0;

  constructor(
    private readonly socket: net.Socket,
    private readonly channel: string,
    cursor: string,
    /** Each reply: how many messages it carried, and what was wrong with their order, if anything. */
    private readonly onReply: (messages: number, problem: string | undefined) => void,
  ) {
    this.#cursor = cursor;
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => this.#read(chunk));
  }

  poll(): void {
    this.socket.write(`GET /v1/poll?channel=${this.channel}&cursor=${this.#cursor}&timeout=60 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  }

  close(): void {
    this.socket.destroy();
  }

  #read(chunk: string): void {
    this.#buffer += chunk;
    for (;;) {
      const headEnd = this.#buffer.indexOf('\r\n\r\n');
      if (headEnd < 0) return;
      const length = Number(/content-length: *(\d+)/i.exec(this.#buffer.slice(0, headEnd))?.[1]);
      if (!Number.isInteger(length)) throw new Error(`poll reply without a Content-Length: ${this.#buffer.slice(0, 200)}`);
      if (this.#buffer.length < headEnd + 4 + length) return;
      const status = this.#buffer.slice(9, 12);
      const body = this.#buffer.slice(headEnd + 4, headEnd + 4 + length);
      this.#buffer = this.#buffer.slice(headEnd + 4 + length);
      if (status !== '200') throw new Error(`poll answered ${status}: ${body.slice(0, 200)}`);
      const reply = JSON.parse(body) as { messages: { data: { seq: number } }[]; cursor: string };
      this.#cursor = reply.cursor;
      this.poll();
      let problem: string | undefined;
      for (const message of reply.messages) {
        const seq = message.data.seq;
        // Lost (a gap) or duplicated (a repeat) alike: not the next one.
        if (seq !== this.next) problem ??= `${this.channel}: seq ${seq} where ${this.next} was next`;
        this.next = seq + 1;
      }
      this.onReply(reply.messages.length, problem);
    }
  }
}

async function main(): Promise<void> {
  const { pollers: pollerCount, channels, rounds } = config();
  const limit = openFileLimit();
  if (limit !== undefined && limit < pollerCount + 200) throw new Error(`the open-file limit is ${limit}; ${pollerCount} pollers need ${pollerCount + 200} (ulimit -n)`);
  const server = await startEdgepush(rounds, 200);
  if (server.child) live.add(server.child);
  try {
    const cpus = planCpus();
    if ('serverCpu' in cpus) {
      for (const pid of server.pids) pin(pid, cpus.serverCpu);
      pin(process.pid, cpus.loadCpu);
    }
    const url = new URL(server.baseUrl);
    const start = await fetch(`${server.baseUrl}/v1/poll?channel=held-0&timeout=0`);
    const startCursor = ((await start.json()) as { cursor: string }).cursor;

    let delivered = 0;
    let replies = 0;
    let problem: string | undefined;
    let roundDone: (() => void) | undefined;
    let awaited = 0;
    const onReply = (messages: number, wrong: string | undefined): void => {
      problem ??= wrong;
      replies++;
      delivered += messages;
      if (delivered >= awaited) roundDone?.();
    };
    const pollers = await Promise.all(
      Array.from({ length: pollerCount }, (_, i) => new Promise<Poller>((resolve, reject) => {
        const socket = net.connect(Number(url.port), url.hostname, () => resolve(new Poller(socket, `held-${i % channels}`, startCursor, onReply)));
        socket.once('error', reject);
      })),
    );
    for (const poller of pollers) poller.poll();

    const publish = async (round: number): Promise<void> => {
      const requests = Array.from({ length: channels }, (_, c) => fetch(`${server.baseUrl}/v1/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: `{"channel":"held-${c}","data":{"seq":${round},"pad":"${PAYLOAD_PAD}"}}` }));
      for (const response of await Promise.all(requests)) {
        if (response.status !== 201) throw new Error(`publish answered ${response.status}: ${await response.text()}`);
      }
    };
    // A first round outside the measurement: every connection has served a poll before it counts.
    const round = async (r: number): Promise<void> => {
      awaited = (r + 1) * pollerCount;
      let timer: NodeJS.Timeout | undefined;
      const arrived = new Promise<void>((resolve, reject) => {
        roundDone = resolve;
        timer = setTimeout(() => reject(new Error(`round ${r}: ${delivered - r * pollerCount} of ${pollerCount} deliveries arrived within ${ROUND_TIMEOUT_MS} ms`)), ROUND_TIMEOUT_MS);
      });
      await publish(r);
      await arrived.finally(() => clearTimeout(timer));
      if (problem !== undefined) throw new Error(problem);
      if (delivered !== awaited) throw new Error(`round ${r}: ${delivered - awaited} deliveries more than published`);
    };
    await round(0);
    const before = server.cpuTimes();
    const repliesBefore = replies;
    const startedAt = performance.now();
    for (let r = 1; r < rounds; r++) await round(r);
    const seconds = (performance.now() - startedAt) / 1000;
    const after = server.cpuTimes();
    for (const poller of pollers) poller.close();
    server.assertRunning();

    const measured = replies - repliesBefore;
    const user = after.user - before.user;
    const kernel = after.kernel - before.kernel;
    const line = {
      pollers: pollerCount,
      channels,
      rounds,
      replies: measured,
      messagesPerReply: round2(delivered / replies),
      repliesPerSec: Math.round(measured / seconds),
      serverUserUsPerReply: round2((user * 1e6) / measured),
      serverKernelUsPerReply: round2((kernel * 1e6) / measured),
      serverCpuPercent: Math.round((100 * (user + kernel)) / seconds),
      // Every round arrived whole, once and in order, or the run failed before this line.
      checks: 'ok',
      pinned: 'serverCpu' in cpus ? cpus : cpus.unpinned,
      node: process.version,
    };
    process.stdout.write(`${JSON.stringify(line)}\n`);
    process.stdout.write(`\nheld long-polls, ${pollerCount} pollers on ${channels} channels, ${rounds - 1} rounds measured: ${line.serverUserUsPerReply} µs user + ${line.serverKernelUsPerReply} µs kernel of server CPU per reply (messages per reply: ${line.messagesPerReply}; replies/s: ${line.repliesPerSec})\n`);
  } finally {
    await server.stop();
  }
}

const live = new Set<ChildProcess>();
runBenchmark('bench:held-polls', main, live, WATCHDOG_MS);
