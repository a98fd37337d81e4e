/**
 * WebSocket: `GET /v1/ws`, JSON text frames both ways (docs/protocol.md). Several channels per
 * socket, each subscription with its own cursor. Liveness: protocol pings every heartbeat interval;
 * a socket that missed a pong is dropped (the client resumes from its cursor when it reconnects).
 */
import type { FastifyInstance } from 'fastify';
// Types only: brings in the route option `websocket: true` (the plugin is registered by server.ts).
import type {} from '@fastify/websocket';
import { Socket } from 'node:net';
import type { RawData, WebSocket } from 'ws';
import { Session, type SessionSink } from '../src/engine/session.js';
import { DISCONNECTS, PushError, type Disconnect } from '../src/errors.js';
import type { TransportContext } from './context.js';
import { toPushError } from './http-errors.js';
import { WS_MESSAGE, encodeOp, type ServerOp } from './websocket-format.js';
import { opIdOf, parseClientOp, parseJsonFrame, type ClientOp } from './websocket-ops.js';

/** Room for the op's own fields around a payload of the largest allowed size. */
const FRAME_OVERHEAD_BYTES = 4096;

class WebSocketConnection implements SessionSink {
  readonly format = WS_MESSAGE;
  readonly session: Session;
  /** Cleared at each ping, set by the pong; still clear at the next ping means the peer is gone. */
  alive = true;
  /**
   * Subscription changes run one after another: a subscribe may wait for a read from the log (deep
   * resume), and an unsubscribe sent after it must not overtake it.
   */
  #subscriptionOps: Promise<void> = Promise.resolve();

  constructor(private readonly socket: WebSocket, private readonly ctx: TransportContext) {
    this.session = new Session(ctx.engine, this, { maxBufferedBytes: ctx.options.maxBufferedBytes });
  }

  get bufferedAmount(): number {
    return this.socket.bufferedAmount;
  }

  write(bytes: Buffer): void {
    if (!this.#corked) this.#cork();
    this.socket.send(bytes, { binary: false, compress: false });
  }

  #corked = false;

  /**
   * Holds this tick's frames in the TCP socket and sends them in one writev on the next tick: a
   * publish batch of many messages then costs one system call per subscriber instead of one per
   * message, which is where fan-out spends most of its time. ws corks each frame itself; this
   * outer cork spans frames.
   */
  #cork(): void {
    const raw = underlyingSocket(this.socket);
    if (!raw) return;
    raw.cork();
    this.#corked = true;
    process.nextTick(() => {
      this.#corked = false;
      raw.uncork();
    });
  }

  disconnect(reason: Disconnect): void {
    if (reason === DISCONNECTS.slow) this.ctx.metrics.slowDisconnect('ws');
    this.socket.close(reason.code, reason.reason);
  }

  reply(op: ServerOp): void {
    this.session.writeControl(encodeOp(op));
  }

  heartbeat(): void {
    if (!this.alive) {
      this.socket.terminate();
      return;
    }
    this.alive = false;
    this.socket.ping();
  }

  onFrame(data: RawData, isBinary: boolean): void {
    if (this.session.closed) return;
    let parsed: unknown;
    try {
      if (isBinary) throw new PushError('unsupported_frame', 'binary frames are not accepted; send JSON text frames');
      // Size first: a frame that will be refused is not worth parsing.
      const limit = this.ctx.options.maxMessageBytes + FRAME_OVERHEAD_BYTES;
      if (rawLength(data) > limit) throw new PushError('message_too_large', `frame is ${rawLength(data)} bytes, the limit is ${limit}`);
      parsed = parseJsonFrame(rawText(data));
      this.run(parseClientOp(parsed));
    } catch (error) {
      this.fail(error, opIdOf(parsed));
    }
  }

  fail(error: unknown, id: string | undefined, channel?: string): void {
    const pushError = toPushError(error);
    if (pushError.code === 'internal') this.ctx.log.error({ err: error }, 'websocket op failed');
    // Only what the client got wrong counts as bad input; an outage (503) or a server error does not.
    if (pushError.status < 500) this.ctx.metrics.badInput('ws', pushError.code);
    const op: ServerOp = { op: 'error', code: pushError.code, message: pushError.message };
    if (id !== undefined) op.id = id;
    if (channel !== undefined) op.channel = channel;
    this.reply(op);
  }

  run(op: ClientOp): void {
    switch (op.op) {
      case 'subscribe':
        this.#inOrder(() => this.subscribe(op), op.id, op.channel);
        return;
      case 'unsubscribe':
        this.#inOrder(
          async () => {
            if (!this.session.unsubscribe(op.channel)) throw new PushError('not_subscribed', `not subscribed to ${op.channel}`);
            this.reply(withId({ op: 'unsubscribed', channel: op.channel }, op.id));
          },
          op.id,
          op.channel,
        );
        return;
      case 'publish': {
        this.ctx.publisher.publish([{ channel: op.channel, data: op.data }], op.id).then(
          (ids) => this.reply(withId({ op: 'ack', ids }, op.id)),
          (error: unknown) => this.fail(error, op.id, op.channel),
        );
        return;
      }
      case 'ping':
        // In turn with subscribes: a pong's cursor must never be ahead of a backlog still to come.
        this.#inOrder(
          async () => {
            const cursor = this.session.idleCursor();
            this.reply(withId(cursor ? { op: 'pong', cursor: cursor.toString() } : { op: 'pong' }, op.id));
          },
          op.id,
          undefined,
        );
        return;
    }
  }

  #inOrder(task: () => Promise<void>, id: string | undefined, channel: string | undefined): void {
    this.#subscriptionOps = this.#subscriptionOps.then(task).catch((error: unknown) => this.fail(error, id, channel));
  }

  async subscribe(op: Extract<ClientOp, { op: 'subscribe' }>): Promise<void> {
    const { resumer, options } = this.ctx;
    if (!this.session.has(op.channel) && this.session.channelCount >= options.maxChannelsPerSubscription) {
      throw new PushError('too_many_channels', `at most ${options.maxChannelsPerSubscription} channels per connection`);
    }
    const plan = await resumer.subscribe(this.session, [op.channel], resumer.resumePoint(op.cursor), op.delta);
    if (!plan || this.session.closed) return;
    this.reply(withId({ op: 'subscribed', channel: op.channel, cursor: plan.startCursor.toString(), resumed: plan.resumed }, op.id));
    for (const reset of plan.resets) this.reply({ op: 'reset', ...reset });
    this.session.replayFromLog(plan.fromLog);
    this.session.replay(plan.backlog);
    this.session.release();
  }
}

/**
 * The TCP socket under a ws WebSocket. ws keeps it in the private `_socket`; this is the one place
 * that reaches for it, and it degrades to no corking if that ever changes.
 */
function underlyingSocket(socket: WebSocket): Socket | undefined {
  const raw = (socket as unknown as { _socket?: unknown })._socket;
  return raw instanceof Socket ? raw : undefined;
}

function withId<T extends ServerOp>(op: T, id: string | undefined): T {
  return id === undefined ? op : { ...op, id };
}

function rawText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}

function rawLength(data: RawData): number {
  if (Array.isArray(data)) return data.reduce((sum, chunk) => sum + chunk.length, 0);
  return Buffer.isBuffer(data) ? data.length : data.byteLength;
}

/** The hard frame limit, enforced by ws before a frame is buffered (close code 1009 past it). */
export function maxWebSocketPayload(maxMessageBytes: number): number {
  return 2 * maxMessageBytes + FRAME_OVERHEAD_BYTES;
}

export function registerWebSocket(app: FastifyInstance, ctx: TransportContext): void {
  const connections = new Set<WebSocketConnection>();
  const heartbeat = setInterval(() => {
    for (const connection of connections) connection.heartbeat();
  }, ctx.options.heartbeatInterval * 1000);
  ctx.onShutdown(() => {
    clearInterval(heartbeat);
    for (const connection of connections) connection.session.disconnect(DISCONNECTS.shutdown);
  });

  app.get('/v1/ws', { websocket: true }, (socket) => {
    const connection = new WebSocketConnection(socket, ctx);
    connections.add(connection);
    ctx.metrics.connectionOpened('ws');
    socket.on('message', (data, isBinary) => connection.onFrame(data, isBinary));
    socket.on('pong', () => {
      connection.alive = true;
    });
    socket.on('error', (error) => ctx.log.debug({ err: error }, 'websocket error'));
    socket.on('close', () => {
      connections.delete(connection);
      connection.session.close();
      ctx.metrics.connectionClosed('ws');
    });
  });
}
