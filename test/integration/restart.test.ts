/**
 * Restart (real broker, Kafka 4.1): an edgepush process is killed with SIGKILL while a backend
 * keeps writing to Kafka, and started again on the same port. A client that was cut off resumes
 * with its old cursor: what was written while the node was down comes back from Kafka, nothing
 * lost, nothing twice, no reset notice.
 *
 * - with read-back (the default): the new process re-reads the last `readBack` records of each
 *   partition on start, so its rings hold what the client missed;
 * - with `readBack: 0`: the new process starts at the end of the log, so the missing range must
 *   be read from Kafka for that client (deep resume).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kafkaAvailability, startKafka, type KafkaBroker } from '../kafka/broker.mjs';
import { openClient } from '../helpers/cross-node-resume.js';
import { EdgepushProcess, ensureBuilt } from '../helpers/edgepush-process.js';
import { KafkaBackend, createTopic, spreadChannels } from '../helpers/kafka-backend.js';
import type { TestClient, TransportName } from '../helpers/test-client.js';

const avail = kafkaAvailability();
const TOPIC = 'restart';
const PARTITIONS = 3;
const TRANSPORTS: TransportName[] = ['sse', 'ws', 'poll'];
const END = -1;

const title = `an edgepush process killed and started again${avail.ok ? '' : ` — SKIPPED: ${avail.reason}`}`;

describe.skipIf(!avail.ok)(title, () => {
  let broker: KafkaBroker;
  let backend: KafkaBackend;
  const nodes: EdgepushProcess[] = [];
  const clients: TestClient[] = [];

  beforeAll(async () => {
    const [started] = await Promise.all([startKafka({ version: 'latest' }), ensureBuilt()]);
    broker = started;
    await createTopic(broker.bootstrap, TOPIC, PARTITIONS);
    backend = await KafkaBackend.connect(broker.bootstrap, TOPIC, PARTITIONS);
  }, 10 * 60_000);

  afterAll(async () => {
    for (const client of clients) client.drop();
    await Promise.allSettled(nodes.map((node) => node.stop()));
    await backend?.disconnect().catch(() => {});
    await broker?.stop();
  }, 60_000);

  /**
   * Before: 150 records, the client takes its share. Killed (SIGKILL): 450 more while down.
   * Started again: the client resumes with its old cursor; 150 more live, then a closing marker
   * per channel. Returns what the client got per channel, in order, and what it should have.
   */
  async function killAndResume(node: EdgepushProcess, transport: TransportName, prefix: string) {
    const [a, b, other] = spreadChannels(prefix, 3, PARTITIONS) as [string, string, string];
    const expected: Record<string, number[]> = { [a]: [], [b]: [] };
    let n = 0;
    const write = async (count: number): Promise<void> => {
      for (let sent = 0; sent < count; sent += 50) {
        const batch = Array.from({ length: 50 }, () => {
          const i = n++;
          const channel = [a, b, other][i % 3] as string;
          expected[channel]?.push(i);
          return { channel, data: i };
        });
        await backend.send(batch);
      }
    };
    const before = track(openClient(transport, node.url, [a, b]));
    await before.ready;
    await write(150);
    await before.waitFor(() => before.received.length === 100, 'the first 100 messages');
    const cursor = before.cursor as string;

    await node.kill('SIGKILL');
    before.drop();
    await write(450);
    await node.start();

    const after = track(openClient(transport, node.url, [a, b], cursor));
    await after.ready;
    await write(150);
    await backend.send([{ channel: a, data: END }, { channel: b, data: END }]);
    await after.waitFor(() => after.received.filter((m) => m.data === END).length === 2, 'the closing markers', 45_000);
    const got: Record<string, number[]> = { [a]: [], [b]: [] };
    for (const message of [...before.received, ...after.received]) if (message.data !== END) got[message.channel]?.push(message.data as number);
    after.drop();
    return { expected, got, resets: [...before.resets, ...after.resets] };
  }

  function track(client: TestClient): TestClient {
    clients.push(client);
    return client;
  }

  describe('read-back on start refills the rings', () => {
    let node: EdgepushProcess;

    beforeAll(async () => {
      node = await EdgepushProcess.start({ config: { historySize: 10_000, kafka: { brokers: [broker.bootstrap], topics: [{ topic: TOPIC }], readBack: 1000 } } });
      nodes.push(node);
    }, 120_000);

    for (const transport of TRANSPORTS) {
      it(`${transport}: the old cursor gets everything written while the node was down, once, in order`, async () => {
        const pid = node.pid;
        const outcome = await killAndResume(node, transport, `restart/readback/${transport}/`);
        expect(node.pid).not.toBe(pid);
        expect(outcome.resets).toEqual([]);
        for (const channel of Object.keys(outcome.expected)) expect(outcome.got[channel]).toEqual(outcome.expected[channel]);
      }, 120_000);
    }
  });

  describe('readBack 0: the missing range is read from Kafka for the client (deep resume)', () => {
    let node: EdgepushProcess;

    beforeAll(async () => {
      node = await EdgepushProcess.start({ config: { kafka: { brokers: [broker.bootstrap], topics: [{ topic: TOPIC }], readBack: 0 } } });
      nodes.push(node);
    }, 120_000);

    for (const transport of TRANSPORTS) {
      it(`${transport}: the old cursor gets everything written while the node was down, once, in order`, async () => {
        const outcome = await killAndResume(node, transport, `restart/deep/${transport}/`);
        expect(outcome.resets).toEqual([]);
        for (const channel of Object.keys(outcome.expected)) expect(outcome.got[channel]).toEqual(outcome.expected[channel]);
      }, 120_000);
    }
  });
});
