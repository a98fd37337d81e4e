/**
 * Several nodes, one Kafka topic (real broker, Kafka 4.1): two separate edgepush processes read
 * the same 3-partition topic, each a full consumer. A client cut off from one resumes on the other
 * with its cursor, over each transport, with nothing lost and nothing twice; both nodes name the
 * log and each message the same way. Then `--workers 2`: one port, two worker processes, cursors
 * valid on either.
 */
import { Agent, request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kafkaAvailability, startKafka, type KafkaBroker } from '../kafka/broker.mjs';
import { runResumeScenario } from '../helpers/cross-node-resume.js';
import { EdgepushProcess, ensureBuilt, getJson, type Health } from '../helpers/edgepush-process.js';
import { KafkaBackend, createTopic, spreadChannels } from '../helpers/kafka-backend.js';
import { SseTestClient } from '../helpers/sse-client.js';
import type { TransportName } from '../helpers/test-client.js';

const avail = kafkaAvailability();
const TOPIC = 'multinode';
const PARTITIONS = 3;
const TRANSPORTS: TransportName[] = ['sse', 'ws', 'poll'];

const title = `several edgepush processes on one Kafka topic${avail.ok ? '' : ` — SKIPPED: ${avail.reason}`}`;

describe.skipIf(!avail.ok)(title, () => {
  let broker: KafkaBroker;
  let backend: KafkaBackend;
  const nodes: EdgepushProcess[] = [];
    // Rings deep enough for every resume here: this file is about cursors across processes.
  // Resumes older than the rings (deep resume from Kafka) are restart.test.ts's subject.
  const config = (brokers: string): Record<string, unknown> => ({ historySize: 10_000, kafka: { brokers: [brokers], topics: [{ topic: TOPIC }], publishTopic: TOPIC, readBack: 1000 } });

  beforeAll(async () => {
    const [started] = await Promise.all([startKafka({ version: 'latest' }), ensureBuilt()]);
    broker = started;
    await createTopic(broker.bootstrap, TOPIC, PARTITIONS);
    backend = await KafkaBackend.connect(broker.bootstrap, TOPIC, PARTITIONS);
  }, 10 * 60_000);

  afterAll(async () => {
    await Promise.allSettled(nodes.map((node) => node.stop()));
    await backend?.disconnect().catch(() => {});
    await broker?.stop();
  }, 60_000);

  describe('two processes, same config', () => {
    let one: EdgepushProcess;
    let two: EdgepushProcess;

    beforeAll(async () => {
      [one, two] = await Promise.all([EdgepushProcess.start({ config: config(broker.bootstrap) }), EdgepushProcess.start({ config: config(broker.bootstrap) })]);
      nodes.push(one, two);
    }, 120_000);

    it('both name the log the same way (same epoch, different processes)', async () => {
      const [h1, h2] = await Promise.all([one.health(), two.health()]);
      expect(h1).toMatchObject({ status: 'ok', source: 'kafka', writable: true });
      expect(h2.epoch).toBe(h1.epoch);
      expect(h2.pid).not.toBe(h1.pid);
    });

    it('both give each message the id Kafka gave its record', async () => {
      const channels = spreadChannels('mn/ids/', 3, PARTITIONS);
      const watchers = [new SseTestClient(one.url, channels), new SseTestClient(two.url, channels)];
      try {
        await Promise.all(watchers.map((w) => w.ready));
        const records = Array.from({ length: 300 }, (_, i) => ({ channel: channels[i % 3] as string, data: { n: i } }));
        const ids = await backend.send(records);
        for (const watcher of watchers) await watcher.waitFor(() => watcher.received.length === 300, 'all 300 messages on each node');
        // Per channel the same messages in the same order (partitions interleave as each node reads them).
        const [first, second] = watchers.map((w) => channels.map((c) => w.received.filter((m) => m.channel === c).map((m) => `${m.id} ${JSON.stringify(m.data)}`)));
        expect(first).toEqual(second);
        const byN = (w: SseTestClient): string[] => [...w.received].sort((x, y) => (x.data as { n: number }).n - (y.data as { n: number }).n).map((m) => m.id);
        expect(byN(watchers[0]!)).toEqual(ids);
        expect(byN(watchers[1]!)).toEqual(ids);
        expect(new Set(ids.map((id) => id.split('-')[0])).size).toBe(3);
      } finally {
        for (const w of watchers) w.drop();
      }
    });

    for (const [index, transport] of TRANSPORTS.entries()) {
      it(`${transport}: a client switched at random between the nodes gets 2000 of 3000 messages exactly once, in order`, async () => {
        const names = spreadChannels(`mn/${transport}/`, 4, PARTITIONS);
        const served = new Map<string, number>();
        const outcome = await runResumeScenario({
          transport,
          backend,
          channels: [names[0] as string, names[1] as string],
          others: names.slice(2),
          total: 3000,
          seed: 1000 + index,
          // A coin per reconnection; the first connection alternates per transport.
          pick: (random, n) => (n === 0 ? [one, two][index % 2] : random() < 0.5 ? one : two)!.url,
          onConnect: (url) => served.set(url, (served.get(url) ?? 0) + 1),
        });
        expect(outcome.resets).toEqual([]);
        for (const channel of Object.keys(outcome.expected)) expect(outcome.got[channel]).toEqual(outcome.expected[channel]);
        expect(outcome.got[names[0] as string]!.length + outcome.got[names[1] as string]!.length).toBe(1500);
        // Same message, same id, whichever node sent it.
        expect([...outcome.ids.entries()].sort((x, y) => x[0] - y[0])).toEqual([...outcome.expectedIds.entries()].sort((x, y) => x[0] - y[0]));
        expect(outcome.reconnects).toBeGreaterThan(3);
        // Both nodes served this client, and it really moved between them.
        expect(served.get(one.url)).toBeGreaterThan(0);
        expect(served.get(two.url)).toBeGreaterThan(0);
        const switches = outcome.urls.slice(1).filter((url, i) => url !== outcome.urls[i]).length;
        expect(switches).toBeGreaterThan(0);
      }, 120_000);
    }
  });

  describe('--workers 2 on one port', () => {
    let node: EdgepushProcess;

    beforeAll(async () => {
      node = await EdgepushProcess.start({ config: config(broker.bootstrap), workers: 2 });
      nodes.push(node);
    }, 120_000);

    /** Asks /healthz on fresh connections until both workers answered (bounded). */
    async function workerPids(): Promise<Set<number>> {
      const pids = new Set<number>();
      for (let i = 0; i < 200 && pids.size < 2; i++) pids.add((await getJson<Health>(`${node.url}/healthz`)).body.pid);
      return pids;
    }

    it('two workers answer on the port, with one epoch', async () => {
      const pids = await workerPids();
      expect(pids.size).toBe(2);
      expect(pids.has(node.pid as number)).toBe(false);
      const epochs = new Set<string>();
      for (let i = 0; i < 10; i++) epochs.add((await getJson<Health>(`${node.url}/healthz`)).body.epoch);
      expect(epochs.size).toBe(1);
    });

    for (const [index, transport] of TRANSPORTS.entries()) {
      it(`${transport}: connections land on either worker and resume exactly with any worker's cursor`, async () => {
        const names = spreadChannels(`mw/${transport}/`, 3, PARTITIONS);
        const before = await deliveriesPerWorker(node.url);
        expect(before.size).toBe(2);
        const outcome = await runResumeScenario({
          transport,
          backend,
          channels: [names[0] as string, names[1] as string],
          others: names.slice(2),
          total: 1500,
          seed: 2000 + index,
          pick: () => node.url,
        });
        expect(outcome.resets).toEqual([]);
        for (const channel of Object.keys(outcome.expected)) expect(outcome.got[channel]).toEqual(outcome.expected[channel]);
        expect(outcome.reconnects).toBeGreaterThan(3);
        // Both workers delivered live messages to this client's connections. (A long-poll answered
        // at once from the ring is no live delivery, and which worker answered it is invisible.)
        const after = await deliveriesPerWorker(node.url);
        if (transport !== 'poll') for (const [pid, count] of before) expect(after.get(pid), `worker ${pid}`).toBeGreaterThan(count);
      }, 120_000);
    }
  });
});

/**
 * Messages each worker has handed to live subscribers: /healthz (pid) and /metrics read on one
 * keep-alive connection come from the same worker. Asks on fresh connections until both answered.
 */
async function deliveriesPerWorker(url: string): Promise<Map<number, number>> {
  const seen = new Map<number, number>();
  for (let i = 0; i < 200 && seen.size < 2; i++) {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const get = (path: string): Promise<string> =>
        new Promise((resolve, reject) => {
          const req = request(`${url}${path}`, { agent }, (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => (text += c));
            res.on('end', () => resolve(text));
            res.on('error', reject);
          });
          req.on('error', reject);
          req.end();
        });
      const pid = (JSON.parse(await get('/healthz')) as Health).pid;
      const delivered = Number(/^edgepush_deliveries_total (\d+)/m.exec(await get('/metrics'))?.[1]);
      seen.set(pid, delivered);
    } finally {
      agent.destroy();
    }
  }
  return seen;
}
