/**
 * Load-generator child of bench/run.ts and bench/peers.ts (forked with IPC; not meant to be run by
 * hand). Opens N subscribers of one transport (SSE, long-poll, WebSocket, or MQTT over WebSocket at
 * QoS 0 or 1) on 127.0.0.1, spread round-robin over C channels, reports `ready`, then counts
 * deliveries until every expected one arrived or the drain timeout passes. It speaks edgepush's
 * protocol, or Nchan's (nchan-subscribers.ts) for peers.ts.
 */
import http from 'node:http';
import mqttPacket from 'mqtt-packet';
import WebSocket, { type RawData } from 'ws';
import { guardChildProcess, type AwaitCommand, type DrainCommand, type FromClient, type OpenCommand, type ReachedReport, type ReadyReport, type ResultReport, type ServerKind, type ToClient, type Transport } from './ipc.js';
import { Subscriber, Tally } from './tally.js';
import { openInBatches } from './open-in-batches.js';
import { nchanOpeners } from './nchan-subscribers.js';

/** Hard stop in case the parent forgets us; the parent's own watchdog is shorter. */
const CHILD_WATCHDOG_MS = 140_000;
/** After the last expected delivery, keep listening this long so late duplicates are counted. */
const DUPLICATE_GRACE_MS = 300;
const POLL_TIMEOUT_S = 25;
const MAX_POLL_RETRIES = 5;

guardChildProcess('load-client', CHILD_WATCHDOG_MS);

function send(message: FromClient): void {
  process.send?.(message);
}

/** One open subscriber connection; close() must be idempotent. */
export interface Connection {
  close(): void;
}

/** Opens one subscriber of one transport; resolves once it is open (see each opener for what that means). */
export type Opener = (cmd: OpenCommand, sub: Subscriber, t: Tally) => Promise<Connection>;

const connections: Connection[] = [];
let tally: Tally | undefined;
/** Set once everything is torn down, so poll loops and error handlers stop quietly. */
let stopping = false;
/** CPU used when all subscribers were open: the client's cost is counted from there. */
let cpuAtReady: NodeJS.CpuUsage | undefined;

// Sockets are never shared between SSE streams; poll requests reuse idle keep-alive sockets.
const streamAgent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
const pollAgent = new http.Agent({ keepAlive: true, maxSockets: Infinity });

function openSse(cmd: OpenCommand, sub: Subscriber, t: Tally): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const url = `${cmd.baseUrl}/v1/sse?channel=${encodeURIComponent(sub.channel)}`;
    const req = http.get(url, { agent: streamAgent }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        reject(new Error(`sse: HTTP ${res.statusCode}`));
        return;
      }
      res.setEncoding('utf8');
      let buffer = '';
      let ready = false;
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let start = 0;
        let end: number;
        while ((end = buffer.indexOf('\n\n', start)) !== -1) {
          // Events: `retry: N`, `event: hello` (the session id, first on every stream), `id: C`
          // (cursor only: the first one means subscribed), `id: C\ndata: {…}`,
          // `event: reset|disconnect\ndata: …`.
          if (buffer.startsWith('event: ', start)) {
            if (buffer.startsWith('event: reset', start)) t.resets++;
            else if (buffer.startsWith('event: disconnect', start)) t.disconnects++;
          } else if (buffer.startsWith('id: ', start)) {
            const data = buffer.indexOf('\ndata: ', start);
            if (data !== -1 && data < end) t.scan(sub, buffer, data, end);
            else if (!ready) {
              ready = true;
              resolve({ close: () => req.destroy() });
            }
          }
          start = end + 2;
        }
        buffer = start === 0 ? buffer : buffer.slice(start);
      });
      res.on('close', () => {
        if (!stopping) t.disconnects++;
      });
    });
    req.on('error', (error) => {
      if (!stopping) reject(error);
    });
  });
}

function getText(path: string, baseUrl: string, onRequest: (req: http.ClientRequest) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${baseUrl}${path}`, { agent: pollAgent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`poll: HTTP ${res.statusCode} ${body.slice(0, 200)}`))));
      res.on('error', reject);
    });
    req.on('error', reject);
    onRequest(req);
  });
}

const CURSOR_KEY = '],"cursor":"';

async function openPoll(cmd: OpenCommand, sub: Subscriber, t: Tally): Promise<Connection> {
  const base = `/v1/poll?channel=${encodeURIComponent(sub.channel)}`;
  let current: http.ClientRequest | undefined;
  const track = (req: http.ClientRequest): void => {
    current = req;
  };
  // Without a cursor the server answers at once with the current position: that is "subscribed".
  let cursor = cursorOf(await getText(base, cmd.baseUrl, track));
  const loop = async (): Promise<void> => {
    let retries = 0;
    // Bounded: ends when the bench stops (every request is aborted then) or retries run out.
    while (!stopping) {
      let body: string;
      let next: string;
      try {
        body = await getText(`${base}&cursor=${encodeURIComponent(cursor)}&timeout=${POLL_TIMEOUT_S}`, cmd.baseUrl, track);
        next = cursorOf(body);
      } catch (error) {
        if (stopping) return;
        t.pollRetries++;
        if (++retries > MAX_POLL_RETRIES) {
          t.disconnects++;
          process.stderr.write(`load-client: poller on ${sub.channel} gave up: ${(error as Error).message}\n`);
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
        continue;
      }
      retries = 0;
      t.pollReplies++;
      const cursorAt = body.lastIndexOf(CURSOR_KEY);
      t.scan(sub, body, 0, cursorAt);
      if (body.includes('"resets":', cursorAt)) t.resets++;
      cursor = next;
    }
  };
  void loop();
  return { close: () => current?.destroy() };
}

function cursorOf(body: string): string {
  const at = body.lastIndexOf(CURSOR_KEY);
  if (at === -1) throw new Error(`poll: no cursor in reply ${body.slice(0, 200)}`);
  return body.slice(at + CURSOR_KEY.length, body.indexOf('"', at + CURSOR_KEY.length));
}

function openWs(cmd: OpenCommand, sub: Subscriber, t: Tally): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${cmd.baseUrl.replace('http', 'ws')}/v1/ws`, { perMessageDeflate: false });
    socket.on('open', () => socket.send(JSON.stringify({ op: 'subscribe', channel: sub.channel })));
    socket.on('message', (data: RawData) => {
      // Text frames arrive as one Buffer (binaryType 'nodebuffer').
      const text = (data as Buffer).toString('utf8');
      if (text.startsWith('{"op":"message"')) t.scan(sub, text);
      else if (text.startsWith('{"op":"subscribed"')) resolve({ close: () => socket.terminate() });
      else if (text.startsWith('{"op":"reset"')) t.resets++;
      else if (text.startsWith('{"op":"hello"')) return; // the first frame of every socket: its session id
      else process.stderr.write(`load-client: unexpected ws frame ${text.slice(0, 200)}\n`);
    });
    socket.on('close', () => {
      if (!stopping) t.disconnects++;
    });
    socket.on('error', (error) => {
      if (!stopping) reject(error);
    });
  });
}

const MQTT_PUBLISH = 3;
const MQTT_CONNACK = 2;
const MQTT_SUBACK = 9;
const MQTT_PINGRESP = 13;
const MQTT_DISCONNECT = 14;
let mqttClients = 0;

/**
 * MQTT 3.1.1 over WebSocket at /mqtt: CONNECT and SUBSCRIBE (at `qos`) in one frame, open once the
 * SUBACK grants that QoS. Packets are parsed by hand (fixed header, remaining-length varint, topic,
 * packet id, payload): the server sends one PUBLISH per frame, but several per frame and packets
 * split across frames are handled. Every QoS 1 PUBLISH is acknowledged with a PUBACK built by hand
 * (the PUBACKs of one frame go out together). A PUBLISH at a QoS other than the granted one counts
 * as unexpected (and is still recorded).
 */
function openMqtt(qos: 0 | 1): (cmd: OpenCommand, sub: Subscriber, t: Tally) => Promise<Connection> {
  return (cmd, sub, t) =>
    new Promise((resolve, reject) => {
      const socket = new WebSocket(`${cmd.baseUrl.replace('http', 'ws')}/mqtt`, 'mqtt', { perMessageDeflate: false });
      const topic = Buffer.from(sub.channel, 'utf8');
      let opened = false;
      /** The start of a packet the last frame did not finish. */
      let pending: Buffer | undefined;
      const fail = (error: Error): void => {
        if (!opened) reject(error);
        else process.stderr.write(`load-client: mqtt subscriber on ${sub.channel}: ${error.message}\n`);
        socket.terminate();
      };
      socket.on('open', () => {
        const connect = mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: `bench-${process.pid}-${++mqttClients}`, clean: true, keepalive: 0 });
        const subscribe = mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: sub.channel, qos }] });
        socket.send(Buffer.concat([connect, subscribe]));
      });
      socket.on('message', (data: RawData, isBinary: boolean) => {
        if (!isBinary) return fail(new Error('mqtt: a text frame'));
        // Binary messages arrive as one Buffer (binaryType 'nodebuffer').
        let frame = data as Buffer;
        if (pending) {
          frame = Buffer.concat([pending, frame]);
          pending = undefined;
        }
        let acks: number[] | undefined;
        let offset = 0;
        while (offset < frame.length) {
          const first = frame[offset] as number;
          // Remaining length: 1–4 bytes, 7 bits each, least significant first.
          let remaining = 0;
          let multiplier = 1;
          let at = offset + 1;
          let complete = false;
          while (at < frame.length) {
            const byte = frame[at++] as number;
            remaining += (byte & 0x7f) * multiplier;
            if ((byte & 0x80) === 0) {
              complete = true;
              break;
            }
            multiplier *= 128;
            if (multiplier > 128 ** 3) return fail(new Error('mqtt: malformed remaining length'));
          }
          const end = at + remaining;
          if (!complete || end > frame.length) break;
          const type = first >> 4;
          if (type === MQTT_PUBLISH) {
            const publishQos = (first >> 1) & 3;
            const topicLength = frame.readUInt16BE(at);
            const topicEnd = at + 2 + topicLength;
            const onChannel = topicLength === topic.length && topic.compare(frame, at + 2, topicEnd) === 0;
            let payloadAt = topicEnd;
            if (publishQos > 0) {
              (acks ??= []).push(frame.readUInt16BE(payloadAt));
              payloadAt += 2;
            }
            if (publishQos !== qos) t.unexpected++;
            t.scanData(sub, onChannel, frame.toString('utf8', payloadAt, end));
          } else if (type === MQTT_CONNACK) {
            const code = frame[at + 1] as number;
            if (code !== 0) return fail(new Error(`mqtt: CONNACK return code ${code}`));
          } else if (type === MQTT_SUBACK) {
            const granted = frame[at + 2] as number;
            if (granted >= 0x80) return fail(new Error(`mqtt: SUBACK refused ${sub.channel} (0x${granted.toString(16)})`));
            if (granted !== qos) return fail(new Error(`mqtt: SUBACK granted QoS ${granted}, asked ${qos}`));
            if (!opened) {
              opened = true;
              resolve({ close: () => socket.terminate() });
            }
          } else if (type === MQTT_DISCONNECT) {
            process.stderr.write(`load-client: mqtt DISCONNECT from the server on ${sub.channel}\n`);
          } else if (type !== MQTT_PINGRESP) {
            process.stderr.write(`load-client: unexpected mqtt packet type ${type}\n`);
          }
          offset = end;
        }
        if (offset < frame.length) pending = Buffer.from(frame.subarray(offset));
        if (acks) {
          const bytes = Buffer.allocUnsafe(4 * acks.length);
          for (let i = 0; i < acks.length; i++) {
            const id = acks[i] as number;
            bytes[4 * i] = 0x40;
            bytes[4 * i + 1] = 0x02;
            bytes[4 * i + 2] = id >> 8;
            bytes[4 * i + 3] = id & 0xff;
          }
          socket.send(bytes);
        }
      });
      socket.on('close', (code: number) => {
        if (!opened) reject(new Error(`mqtt: socket closed (${code}) before the SUBACK`));
        else if (!stopping) t.disconnects++;
      });
      socket.on('error', (error) => {
        if (!stopping) reject(error);
      });
    });
}

const OPENERS: Record<ServerKind, Partial<Record<Transport, Opener>>> = {
  edgepush: {
    sse: openSse,
    poll: openPoll,
    ws: openWs,
    mqtt: openMqtt(0),
    'mqtt-qos1': openMqtt(1),
  },
  nchan: nchanOpeners({ streamAgent, pollAgent, stopping: () => stopping }),
};

async function open(cmd: OpenCommand): Promise<void> {
  const t = new Tally(cmd.subscribers * cmd.messagesPerChannel, cmd.messagesPerChannel);
  tally = t;
  const subs = Array.from({ length: cmd.subscribers }, (_, i) => new Subscriber(`bench/${i % cmd.channels}`, cmd.messagesPerChannel));
  const started = performance.now();
  const opener = OPENERS[cmd.server][cmd.transport];
  if (!opener) throw new Error(`no ${cmd.transport} subscriber for ${cmd.server}`);
  const { opened, failed, firstError } = await openInBatches(subs, cmd.openConcurrency, cmd.openTimeoutMs, (sub) => opener(cmd, sub, t));
  connections.push(...opened);
  const report: ReadyReport = { type: 'ready', opened: connections.length, failed, openMs: Math.round(performance.now() - started) };
  if (firstError !== undefined) report.firstError = firstError;
  cpuAtReady = process.cpuUsage();
  send(report);
}

function drain(cmd: DrainCommand): void {
  const t = tally;
  if (!t) throw new Error('drain before open');
  const finish = (timedOut: boolean): void => {
    const result: ResultReport = {
      type: 'result',
      expected: t.expected,
      delivered: t.delivered,
      lost: t.expected - t.delivered,
      duplicates: t.duplicates,
      outOfOrder: t.outOfOrder,
      unexpected: t.unexpected,
      resets: t.resets,
      disconnects: t.disconnects,
      pollRetries: t.pollRetries,
      pollReplies: t.pollReplies,
      latencyMs: t.latencyMs(cmd.timedFrom),
      latencyWithWarmupMs: t.latencyMs(),
      firstSentAt: t.firstSentAt,
      lastReceivedAt: t.lastReceivedAt,
      clientCpuSec: cpuSecondsSinceReady(),
      timedOut,
    };
    stopping = true;
    for (const connection of connections) connection.close();
    streamAgent.destroy();
    pollAgent.destroy();
    // Exit only once the report has left through the IPC channel.
    process.send?.(result, () => process.exit(0));
  };
  // Everything arrived: a moment more, for any duplicate still on its way.
  void t.whenDelivered(t.expected, cmd.timeoutMs).then((arrived) => (arrived ? setTimeout(() => finish(false), DUPLICATE_GRACE_MS) : finish(true)));
}

function cpuSecondsSinceReady(): number {
  const cpu = process.cpuUsage(cpuAtReady);
  return Math.round((cpu.user + cpu.system) / 10_000) / 100;
}

function awaitDeliveries(cmd: AwaitCommand): void {
  const t = tally;
  if (!t) throw new Error('await before open');
  void t.whenDelivered(cmd.deliveries, cmd.timeoutMs).then((arrived) => {
    const reached: ReachedReport = { type: 'reached', delivered: t.delivered, pollReplies: t.pollReplies, clientCpuSec: cpuSecondsSinceReady(), timedOut: !arrived };
    send(reached);
  });
}

process.on('message', (message: ToClient) => {
  if (message.type === 'open') {
    open(message).catch((error: unknown) => {
      process.stderr.write(`load-client: open failed: ${(error as Error).stack ?? String(error)}\n`);
      process.exit(1);
    });
  } else if (message.type === 'drain') drain(message);
  else if (message.type === 'await') awaitDeliveries(message);
});
