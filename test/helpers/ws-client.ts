/**
 * A WebSocket test client speaking the JSON ops, tracking one cursor for all its channels: right on
 * a single node, where every subscription's starting point is covered at once. Across nodes use
 * ws-channel-client.ts, which keeps a cursor per channel as docs/protocol.md prescribes.
 */
import WebSocket from 'ws';
import { BaseTestClient, type OpenOptions } from './test-client.js';

export class WsTestClient extends BaseTestClient {
  readonly ready: Promise<void>;
  readonly socket: WebSocket;
  /** Every server op received, in order. */
  readonly ops: Record<string, unknown>[] = [];

  constructor(baseUrl: string, channels: string[], options: OpenOptions = {}) {
    super();
    this.socket = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}/v1/ws`);
    let subscribed = 0;
    this.ready = new Promise((resolve, reject) => {
      this.socket.on('open', () => {
        for (const channel of channels) {
          this.send({ op: 'subscribe', channel, ...(options.cursor !== undefined ? { cursor: options.cursor } : {}), ...(options.delta !== undefined ? { delta: options.delta } : {}), ...(options.snapshot !== undefined ? { snapshot: options.snapshot } : {}), ...(options.maxRate !== undefined ? { maxRate: options.maxRate } : {}), ...(options.onSlow !== undefined ? { onSlow: options.onSlow } : {}) });
        }
        if (channels.length === 0) resolve();
      });
      this.socket.on('message', (raw) => {
        const op = JSON.parse(raw.toString()) as Record<string, unknown>;
        this.ops.push(op);
        switch (op['op']) {
          case 'message': {
            const { op: _op, cursor, ...envelope } = op;
            this.received.push(envelope as never);
            this.cursor = cursor as string;
            break;
          }
          case 'subscribed':
            this.cursor = op['cursor'] as string;
            if (++subscribed === channels.length) resolve();
            break;
          case 'reset':
            this.resets.push(op as never);
            break;
          case 'error':
            if (subscribed < channels.length) reject(Object.assign(new Error(`subscribe failed: ${op['message']}`), { code: op['code'] }));
            break;
          case 'pong':
            if (typeof op['cursor'] === 'string') this.cursor = op['cursor'];
            break;
        }
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

  send(op: unknown): void {
    this.socket.send(JSON.stringify(op));
  }

  /** The next op of `type` after the ones already seen. */
  nextOp(type: string): Promise<Record<string, unknown>> {
    const seen = this.ops.length;
    let found: Record<string, unknown> | undefined;
    return this.waitFor(() => (found = this.ops.slice(seen).find((op) => op['op'] === type)) !== undefined, `a ${type} op`).then(() => found as Record<string, unknown>);
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
