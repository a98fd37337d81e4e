/**
 * MQTT over WebSocket with the real MQTT.js 5 client, protocol versions 4 (3.1.1) and 5: a token as
 * the password; subscriptions to a channel, `+` and `#` patterns, checked against the caps (denied
 * filters get the failure code); what HTTP publishes arrives; QoS 1 exactly once; retained
 * snapshots at subscribe; client PUBLISH with and without the grant; refused tokens; keepalive.
 */
import mqtt, { type MqttClient } from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { RunningServer } from '../../src/start.js';
import { startTestServer } from '../helpers/server.js';
import { SecureSse, hsToken, publishAs, userToken, SECRET } from '../helpers/security-kit.js';
import { waitForChange } from '../helpers/wait-for-change.js';
import { metricValue, scrapeMetrics } from '../helpers/limit-clients.js';
import { EventEmitter } from 'node:events';

const API_KEY = 'mqtt-test-api-key-0000001';
const CAPS = [
  { match: 'mq/#', allow: ['sub'] },
  { match: 'mq/in/{sub}', allow: ['pub'] },
];

let server: RunningServer;
let mqttUrl: string;
const clients: MqttClient[] = [];

beforeAll(async () => {
  server = await startTestServer({ jwtSecret: SECRET, apiKeys: API_KEY });
  mqttUrl = `${server.url.replace(/^http/, 'ws')}/mqtt`;
});
afterAll(async () => {
  for (const client of clients) client.end(true);
  await server.close();
});

async function backendPublish(channel: string, data: unknown): Promise<void> {
  const answer = await publishAs(server.url, API_KEY, { channel, data }, {}, '/v1/server/publish');
  expect(answer.status).toBe(201);
}

interface Received {
  topic: string;
  data: unknown;
  qos: number;
  retain: boolean;
}

/** An MQTT.js client that records what it receives; no reconnects (a test sees each close). */
async function connect(version: 4 | 5, password: string | undefined, extra: mqtt.IClientOptions = {}): Promise<{ client: MqttClient; received: Received[]; changed: EventEmitter }> {
  const client = await mqtt.connectAsync(mqttUrl, { protocolVersion: version, reconnectPeriod: 0, connectTimeout: 10_000, ...(password === undefined ? {} : { username: 'token', password }), ...extra });
  clients.push(client);
  const received: Received[] = [];
  const changed = new EventEmitter();
  client.on('message', (topic, payload, packet) => {
    received.push({ topic, data: JSON.parse(payload.toString()) as unknown, qos: packet.qos, retain: packet.retain });
    changed.emit('change');
  });
  return { client, received, changed };
}

/** The SUBACK's codes, failures included (MQTT.js rejects a SUBACK with a failure, carrying the packet). */
function subscribeCodes(client: MqttClient, topics: string[]): Promise<number[]> {
  return new Promise((resolve, reject) => {
    client.subscribe(topics, (error, grants) => {
      const packet = (error as { packet?: { granted?: number[] } } | null)?.packet;
      if (packet?.granted) resolve(packet.granted);
      else if (error) reject(error);
      else resolve((grants ?? []).map((grant) => grant.qos));
    });
  });
}

const until = (emitter: EventEmitter, predicate: () => boolean, what: string): Promise<void> => waitForChange(emitter, predicate, () => `timed out waiting for ${what}`, 15_000);

for (const version of [4, 5] as const) {
  describe(`MQTT ${version === 4 ? '3.1.1' : '5'} over WebSocket`, () => {
    it('delivers channels, + and # patterns to a client whose token is its password, exactly the matching messages', async () => {
      const token = await userToken('m1', CAPS);
      const { client, received, changed } = await connect(version, token);
      const granted = await client.subscribeAsync([`mq/${version}/one`, `mq/${version}/plus/+`, `mq/${version}/hash/#`]);
      expect(granted.map((g) => g.qos)).toEqual([0, 0, 0]);
      await backendPublish(`mq/${version}/one`, 1);
      await backendPublish(`mq/${version}/plus/a`, 2);
      await backendPublish(`mq/${version}/plus/a/deeper`, 'no');
      await backendPublish(`mq/${version}/hash`, 3);
      await backendPublish(`mq/${version}/hash/x/y`, 4);
      await backendPublish(`mq/${version}/other`, 'no');
      await backendPublish(`mq/${version}/one`, 5);
      await until(changed, () => received.length >= 5, '5 messages');
      expect(received.map((m) => [m.topic, m.data])).toEqual([
        [`mq/${version}/one`, 1],
        [`mq/${version}/plus/a`, 2],
        [`mq/${version}/hash`, 3],
        [`mq/${version}/hash/x/y`, 4],
        [`mq/${version}/one`, 5],
      ]);
      // Counted with the other transports' connections.
      expect(metricValue(await scrapeMetrics(server.url, API_KEY), 'edgepush_connections', { transport: 'mqtt' })).toBeGreaterThanOrEqual(1);
      await client.endAsync();
    });

    it('answers filters outside the caps with the failure code and keeps the allowed ones', async () => {
      const token = await userToken('m2', CAPS);
      const { client, received, changed } = await connect(version, token);
      const granted = await subscribeCodes(client, [`secret/${version}`, `mq/${version}/ok`, '#', `+/${version}/ok`]);
      // 3.1.1 has one failure code (0x80); 5 says why: 0x87 not authorized.
      expect(granted).toEqual(version === 4 ? [0x80, 0, 0x80, 0x80] : [0x87, 0, 0x87, 0x87]);
      await backendPublish(`secret/${version}`, 'never');
      await backendPublish(`mq/${version}/ok`, 'yes');
      await until(changed, () => received.length >= 1, 'the allowed message');
      expect(received.map((m) => m.data)).toEqual(['yes']);
      await client.endAsync();
    });

    it('delivers QoS 1 exactly once, acknowledged, in order', async () => {
      const token = await userToken('m3', CAPS);
      const { client, received, changed } = await connect(version, token);
      const granted = await client.subscribeAsync(`mq/${version}/q1`, { qos: 1 });
      expect(granted[0]?.qos).toBe(1);
      const count = 300;
      for (let n = 0; n < count; n += 50) {
        const answer = await publishAs(server.url, API_KEY, { messages: Array.from({ length: 50 }, (_, i) => ({ channel: `mq/${version}/q1`, data: n + i })) }, {}, '/v1/server/publish');
        expect(answer.status).toBe(201);
      }
      await until(changed, () => received.length >= count, `${count} messages`);
      expect(received.map((m) => m.data)).toEqual(Array.from({ length: count }, (_, i) => i));
      expect(received.every((m) => m.qos === 1)).toBe(true);
      await client.endAsync();
    });

    it('sends the newest message of each matching channel with RETAIN at subscribe, then live ones without', async () => {
      await backendPublish(`mq/${version}/ret/a`, 'a1');
      await backendPublish(`mq/${version}/ret/a`, 'a2');
      await backendPublish(`mq/${version}/ret/b`, 'b1');
      const token = await userToken('m4', CAPS);
      const { client, received, changed } = await connect(version, token);
      await client.subscribeAsync(`mq/${version}/ret/+`);
      await until(changed, () => received.length >= 2, 'the retained messages');
      await backendPublish(`mq/${version}/ret/b`, 'b2');
      await until(changed, () => received.length >= 3, 'a live message');
      expect(received.map((m) => [m.data, m.retain])).toEqual([
        ['a2', true],
        ['b1', true],
        ['b2', false],
      ]);
      await client.endAsync();
    });

    it('publishes a client PUBLISH with the pub grant into the log, acknowledged after it is there', async () => {
      const token = await userToken('pub1', CAPS);
      const watcher = new SecureSse(server.url, [`mq/in/pub1`], { header: await userToken('watch', [{ match: 'mq/#', allow: ['sub'] }]) });
      await watcher.opened;
      const { client } = await connect(version, token);
      await client.publishAsync('mq/in/pub1', JSON.stringify({ from: 'mqtt', version }), { qos: 1 });
      await watcher.waitFor(() => watcher.received.length >= 1, 'the published message');
      expect(watcher.received.map((m) => m.data)).toEqual([{ from: 'mqtt', version }]);
      watcher.drop();
      await client.endAsync();
    });

    it('refuses a client PUBLISH without the grant: 3.1.1 closes the connection, 5 answers PUBACK 0x87', async () => {
      const token = await userToken('pub2', CAPS);
      const { client } = await connect(version, token);
      if (version === 5) {
        await expect(client.publishAsync('mq/in/someone-else', '"x"', { qos: 1 })).rejects.toMatchObject({ code: 0x87 });
      } else {
        const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
        client.publish('mq/in/someone-else', '"x"', { qos: 1 });
        await closed;
      }
      client.end(true);
    });

    it('refuses a bad token and anonymous clients with the CONNACK code for it', async () => {
      const forged = await hsToken({ sub: 'x', edgepush: { caps: CAPS } }, 'another-secret-that-is-32-bytes-long!!');
      await expect(connect(version, forged)).rejects.toMatchObject({ code: version === 4 ? 4 : 0x86 });
      await expect(connect(version, undefined)).rejects.toMatchObject({ code: version === 4 ? 5 : 0x87 });
    });
  });
}

describe('MQTT keepalive and malformed input', () => {
  /** A raw WebSocket speaking MQTT by hand: what MQTT.js would never send. */
  function raw(): Promise<WebSocket> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(mqttUrl, 'mqtt');
      socket.once('open', () => resolve(socket));
      socket.once('error', reject);
    });
  }
  const closed = (socket: WebSocket): Promise<number> => new Promise((resolve) => socket.once('close', (code) => resolve(code)));

  it('closes a client that sends nothing for 1.5 × its keepalive', async () => {
    const token = await userToken('k1', CAPS);
    const socket = await raw();
    const ended = closed(socket);
    const frames: Buffer[] = [];
    socket.on('message', (data: Buffer) => frames.push(data));
    socket.send(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'k1', clean: true, keepalive: 1, username: 'token', password: Buffer.from(token) }, { protocolVersion: 5 }));
    await ended;
    // CONNACK, then a DISCONNECT saying why (0x8D keep alive timeout).
    const parser = mqttPacket.parser({ protocolVersion: 5 });
    const packets: mqttPacket.Packet[] = [];
    parser.on('packet', (packet: mqttPacket.Packet) => packets.push(packet));
    for (const frame of frames) parser.parse(frame);
    expect(packets.map((p) => p.cmd)).toEqual(['connack', 'disconnect']);
    expect((packets[1] as mqttPacket.IDisconnectPacket).reasonCode).toBe(0x8d);
  });

  it('closes on random bytes, a non-CONNECT first packet, a text frame and an oversized remaining length, and keeps serving', async () => {
    const inputs: (Buffer | string)[] = [
      Buffer.from([0xff, 0x00, 0x13, 0x37]),
      mqttPacket.generate({ cmd: 'pingreq' }),
      'not binary',
      Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]),
      Buffer.from([0x10, 0x05, 0x00, 0x04, 0x4d]),
    ];
    for (const input of inputs) {
      const socket = await raw();
      const ended = closed(socket);
      socket.send(input);
      if (Buffer.isBuffer(input) && input[0] === 0x10) socket.close(); // a truncated CONNECT: the client gives up
      await ended;
    }
    const token = await userToken('k2', CAPS);
    const { client } = await connect(5, token);
    await client.endAsync();
  });
});

describe('MQTT persistent sessions (one node)', () => {
  /** Connects and records, with the handlers on before the CONNACK (a session's backlog follows it at once). */
  function open(version: 4 | 5, clientId: string, password: string, persistent: boolean): Promise<{ client: MqttClient; sessionPresent: boolean; received: Received[]; changed: EventEmitter }> {
    const received: Received[] = [];
    const changed = new EventEmitter();
    const client = mqtt.connect(mqttUrl, {
      protocolVersion: version,
      clientId,
      clean: version === 4 ? !persistent : true,
      ...(version === 5 ? { properties: { sessionExpiryInterval: persistent ? 300 : 0 } } : {}),
      reconnectPeriod: 0,
      username: 'token',
      password,
    });
    clients.push(client);
    client.on('message', (topic, payload, packet) => {
      received.push({ topic, data: JSON.parse(payload.toString()) as unknown, qos: packet.qos, retain: packet.retain });
      changed.emit('change');
    });
    return new Promise((resolve, reject) => {
      client.once('connect', (connack) => resolve({ client, sessionPresent: connack.sessionPresent, received, changed }));
      client.once('error', reject);
    });
  }

  for (const version of [4, 5] as const) {
    it(`MQTT ${version}: a session that left gets exactly what it missed when it comes back, without subscribing again`, async () => {
      const token = await userToken(`ps${version}`, CAPS);
      const clientId = `persistent-${version}`;
      const first = await open(version, clientId, token, true);
      expect(first.sessionPresent).toBe(false);
      await first.client.subscribeAsync(`mq/ps${version}/#`, { qos: 1 });
      for (let n = 0; n < 3; n++) await backendPublish(`mq/ps${version}/a`, n);
      await until(first.changed, () => first.received.length >= 3, 'the first three');
      await first.client.endAsync();

      const missed = 50;
      await publishAs(server.url, API_KEY, { messages: Array.from({ length: missed }, (_, i) => ({ channel: `mq/ps${version}/${i % 2 ? 'a' : 'b/c'}`, data: 3 + i })) }, {}, '/v1/server/publish');
      const again = await open(version, clientId, token, true);
      expect(again.sessionPresent).toBe(true);
      await until(again.changed, () => again.received.length >= missed, `the ${missed} missed`);
      await backendPublish(`mq/ps${version}/a`, 'live');
      await until(again.changed, () => again.received.some((m) => m.data === 'live'), 'a live message');
      expect(again.received.map((m) => m.data)).toEqual([...Array.from({ length: missed }, (_, i) => 3 + i), 'live']);
      expect(again.received.every((m) => m.qos === 1)).toBe(true);
      await again.client.endAsync();

      // A clean start ends the session: the next persistent connect finds none.
      const clean = await open(version, clientId, token, false);
      expect(clean.sessionPresent).toBe(false);
      await clean.client.endAsync();
      const fresh = await open(version, clientId, token, true);
      expect(fresh.sessionPresent).toBe(false);
      await fresh.client.endAsync();
    });
  }

  it('a session whose missed messages are gone gets what is still held, counted as a resume reset, not as bad input', async () => {
    const counts = async (): Promise<{ badInput: number; resets: number }> => {
      const text = await scrapeMetrics(server.url, API_KEY);
      return { badInput: metricValue(text, 'edgepush_bad_input_total', { transport: 'mqtt', code: 'session_reset' }), resets: metricValue(text, 'edgepush_resume_resets_total', { reason: 'cursor_expired' }) };
    };
    const token = await userToken('gone5', CAPS);
    const first = await open(5, 'persistent-gone', token, true);
    await first.client.subscribeAsync('mq/gone5/#', { qos: 1 });
    await first.client.endAsync();
    // More than a channel's ring holds (historySize, 100), and the embedded log keeps no more.
    const missed = 150;
    await publishAs(server.url, API_KEY, { messages: Array.from({ length: missed }, (_, i) => ({ channel: 'mq/gone5/a', data: i })) }, {}, '/v1/server/publish');
    const before = await counts();
    const again = await open(5, 'persistent-gone', token, true);
    expect(again.sessionPresent).toBe(true);
    await until(again.changed, () => again.received.length >= 100, 'what the ring still holds');
    expect(again.received.map((m) => m.data)).toEqual(Array.from({ length: 100 }, (_, i) => missed - 100 + i));
    const after = await counts();
    // The client sent nothing wrong: the loss is the server's to report, once, as a reset.
    expect(after.badInput - before.badInput).toBe(0);
    expect(after.resets - before.resets).toBe(1);
    await again.client.endAsync();
  });

  it("does not resume another user's session under the same client id", async () => {
    const mine = await open(5, 'shared-id', await userToken('owner', CAPS), true);
    await mine.client.subscribeAsync('mq/owned/#', { qos: 1 });
    await mine.client.endAsync();
    const theirs = await open(5, 'shared-id', await userToken('intruder', CAPS), true);
    expect(theirs.sessionPresent).toBe(false);
    await theirs.client.endAsync();
  });
});
