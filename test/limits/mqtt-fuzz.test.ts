/**
 * Seeded fuzz of the MQTT endpoint: random bytes, truncated and mutated packets, wrong protocol
 * levels, oversized remaining lengths, a SUBSCRIBE of 10,000 filters, deep and malformed topics,
 * packets before CONNECT and after DISCONNECT. Every input ends in a protocol-correct answer or
 * close (never a WebSocket 1011, never a crash), the log holds no stack trace, and afterwards a
 * well-behaved MQTT client still connects and receives. MQTT_FUZZ_SEED reproduces a run.
 */
import mqtt from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { RunningServer } from '../../src/start.js';
import { Rng } from '../helpers/fuzz-inputs.js';
import { captureLog, type LogCapture } from '../helpers/limit-clients.js';
import { publishAs, userToken, SECRET } from '../helpers/security-kit.js';
import { startTestServer } from '../helpers/server.js';

const SEED = Number(process.env['MQTT_FUZZ_SEED'] ?? 20261203);
const SOCKETS = 2000;
const API_KEY = 'mqtt-fuzz-api-key-000000001';
const CAPS = [{ match: 'fz/#', allow: ['sub', 'pub'] }];

let server: RunningServer;
let url: string;
let log: LogCapture;
let token: string;

beforeAll(async () => {
  server = await startTestServer({ jwtSecret: SECRET, apiKeys: API_KEY, maxMessageBytes: 65_536, logLevel: 'info' });
  log = captureLog(server);
  url = `${server.url.replace(/^http/, 'ws')}/mqtt`;
  token = await userToken('fz', CAPS);
});
afterAll(async () => {
  await server.close();
});

/** A CONNECT at protocol level `version` (3 and 6 are written as 4 and the level byte patched). */
function connectPacket(rng: Rng, version: number): Buffer {
  const bytes = mqttPacket.generate(
    { cmd: 'connect', protocolId: 'MQTT', protocolVersion: version === 5 ? 5 : 4, clientId: `fz${rng.int(1000)}`, clean: true, keepalive: rng.int(3) === 0 ? 0 : 30, username: 'token', password: Buffer.from(rng.chance(0.8) ? token : 'not-a-token') },
    { protocolVersion: version === 5 ? 5 : 4 },
  );
  let offset = 1;
  while ((bytes[offset] as number) & 0x80) offset++;
  bytes[offset + 1 + 6] = version; // after the fixed header and the protocol name "MQTT"
  return bytes;
}

function topic(rng: Rng): string {
  switch (rng.int(6)) {
    case 0:
      return 'fz/a';
    case 1:
      return `fz/${'x/'.repeat(rng.int(200))}y`;
    case 2:
      return 'fz/#/bad';
    case 3:
      return '';
    case 4:
      return `fz/${rng.bytes(rng.int(20)).toString('latin1')}`;
    default:
      return rng.pick(['#', '+/+', 'fz/+', 'other/x', 'fz/\u0000', 'fz//x']);
  }
}

/** One packet after CONNECT: valid, mutated, truncated or garbage. */
function laterPacket(rng: Rng, version: 4 | 5): Buffer {
  const id = 1 + rng.int(65_535);
  let packet: Buffer;
  switch (rng.int(7)) {
    case 0:
      packet = mqttPacket.generate({ cmd: 'subscribe', messageId: id, subscriptions: Array.from({ length: 1 + rng.size(0, 30) }, () => ({ topic: topic(rng), qos: rng.int(3) as 0 | 1 | 2 })) }, { protocolVersion: version });
      break;
    case 1:
      packet = mqttPacket.generate({ cmd: 'publish', topic: topic(rng) || 'fz/p', payload: rng.bytes(rng.size(0, 5000)), qos: rng.int(3) as 0 | 1 | 2, messageId: id, retain: rng.chance(0.3), dup: false }, { protocolVersion: version });
      break;
    case 2:
      packet = mqttPacket.generate({ cmd: 'unsubscribe', messageId: id, unsubscriptions: [topic(rng) || 'fz/u'] }, { protocolVersion: version });
      break;
    case 3:
      packet = mqttPacket.generate(rng.pick([{ cmd: 'pingreq' }, { cmd: 'puback', messageId: id }, { cmd: 'disconnect' }, { cmd: 'pubrel', messageId: id }] as mqttPacket.Packet[]), { protocolVersion: version });
      break;
    case 4:
      // An oversized remaining length.
      packet = Buffer.from([rng.pick([0x30, 0x82, 0x10]), 0xff, 0xff, 0xff, 0x7f]);
      break;
    case 5:
      packet = rng.bytes(rng.size(1, 200));
      break;
    default:
      packet = connectPacket(rng, 5);
  }
  // Now and then, a byte flipped or the tail cut off.
  if (packet.length > 2 && rng.chance(0.2)) packet[rng.int(packet.length)] = rng.int(256);
  if (packet.length > 2 && rng.chance(0.2)) packet = packet.subarray(0, rng.int(packet.length));
  return packet;
}

/** One socket's worth of input; resolves with the close code once the server (or we) close it. */
function runSocket(rng: Rng): Promise<{ code: number; frames: number; badFrame: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, 'mqtt');
    let frames = 0;
    let badFrame = false;
    const parser = mqttPacket.parser({ protocolVersion: 5 });
    parser.on('error', () => (badFrame = true));
    socket.on('message', (data: Buffer, isBinary: boolean) => {
      frames++;
      if (!isBinary) badFrame = true;
      else parser.parse(data);
    });
    socket.once('error', reject);
    socket.once('close', (code) => resolve({ code, frames, badFrame }));
    socket.once('open', () => {
      try {
        send();
      } catch (error) {
        reject(error as Error);
      }
    });
    const send = (): void => {
      const version = rng.pick([3, 4, 5, 5, 6]);
      const first = rng.chance(0.85) ? connectPacket(rng, version) : laterPacket(rng, 5);
      const inputs = [first, ...Array.from({ length: rng.size(0, 12) }, () => laterPacket(rng, version === 5 ? 5 : 4))];
      // Several packets in one frame, or one packet split over frames.
      for (const input of inputs) {
        if (socket.readyState !== WebSocket.OPEN) break;
        if (rng.chance(0.2) && input.length > 2) {
          const cut = 1 + rng.int(input.length - 1);
          socket.send(input.subarray(0, cut));
          socket.send(input.subarray(cut));
        } else {
          socket.send(rng.chance(0.05) ? input.toString('latin1') : input);
        }
      }
      // Whatever the server still holds open, we close: counted as a normal end.
      setImmediate(() => socket.close(1000));
    };
  });
}

describe('MQTT fuzz', () => {
  it(`answers ${SOCKETS} sockets of random and malformed MQTT with protocol-correct closes, and keeps serving`, async () => {
    const codes = new Map<number, number>();
    let badFrames = 0;
    const root = new Rng(SEED);
    for (let batch = 0; batch < SOCKETS; batch += 20) {
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => runSocket(root.fork(`mqtt#${batch + i}`))));
      for (const result of results) {
        codes.set(result.code, (codes.get(result.code) ?? 0) + 1);
        if (result.badFrame) badFrames++;
      }
    }
    // A SUBSCRIBE of 10,000 filters: answered (most refused by the limits), not a crash.
    const many = await runMany();
    expect(many.granted).toHaveLength(10_000);
    expect(many.granted.filter((code) => code < 0x80).length).toBeLessThanOrEqual(100);
    expect([...codes.keys()].filter((code) => ![1000, 1005, 1006, 1002, 1007, 1009].includes(code)), JSON.stringify([...codes])).toEqual([]);
    expect(badFrames, 'frames the server sent that are not valid MQTT').toBe(0);
    expect(log.problems(), `seed ${SEED}`).toEqual([]);
    // Still serving: a well-behaved client connects, subscribes and receives.
    const client = await mqtt.connectAsync(url, { protocolVersion: 5, reconnectPeriod: 0, username: 'token', password: token });
    await client.subscribeAsync('fz/after');
    const got = new Promise<string>((resolve) => client.once('message', (_topic, payload) => resolve(payload.toString())));
    expect((await publishAs(server.url, API_KEY, { channel: 'fz/after', data: 'still here' }, {}, '/v1/server/publish')).status).toBe(201);
    expect(await got).toBe('"still here"');
    await client.endAsync();
  });
});

async function runMany(): Promise<{ granted: number[] }> {
  const socket = new WebSocket(url, 'mqtt');
  await new Promise((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  const parser = mqttPacket.parser({ protocolVersion: 5 });
  const suback = new Promise<number[]>((resolve, reject) => {
    parser.on('packet', (packet: mqttPacket.Packet) => packet.cmd === 'suback' && resolve(packet.granted as number[]));
    socket.once('close', (code) => reject(new Error(`closed with ${code} before the SUBACK`)));
  });
  socket.on('message', (data: Buffer) => parser.parse(data));
  socket.send(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'many', clean: true, keepalive: 30, username: 'token', password: Buffer.from(token) }, { protocolVersion: 5 }));
  socket.send(mqttPacket.generate({ cmd: 'subscribe', messageId: 7, subscriptions: Array.from({ length: 10_000 }, (_, i) => ({ topic: `fz/m/${i}`, qos: 0 as const })) }, { protocolVersion: 5 }));
  const granted = await suback;
  socket.close();
  return { granted };
}
