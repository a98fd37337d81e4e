/**
 * A WebSocket test client that keeps one cursor per channel: the `subscribed` op's cursor, then the
 * cursor of each message of that channel. (ws-client.ts keeps a single cursor for the socket, which
 * is only safe when nothing flows between two subscribe replies; with a live Kafka stream, it does.)
 *
 * This is what docs/protocol.md prescribes for WebSocket: a message's cursor is valid for its own
 * channel. After a resume on a node that is behind, a message of one channel may carry a cursor
 * behind the one handed in for another channel (the floor is per subscription); applying it there
 * would move that channel's cursor backwards and cause duplicates.
 *
 * `cursor` is an opaque resume token for this client only: the per-channel cursors as JSON, to be
 * handed back to the constructor.
 */
import WebSocket from 'ws';
import { BaseTestClient } from './test-client.js';

export class WsChannelClient extends BaseTestClient {
  readonly ready: Promise<void>;
  readonly socket: WebSocket;
  readonly cursors: Record<string, string> = {};
  readonly #subscribed = new Set<string>();

  constructor(baseUrl: string, readonly channels: string[], token?: string) {
    super();
    const resumeFrom = token === undefined ? {} : (JSON.parse(token) as Record<string, string>);
    this.socket = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}/v1/ws`);
    this.ready = new Promise((resolve, reject) => {
      this.socket.on('open', () => {
        for (const channel of channels) {
          const cursor = resumeFrom[channel];
          this.socket.send(JSON.stringify({ op: 'subscribe', channel, ...(cursor !== undefined ? { cursor } : {}) }));
        }
      });
      this.socket.on('message', (raw) => {
        const op = JSON.parse(raw.toString()) as Record<string, unknown>;
        switch (op['op']) {
          case 'message': {
            const { op: _op, cursor, ...envelope } = op;
            this.received.push(envelope as never);
            this.cursors[envelope['channel'] as string] = cursor as string;
            break;
          }
          case 'subscribed':
            this.#subscribed.add(op['channel'] as string);
            this.cursors[op['channel'] as string] = op['cursor'] as string;
            if (this.#subscribed.size === channels.length) resolve();
            break;
          case 'reset':
            this.resets.push(op as never);
            break;
          case 'error':
            reject(new Error(`error op: ${JSON.stringify(op)}`));
            break;
        }
        if (this.channels.every((c) => this.cursors[c] !== undefined)) this.cursor = JSON.stringify(this.cursors);
        this.changed();
      });
      this.socket.on('close', (code) => {
        this.ended = { code };
        this.changed();
        reject(new Error(`socket closed with ${code} before subscribing`));
      });
      this.socket.on('error', (error) => {
        this.ended ??= {};
        this.changed();
        reject(error);
      });
    });
    this.ready.catch(() => {});
  }

  drop(): void {
    this.socket.terminate();
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }
}
