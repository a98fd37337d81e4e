/**
 * One client per streaming transport (SSE, WebSocket, MQTT over WebSocket) that counts every byte
 * the server sent it and keeps the channel messages it got: to check what the metrics say was
 * written against what a client really received. Everything talks to 127.0.0.1.
 */
import { EventEmitter } from 'node:events';
import { get, type ClientRequest } from 'node:http';
import mqttPacket, { type IPublishPacket, type Packet } from 'mqtt-packet';
import WebSocket from 'ws';
import { waitForChange } from './wait-for-change.js';

export abstract class CountingClient extends EventEmitter {
  /** Bytes received: the SSE stream's text, WebSocket frames (headers included), MQTT packets. */
  bytes = 0;
  /** Channel messages received, in order (their envelopes). */
  readonly messages: Record<string, unknown>[] = [];
  /** Resolves once the subscriptions are in place (anything published from then on arrives). */
  abstract readonly ready: Promise<void>;

  until(predicate: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
    return waitForChange(this, predicate, () => `timed out waiting for ${what} (${this.messages.length} messages, ${this.bytes} bytes)`, timeoutMs);
  }

  protected changed(): void {
    this.emit('change');
  }

  abstract close(): void;
}

/** `GET /v1/sse?<query>`: ready at the first id-only event (the subscription's cursor). */
export class CountingSse extends CountingClient {
  readonly ready: Promise<void>;
  /** Each event's data line, in order (messages, hello, notices). */
  readonly dataLines: string[] = [];
  readonly #request: ClientRequest;

  constructor(baseUrl: string, query: string) {
    super();
    let subscribed: () => void = () => {};
    this.ready = new Promise((resolve) => (subscribed = resolve));
    let buffer = '';
    this.#request = get(`${baseUrl}/v1/sse?${query}`, (response) => {
      response.on('data', (chunk: Buffer) => {
        this.bytes += chunk.length;
        buffer += chunk.toString('utf8');
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const lines = buffer.slice(0, end).split('\n');
          buffer = buffer.slice(end + 2);
          const data = lines.find((line) => line.startsWith('data: '))?.slice('data: '.length);
          if (lines.every((line) => line.startsWith('id: '))) subscribed();
          if (data === undefined) continue;
          this.dataLines.push(data);
          if (!lines.some((line) => line.startsWith('event: '))) this.messages.push(JSON.parse(data) as Record<string, unknown>);
        }
        this.changed();
      });
    });
    this.#request.on('error', () => {});
  }

  close(): void {
    this.#request.destroy();
  }
}

/** `GET /v1/ws`, subscribed to `channels` (each op may add fields such as `delta`, `maxRate`). */
export class CountingWs extends CountingClient {
  readonly ready: Promise<void>;
  readonly ops: Record<string, unknown>[] = [];
  readonly socket: WebSocket;

  constructor(baseUrl: string, channels: string[], extra: Record<string, unknown> = {}, token?: string) {
    super();
    this.socket = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}/v1/ws${token ? `?token=${encodeURIComponent(token)}` : ''}`);
    this.socket.on('message', (data: Buffer) => {
      // The server counts whole frames: the payload and its frame header (RFC 6455 §5.2).
      this.bytes += data.length + (data.length < 126 ? 2 : data.length < 65_536 ? 4 : 10);
      const op = JSON.parse(data.toString('utf8')) as Record<string, unknown>;
      this.ops.push(op);
      if (op['op'] === 'message') this.messages.push(op);
      this.changed();
    });
    this.socket.on('error', () => {});
    this.socket.once('open', () => {
      for (const channel of channels) this.send({ op: 'subscribe', channel, ...extra });
    });
    this.ready = this.until(() => this.ops.filter((op) => op['op'] === 'subscribed').length === channels.length, 'subscribed');
  }

  send(op: Record<string, unknown>): void {
    this.socket.send(JSON.stringify(op));
  }

  close(): void {
    this.socket.terminate();
  }
}

/** MQTT 3.1.1 over `GET /mqtt`: CONNECT (the token as password), SUBSCRIBE to `filters` at QoS 0. */
export class CountingMqtt extends CountingClient {
  readonly ready: Promise<void>;
  readonly packets: Packet[] = [];
  readonly socket: WebSocket;

  constructor(baseUrl: string, filters: string[], token?: string) {
    super();
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    parser.on('packet', (packet: Packet) => {
      this.packets.push(packet);
      if (packet.cmd === 'publish') {
        const payload = (packet as IPublishPacket).payload;
        this.messages.push({ channel: (packet as IPublishPacket).topic, data: JSON.parse(payload.toString()) as unknown });
      }
      this.changed();
    });
    this.socket = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}/mqtt`, 'mqtt');
    this.socket.on('message', (data: Buffer) => {
      this.bytes += data.length;
      parser.parse(data);
    });
    this.socket.on('error', () => {});
    this.socket.once('open', () => {
      this.socket.send(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: '', clean: true, keepalive: 0, ...(token ? { username: 'token', password: Buffer.from(token) } : {}) }));
      this.socket.send(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: filters.map((topic) => ({ topic, qos: 0 as const })) }));
    });
    this.ready = this.until(() => this.packets.some((packet) => packet.cmd === 'suback'), 'SUBACK');
  }

  /** A PUBLISH at QoS 1; resolves with its PUBACK. */
  publish(topic: string, data: unknown, messageId: number): Promise<void> {
    this.socket.send(mqttPacket.generate({ cmd: 'publish', topic, payload: JSON.stringify(data), qos: 1, messageId, retain: false, dup: false }));
    return this.until(() => this.packets.some((packet) => packet.cmd === 'puback' && packet.messageId === messageId), `PUBACK ${messageId}`);
  }

  close(): void {
    this.socket.terminate();
  }
}
