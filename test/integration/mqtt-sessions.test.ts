/**
 * MQTT persistent sessions across nodes (real broker, edgepush processes): a client with a
 * persistent session leaves node one, 500 messages are published, and it comes back to node two,
 * or to a node started after it left: CONNACK says sessionPresent, and it gets exactly the 500 it
 * missed, in order, none twice, without subscribing again. The session travels through edgepush's
 * compacted sessions topic, which every node reads from its start.
 */
import { EventEmitter } from 'node:events';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kafkaAvailability, startKafka, type KafkaBroker } from '../kafka/broker.mjs';
import { EdgepushProcess, ensureBuilt } from '../helpers/edgepush-process.js';
import { createTopic } from '../helpers/kafka-backend.js';
import { waitForChange } from '../helpers/wait-for-change.js';
import { hsToken } from '../helpers/security-kit.js';

const avail = kafkaAvailability();
const TOPIC = 'mqttsessions';
const SECRET = 'mqtt-sessions-test-secret-of-32-bytes-at-least';
const API_KEY = 'mqtt-sessions-backend-key-01';
const MISSED = 500;

function token(user: string): Promise<string> {
  return hsToken({ sub: user, edgepush: { caps: [{ match: 'fleet/#', allow: ['sub'] }] } }, SECRET);
}

interface Opened {
  client: MqttClient;
  sessionPresent: boolean;
  received: { topic: string; data: unknown }[];
  changed: EventEmitter;
}

/** A persistent-session MQTT.js client, its handlers on before the CONNACK. */
function open(node: EdgepushProcess, version: 4 | 5, clientId: string, password: string): Promise<Opened> {
  const received: Opened['received'] = [];
  const changed = new EventEmitter();
  const client = mqtt.connect(`${node.url.replace('http', 'ws')}/mqtt`, {
    protocolVersion: version,
    clientId,
    clean: version === 5,
    ...(version === 5 ? { properties: { sessionExpiryInterval: 600 } } : {}),
    reconnectPeriod: 0,
    username: 'token',
    password,
  });
  client.on('message', (topic, payload) => {
    received.push({ topic, data: JSON.parse(payload.toString()) as unknown });
    changed.emit('change');
  });
  return new Promise((resolve, reject) => {
    client.once('connect', (connack) => resolve({ client, sessionPresent: connack.sessionPresent, received, changed }));
    client.once('error', reject);
  });
}

async function publish(node: EdgepushProcess, messages: { channel: string; data: unknown }[]): Promise<void> {
  const response = await fetch(`${node.url}/v1/server/publish`, { method: 'POST', headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify({ messages }) });
  expect(response.status).toBe(201);
}

const until = (opened: Opened, predicate: () => boolean, what: string): Promise<void> => waitForChange(opened.changed, predicate, () => `timed out waiting for ${what} (got ${opened.received.length})`, 30_000);

describe.skipIf(!avail.ok)(`MQTT persistent sessions across nodes${avail.ok ? '' : ` — SKIPPED: ${avail.reason}`}`, () => {
  let broker: KafkaBroker;
  let one: EdgepushProcess;
  let two: EdgepushProcess;
  /** Started after the session was saved: it knows it from the sessions topic's start. */
  let late: EdgepushProcess | undefined;
  let config: Record<string, unknown>;

  beforeAll(async () => {
    const [started] = await Promise.all([startKafka({ version: 'latest' }), ensureBuilt()]);
    broker = started;
    await createTopic(broker.bootstrap, TOPIC, 2);
    config = { jwtSecret: SECRET, apiKeys: API_KEY, historySize: 20, kafka: { brokers: [broker.bootstrap], topics: [{ topic: TOPIC }], publishTopic: TOPIC, controlTopic: 'mqttsessions-control' } };
    [one, two] = await Promise.all([EdgepushProcess.start({ config }), EdgepushProcess.start({ config })]);
  }, 10 * 60_000);

  afterAll(async () => {
    await Promise.allSettled([one?.stop(), two?.stop(), late?.stop()]);
    await broker?.stop();
  }, 60_000);

  for (const [version, where] of [
    [4, 'node two'],
    [5, 'a node started after it left'],
  ] as const) {
    it(`MQTT ${version}: leaves node one, ${MISSED} messages later comes back to ${where} with sessionPresent and gets exactly those, in order, once`, async () => {
      const password = await token(`driver${version}`);
      const clientId = `bus-${version}`;
      const first = await open(one, version, clientId, password);
      expect(first.sessionPresent).toBe(false);
      await first.client.subscribeAsync(`fleet/${version}/+`, { qos: 1 });
      await publish(one, [0, 1, 2].map((n) => ({ channel: `fleet/${version}/a`, data: n })));
      await until(first, () => first.received.length >= 3, 'the first three');
      await first.client.endAsync();

      // Published while the client is away, on two channels of its filter (both partitions), past the rings.
      for (let n = 0; n < MISSED; n += 100) {
        await publish(one, Array.from({ length: 100 }, (_, i) => ({ channel: `fleet/${version}/${(n + i) % 3 === 0 ? 'a' : 'b'}`, data: 3 + n + i })));
      }
      const back = where === 'node two' ? two : (late = await EdgepushProcess.start({ config }));
      const again = await open(back, version, clientId, password);
      expect(again.sessionPresent).toBe(true);
      await until(again, () => again.received.length >= MISSED, `the ${MISSED} missed messages`);
      await publish(back, [{ channel: `fleet/${version}/b`, data: 'live' }]);
      await until(again, () => again.received.some((m) => m.data === 'live'), 'a live message');
      const perChannel = (channel: string): unknown[] => again.received.filter((m) => m.topic === channel).map((m) => m.data);
      const expected = (channel: string): unknown[] => Array.from({ length: MISSED }, (_, i) => i).filter((i) => (i % 3 === 0) === channel.endsWith('/a')).map((i) => 3 + i);
      expect(perChannel(`fleet/${version}/a`)).toEqual(expected(`fleet/${version}/a`));
      expect(perChannel(`fleet/${version}/b`)).toEqual([...expected(`fleet/${version}/b`), 'live']);
      expect(again.received).toHaveLength(MISSED + 1);
      await again.client.endAsync();
    });
  }
});
