/**
 * Kafka benchmarks against a real broker (test/kafka/broker.mjs: Kafka 4.1 on this machine's Java)
 * and one edgepush process (`dist/src/cli.js`), everything on 127.0.0.1. Prints one JSON line per
 * measurement. Run it with `npm run bench:kafka`.
 *
 *   node dist/bench/kafka-latency.js [--mode latency|ingest|all]
 *     latency: --rate 1000 --seconds 20 --ws 100 --sse 100 --channels 10 --payload-bytes 100
 *       A plain Kafka producer writes `rate` records/s (key = channel) for `seconds`; every
 *       subscriber follows one channel. Latency is client receive time minus the producer's send
 *       time (same process, same clock): Kafka produce (acks=all) + fetch + edgepush + socket.
 *     ingest: --records 200000 --ingest-channels 20000 --payload-bytes 100
 *       The topic is filled first, then a fresh edgepush reads it all back at start (readBack =
 *       records): how fast one node takes records from Kafka, its CPU per record, and its memory
 *       for that many channels (rings of `historySize` 100, the default).
 *     deep-resume: --behind 10000
 *       A WebSocket client takes a cursor on one channel, `behind` + 100 more records arrive on that
 *       channel (so the cursor is `behind` records older than the ring of 100), and a new client
 *       subscribes with that cursor: the time from sending `subscribe` to the last backlog message,
 *       all of it read back from Kafka.
 *
 * The broker runs with Kafka's default `group.initial.rebalance.delay.ms` (3 s; `--rebalance-delay`).
 *
 * Bounded: a watchdog kills everything after 10 minutes.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Admin, ListOffsetTimestamps, ProduceAcks, Producer, compatibilityPartitioner, stringSerializers } from '@platformatic/kafka';
import WebSocket from 'ws';
import type * as BrokerModule from '../test/kafka/broker.mjs';
import { cpuSeconds, rssKiB, startServerChild, type ServerChild } from './server-process.js';

const WATCHDOG_MS = 10 * 60_000;
const PARTITIONS = 3;

const { values: args } = parseArgs({
  options: {
    mode: { type: 'string', default: 'all' },
    rate: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '20' },
    ws: { type: 'string', default: '100' },
    sse: { type: 'string', default: '100' },
    channels: { type: 'string', default: '10' },
    'payload-bytes': { type: 'string', default: '100' },
    records: { type: 'string', default: '200000' },
    'ingest-channels': { type: 'string', default: '20000' },
    behind: { type: 'string', default: '10000' },
    // Kafka's default is 3000; the test broker runs with 0. Consumer-group joins wait this long.
    'rebalance-delay': { type: 'string', default: '3000' },
  },
});
const num = (key: keyof typeof args): number => Number(args[key]);

const now = (): number => performance.timeOrigin + performance.now();
const cleanups: (() => Promise<void>)[] = [];
const watchdog = setTimeout(() => {
  process.stderr.write('kafka-latency: watchdog expired\n');
  void Promise.allSettled(cleanups.map((c) => c())).then(() => process.exit(3));
}, WATCHDOG_MS);
watchdog.unref();

async function main(): Promise<void> {
  const broker: typeof BrokerModule = await import(new URL('../../test/kafka/broker.mjs', import.meta.url).href);
  const availability = broker.kafkaAvailability();
  if (!availability.ok) throw new Error(`no Kafka broker possible here: ${availability.reason}`);
  const kafkaBroker = await broker.startKafka({ version: 'latest', properties: { 'group.initial.rebalance.delay.ms': String(args['rebalance-delay']) }, log: (line) => process.stderr.write(`[kafka] ${line}\n`) });
  cleanups.push(() => kafkaBroker.stop());
  await createTopics(kafkaBroker.bootstrap, ['latency', 'ingest', 'deep']);
  // Keys go where Kafka's Java client would put them, as a backend's records would.
  const producer: BenchProducer = new Producer({ clientId: 'bench', bootstrapBrokers: [kafkaBroker.bootstrap], serializers: stringSerializers, partitioner: compatibilityPartitioner });
  cleanups.push(() => producer.close());
  const mode = String(args.mode);
  try {
    if (mode === 'latency' || mode === 'all') print(await latency(kafkaBroker.bootstrap, producer));
    if (mode === 'ingest' || mode === 'all') print(await ingest(kafkaBroker.bootstrap, producer));
    if (mode === 'deep-resume' || mode === 'all') print(await deepResume(kafkaBroker.bootstrap, producer));
  } finally {
    await Promise.allSettled(cleanups.reverse().map((c) => c()));
  }
}

type BenchProducer = Producer<string, string, string, string>;

/** Creates the topics and waits until every partition has a leader that answers for it. */
async function createTopics(bootstrap: string, topics: string[]): Promise<void> {
  const admin = new Admin({ clientId: 'bench-admin', bootstrapBrokers: [bootstrap] });
  try {
    await admin.createTopics({ topics, partitions: PARTITIONS, replicas: 1 });
    const partitions = Array.from({ length: PARTITIONS }, (_, partitionIndex) => ({ partitionIndex, timestamp: ListOffsetTimestamps.LATEST }));
    const deadline = now() + 15_000;
    for (;;) {
      try {
        await admin.listOffsets({ topics: topics.map((name) => ({ name, partitions })) });
        return;
      } catch (error) {
        if (now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  } finally {
    await admin.close();
  }
}

/** One produce request, acknowledged by all in-sync replicas (acks=all). */
async function send(producer: BenchProducer, topic: string, messages: Array<{ key: string; value: string }>): Promise<void> {
  await producer.send({ messages: messages.map((m) => ({ topic, ...m })), acks: ProduceAcks.ALL });
}

function print(result: unknown): void {
  process.stdout.write(JSON.stringify(result) + '\n');
}

async function startEdgepush(bootstrap: string, topic: string, extra: Record<string, unknown> = {}): Promise<ServerChild> {
  const dir = mkdtempSync(join(tmpdir(), 'edgepush-bench-'));
  const file = join(dir, 'config.json');
  writeFileSync(file, JSON.stringify({ kafka: { brokers: [bootstrap], topics: [{ topic }], ...extra } }));
  const server = await startServerChild(['--config', file]);
  cleanups.push(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return server;
}

function pad(bytes: number): string {
  return 'x'.repeat(Math.max(0, bytes - 60));
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! * 100) / 100;
}

// ---------------------------------------------------------------------------------------------

interface Follower {
  /** Next sequence number expected on its channel. */
  next: number;
  lost: number;
  duplicates: number;
}

async function latency(bootstrap: string, producer: BenchProducer) {
  const rate = num('rate');
  const seconds = num('seconds');
  const channels = Array.from({ length: num('channels') }, (_, i) => `bench/${i}`);
  const server = await startEdgepush(bootstrap, 'latency', { readBack: 0 });
  const samples: number[] = [];
  const followers: Follower[] = [];
  const closers: (() => void)[] = [];
  const received = (follower: Follower, data: { s: number; t: number }): void => {
    samples.push(now() - data.t);
    if (data.s === follower.next) follower.next++;
    else if (data.s > follower.next) {
      follower.lost += data.s - follower.next;
      follower.next = data.s + 1;
    } else follower.duplicates++;
  };

  // Subscribers: WebSocket and SSE, one channel each, round robin over the channels.
  const opening: Promise<void>[] = [];
  for (let i = 0; i < num('ws'); i++) {
    const follower: Follower = { next: 0, lost: 0, duplicates: 0 };
    followers.push(follower);
    const socket = new WebSocket(`${server.baseUrl.replace('http', 'ws')}/v1/ws`);
    closers.push(() => socket.terminate());
    opening.push(
      new Promise((resolve, reject) => {
        socket.on('open', () => socket.send(JSON.stringify({ op: 'subscribe', channel: channels[i % channels.length] })));
        socket.on('error', reject);
        socket.on('message', (raw) => {
          const op = JSON.parse(raw.toString()) as { op: string; data?: { s: number; t: number } };
          if (op.op === 'subscribed') resolve();
          else if (op.op === 'message' && op.data) received(follower, op.data);
        });
      }),
    );
  }
  for (let i = 0; i < num('sse'); i++) {
    const follower: Follower = { next: 0, lost: 0, duplicates: 0 };
    followers.push(follower);
    const abort = new AbortController();
    closers.push(() => abort.abort());
    opening.push(
      (async () => {
        const response = await fetch(`${server.baseUrl}/v1/sse?channel=${encodeURIComponent(channels[i % channels.length] as string)}`, { signal: abort.signal });
        const reader = (response.body as ReadableStream<Uint8Array>).getReader();
        const decoder = new TextDecoder();
        let buffer = '';
        let ready: (() => void) | undefined;
        const subscribed = new Promise<void>((resolve) => (ready = resolve));
        void (async () => {
          try {
            for (;;) {
              const { value, done } = await reader.read();
              if (done) return;
              buffer += decoder.decode(value, { stream: true });
              let end: number;
              while ((end = buffer.indexOf('\n\n')) >= 0) {
                const event = buffer.slice(0, end);
                buffer = buffer.slice(end + 2);
                // The first id-only event is the starting cursor: the subscription is live.
                if (event.startsWith('id:')) ready?.();
                const data = event.split('\n').find((line) => line.startsWith('data: '));
                if (data && !event.includes('event: ')) received(follower, (JSON.parse(data.slice(6)) as { data: { s: number; t: number } }).data);
              }
            }
          } catch {
            // Aborted at the end.
          }
        })();
        await subscribed;
      })(),
    );
  }
  await Promise.all(opening);

  // Producer: `rate` records/s in 10 ms ticks, channels round robin, sequence per channel.
  const seq = new Map(channels.map((c) => [c, 0]));
  const filler = pad(num('payload-bytes'));
  const start = now();
  const cpuBefore = cpuSeconds(server.pid);
  let sent = 0;
  const total = rate * seconds;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((now() - start) / 1000) * rate));
    if (due > sent) {
      const messages = [];
      for (; sent < due; sent++) {
        const channel = channels[sent % channels.length] as string;
        const s = seq.get(channel) as number;
        seq.set(channel, s + 1);
        messages.push({ key: channel, value: JSON.stringify({ s, t: now(), pad: filler }) });
      }
      await send(producer, 'latency', messages);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const elapsed = (now() - start) / 1000;
  const perFollower = total / channels.length;
  // Drain: wait (bounded) until every follower has every record of its channel.
  const drainUntil = now() + 20_000;
  while (followers.some((f) => f.next < perFollower) && now() < drainUntil) await new Promise((resolve) => setTimeout(resolve, 50));
  const cpu = cpuSeconds(server.pid) - cpuBefore;
  const rss = rssKiB(server.pid);
  for (const close of closers) close();
  await server.stop();
  const sorted = Float64Array.from(samples).sort();
  return {
    bench: 'kafka-latency',
    rateRecordsPerSecond: rate,
    seconds: Math.round(elapsed * 10) / 10,
    records: total,
    partitions: PARTITIONS,
    channels: channels.length,
    subscribers: { ws: num('ws'), sse: num('sse') },
    payloadBytes: num('payload-bytes'),
    deliveries: samples.length,
    expectedDeliveries: followers.length * perFollower,
    lost: followers.reduce((n, f) => n + f.lost + Math.max(0, perFollower - f.next), 0),
    duplicates: followers.reduce((n, f) => n + f.duplicates, 0),
    latencyMs: { p50: percentile(sorted, 50), p90: percentile(sorted, 90), p99: percentile(sorted, 99), max: percentile(sorted, 100) },
    server: { cpuSeconds: Math.round(cpu * 100) / 100, cpuPercent: Math.round((cpu / elapsed) * 1000) / 10, rssMiB: Math.round(rss / 1024) },
  };
}

// ---------------------------------------------------------------------------------------------

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(new RegExp(`^${name} (\\d+)`, 'm').exec(text)?.[1] ?? NaN);
}

async function ingest(bootstrap: string, producer: BenchProducer) {
  const records = num('records');
  const channelCount = num('ingest-channels');
  const filler = pad(num('payload-bytes'));
  for (let n = 0; n < records; n += 5000) {
    const messages = [];
    for (let i = n; i < Math.min(records, n + 5000); i++) {
      const channel = `ingest/${i % channelCount}`;
      messages.push({ key: channel, value: JSON.stringify({ s: i, t: 0, pad: filler }) });
    }
    await send(producer, 'ingest', messages);
  }
  // Baseline: an idle node on an empty read-back (same topic, readBack 0).
  const idle = await startEdgepush(bootstrap, 'ingest', { readBack: 0 });
  const idleRss = rssKiB(idle.pid);
  const idleCpu = cpuSeconds(idle.pid);
  await idle.stop();

  const started = now();
  const server = await startEdgepush(bootstrap, 'ingest', { readBack: records });
  const listenAt = now();
  const until = now() + 5 * 60_000;
  let taken = 0;
  let firstTaken: number | undefined;
  while ((taken = await metric(server.baseUrl, 'edgepush_records_total')) < records && now() < until) {
    if (taken > 0) firstTaken ??= now();
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const done = now();
  // Start-up work (node, fastify, Kafka connect) as measured on the idle node is not ingest.
  const cpu = cpuSeconds(server.pid) - idleCpu;
  const rss = rssKiB(server.pid);
  await server.stop();
  // From spawn, so it includes process start, Kafka connect and the group join (conservative).
  const seconds = (done - started) / 1000;
  return {
    bench: 'kafka-ingest',
    records,
    taken,
    channels: channelCount,
    partitions: PARTITIONS,
    payloadBytes: num('payload-bytes'),
    startupSeconds: Math.round(((listenAt - started) / 1000) * 10) / 10,
    secondsFromSpawnToAllTaken: Math.round(seconds * 100) / 100,
    recordsPerSecond: Math.round(taken / seconds),
    // From the first record seen to the last: the ingest rate without process start and Kafka connect.
    recordsPerSecondOnceFlowing: firstTaken === undefined ? null : Math.round(taken / ((done - firstTaken) / 1000)),
    cpuMicrosPerRecord: Math.round((cpu / taken) * 1e6 * 100) / 100,
    rssMiB: Math.round(rss / 1024),
    idleRssMiB: Math.round(idleRss / 1024),
    bytesPerChannel: Math.round(((rss - idleRss) * 1024) / channelCount),
  };
}

// ---------------------------------------------------------------------------------------------

interface WsOp {
  op: string;
  cursor?: string;
  data?: { s: number };
  reason?: string;
}

/** A WebSocket client on one channel that hands every op to `onOp`. */
function wsFollower(baseUrl: string, subscribe: Record<string, unknown>, onOp: (op: WsOp) => void): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${baseUrl.replace('http', 'ws')}/v1/ws`);
    socket.on('error', reject);
    socket.on('open', () => {
      socket.send(JSON.stringify({ op: 'subscribe', ...subscribe }));
      resolve(socket);
    });
    socket.on('message', (raw) => onOp(JSON.parse(raw.toString()) as WsOp));
  });
}

async function deepResume(bootstrap: string, producer: BenchProducer) {
  const behind = num('behind');
  const ring = 100;
  const channel = 'deep/0';
  const filler = pad(num('payload-bytes'));
  const server = await startEdgepush(bootstrap, 'deep', { readBack: 0 });
  const produce = async (from: number, count: number): Promise<void> => {
    for (let n = from; n < from + count; n += 5000) {
      const messages = [];
      for (let s = n; s < Math.min(from + count, n + 5000); s++) messages.push({ key: channel, value: JSON.stringify({ s, t: 0, pad: filler }) });
      await send(producer, 'deep', messages);
    }
  };
  // The first client takes the cursor of message 0 and leaves; the rest is written while it is away.
  const total = 1 + behind + ring;
  let cursor: string | undefined;
  let subscribed!: () => void;
  const live = new Promise<void>((resolve) => (subscribed = resolve));
  let gotFirst!: () => void;
  const first = new Promise<void>((resolve) => (gotFirst = resolve));
  const firstClient = await wsFollower(server.baseUrl, { channel }, (op) => {
    if (op.op === 'subscribed') subscribed();
    if (op.op === 'message' && op.data?.s === 0) {
      cursor = op.cursor;
      gotFirst();
    }
  });
  await live;
  await produce(0, 1);
  await first;
  firstClient.terminate();
  await produce(1, total - 1);
  // Wait (bounded) until the node has taken the last record: the channel's history ends with it.
  const until = now() + 60_000;
  while (now() < until) {
    const head = (await (await fetch(`${server.baseUrl}/v1/history?channel=${encodeURIComponent(channel)}&limit=1`)).json()) as { messages: Array<{ data: { s: number } }> };
    if (head.messages.at(-1)?.data.s === total - 1) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }

  const started = now();
  let backlog = 0;
  let resets = 0;
  let firstSeq = -1;
  let done!: () => void;
  const finished = new Promise<void>((resolve) => (done = resolve));
  const second = await wsFollower(server.baseUrl, { channel, cursor }, (op) => {
    if (op.op === 'reset') resets++;
    if (op.op !== 'message') return;
    if (firstSeq < 0) firstSeq = op.data?.s ?? -1;
    if (++backlog === total - 1) done();
  });
  const timeout = setTimeout(done, 60_000);
  await finished;
  clearTimeout(timeout);
  const ms = now() - started;
  second.terminate();
  await server.stop();
  return {
    bench: 'kafka-deep-resume',
    recordsBehindRing: behind,
    ring,
    backlogReceived: backlog,
    backlogExpected: total - 1,
    firstSequence: firstSeq,
    resets,
    msToLastBacklogMessage: Math.round(ms),
  };
}

main().then(
  () => process.exit(0),
  async (error: unknown) => {
    process.stderr.write(`kafka-latency: ${(error as Error).stack ?? String(error)}\n`);
    await Promise.allSettled(cleanups.reverse().map((c) => c()));
    process.exit(1);
  },
);
