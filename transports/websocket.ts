/**
 * WebSocket: `GET /v1/ws`, JSON text frames both ways (docs/protocol.md). Several channels per
 * socket, each subscription with its own cursor. Liveness: protocol pings every heartbeat interval;
 * a socket that missed a pong is dropped (the client resumes from its cursor when it reconnects).
 */
import type { FastifyInstance } from 'fastify';
// Types only: brings in the route option `websocket: true` (the plugin is registered by server.ts).
import type {} from '@fastify/websocket';
import type { RawData, WebSocket } from 'ws';
import { SERVER_IDENTITY, type Identity } from '../src/auth/identity.js';
import { TokenError } from '../src/auth/token-verifier.js';
import { Session, type SessionSink } from '../src/engine/session.js';
import { DISCONNECTS, PushError, type Disconnect } from '../src/errors.js';
import { burstFor, TokenBucket } from '../src/limits/token-bucket.js';
import { packageVersion } from '../src/package-root.js';
import type { TransportContext } from './context.js';
import { credentialOf } from './credentials.js';
import { whenExpired } from './expiry-timer.js';
import { countRefusal, toPushError } from './http-errors.js';
import { upgradeGuard } from './upgrade-guard.js';
import type { TurnOutbox } from './turn-outbox.js';
import { webSocketOutbox } from './websocket-outbox.js';
import { newSessionId, type ControllableConnection } from './connection-registry.js';
import { WS_MESSAGE, encodeOp, type ServerOp } from './websocket-format.js';
import { opIdOf, parseClientOp, parseJsonFrame, type ClientOp } from './websocket-ops.js';
import { HeartbeatWheel } from './heartbeat-wheel.js';
import { forgetUpgradeRequest } from './http-detach.js';
import { onWebSocketError } from './protocol-errors.js';

/** Room for the op's own fields around a payload of the largest allowed size. */
const FRAME_OVERHEAD_BYTES = 4096;
/** Ops refused by the rate limit in one second, as a multiple of the limit, past which the socket is closed (4029). */
const FLOOD_FACTOR = 10;
let version: string | undefined;
const VERSION = (): string => (version ??= packageVersion());

class WebSocketConnection implements SessionSink, ControllableConnection {
  readonly format = WS_MESSAGE;
  /** Each subscription is its own stream, with its own cursor. */
  readonly streamPerSubscription = true;
  readonly session: Session;
  /** This turn's frames go out in one write (see turn-outbox.ts). */
  readonly #outbox: TurnOutbox;
  readonly sessionId = newSessionId();
  readonly transport = 'ws';
  /** When the socket opened (ms), for the status page. */
  readonly connectedAt = Date.now();
  /** Who the client is: anonymous (or open) until a token arrives, at the upgrade or by an `auth` op. */
  identity: Identity;
  /**
   * Channels a backend subscribed through the server API: kept across token refreshes. (The
   * token's own `subs` are not: a refresh whose token neither lists nor grants one ends it.)
   */
  readonly #serverChannels = new Set<string>();
  /** Where the token's `subs` resume from (the upgrade's `?cursor=` or the auth op's `cursor`). */
  #subsCursor: string | undefined;
  #cancelExpiry: () => void = () => {};
  #authTimer: NodeJS.Timeout | undefined;
  readonly #ops: TokenBucket;
  readonly #publishes: TokenBucket;
  #refusedSecond = 0;
  #refusedInSecond = 0;
  /** Cleared at each ping, set by the pong; still clear at the next ping means the peer is gone. */
  alive = true;
  /**
   * Subscription changes run one after another: a subscribe may wait for a read from the log (deep
   * resume), and an unsubscribe sent after it must not overtake it.
   */
  #subscriptionOps: Promise<void> = Promise.resolve();
  /** Settles once the latest identity change (the upgrade's token, an auth op) is done: publishes wait for it. */
  #identified: Promise<void> = Promise.resolve();

  constructor(private readonly socket: WebSocket, private readonly ctx: TransportContext, identity: Identity) {
    this.session = new Session(ctx.engine, this, { maxBufferedBytes: ctx.options.maxBufferedBytes });
    // A conflating socket catches up once the TCP socket has written out what it held.
    this.#outbox = webSocketOutbox(socket, ctx.options.tcpNoDelay, () => this.session.drained());
    this.identity = identity;
    this.#ops = new TokenBucket(ctx.options.opRate, burstFor(ctx.options.opRate));
    this.#publishes = new TokenBucket(ctx.options.publishRate, burstFor(ctx.options.publishRate));
  }

  get user(): string | undefined {
    return this.identity.user;
  }

  /**
   * The first frames: hello (the session id), then the identity's own subscriptions. A connection
   * that came without credentials, where anonymous clients may do nothing, has authTimeout seconds
   * to send its `auth` op.
   */
  start(subsCursor: string | undefined): void {
    this.#subsCursor = subsCursor;
    this.#sayHello();
    if (this.identity.kind === 'anonymous' && this.identity.grants.length === 0) {
      this.#authTimer = setTimeout(() => {
        this.ctx.metrics.auth('refused', 'auth_timeout');
        this.session.disconnect({ ...DISCONNECTS.unauthorized, reason: `unauthorized: no auth op within ${this.ctx.options.authTimeout} s` });
      }, this.ctx.options.authTimeout * 1000);
      this.#authTimer.unref();
    }
    this.#identityChanged(undefined);
  }

  #helloSent = false;

  /** The first frame, whatever follows: the session id, the server's version and heartbeat. */
  #sayHello(): void {
    if (this.#helloSent) return;
    this.#helloSent = true;
    const hello: ServerOp = { op: 'hello', session: this.sessionId, version: VERSION(), heartbeat: this.ctx.options.heartbeatInterval };
    if (this.identity.user !== undefined) hello.user = this.identity.user;
    if (this.identity.expiresAt !== undefined) hello.expires = Math.floor(this.identity.expiresAt / 1000);
    this.reply(hello);
  }

  close(): void {
    this.#cancelExpiry();
    clearTimeout(this.#authTimer);
  }

  /** Refuses the upgrade's credentials after the upgrade (a browser cannot read an HTTP status on a WebSocket). */
  refuse(error: unknown, opId?: string): void {
    const pushError = toPushError(error);
    this.ctx.metrics.auth('refused', pushError.code === 'unavailable' ? 'jwks_unavailable' : 'bad_token');
    this.#sayHello();
    const reply: ServerOp = { op: 'error', code: pushError.code, message: pushError.message };
    if (opId !== undefined) reply.id = opId;
    this.reply(reply);
    const expired = error instanceof TokenError && error.expired;
    // A JWKS outage is not the client's fault: let it come back later and resume.
    if (pushError.code === 'unavailable') this.session.disconnect(DISCONNECTS.tryLater);
    else this.session.disconnect(expired ? DISCONNECTS.tokenExpired : DISCONNECTS.unauthorized);
  }

  get bufferedAmount(): number {
    return this.#outbox.bufferedAmount;
  }

  /** `bytes` is a whole frame (websocket-format.ts). */
  write(bytes: Buffer): void {
    this.#outbox.write(bytes);
    this.ctx.metrics.writtenBytes.ws += bytes.length;
  }

  disconnect(reason: Disconnect): void {
    if (reason === DISCONNECTS.slow) this.ctx.metrics.slowDisconnect('ws');
    // What was written before the close frame goes before it.
    this.#outbox.flush();
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
      if (!this.#ops.take()) return this.#overRate();
      if (isBinary) throw new PushError('unsupported_frame', 'binary frames are not accepted; send JSON text frames');
      // Size first: a frame that will be refused is not worth parsing.
      const limit = this.ctx.options.maxMessageBytes + FRAME_OVERHEAD_BYTES;
      if (rawLength(data) > limit) throw new PushError('message_too_large', `frame is ${rawLength(data)} bytes, the limit is ${limit}`);
      parsed = parseJsonFrame(rawText(data), this.ctx.options.maxJsonDepth);
      this.run(parseClientOp(parsed));
    } catch (error) {
      this.fail(error, opIdOf(parsed));
    }
  }

  /** An op over the rate limit: an error op, and far over it the socket is closed (the client resumes later). */
  #overRate(): void {
    this.ctx.metrics.limited('op_rate');
    const second = Math.floor(Date.now() / 1000);
    if (second !== this.#refusedSecond) [this.#refusedSecond, this.#refusedInSecond] = [second, 0];
    if (++this.#refusedInSecond > FLOOD_FACTOR * this.ctx.options.opRate) return this.session.disconnect(DISCONNECTS.rateLimited);
    // One error op per second is enough to tell the client; answering each refused op would let a flood double itself.
    if (this.#refusedInSecond === 1) this.fail(new PushError('rate_limited', `more than ${this.ctx.options.opRate} ops per second; ops are being refused`, { retryAfter: 1 }), undefined);
  }

  fail(error: unknown, id: string | undefined, channel?: string): void {
    const pushError = toPushError(error);
    if (pushError.code === 'internal') this.ctx.logError(error, 'websocket op failed');
    countRefusal(this.ctx.metrics, 'ws', pushError, 'op');
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
        if (!this.#publishes.take()) {
          this.ctx.metrics.limited('publish_rate');
          this.ctx.metrics.publishResult('rate_limited');
          this.fail(new PushError('rate_limited', `more than ${this.ctx.options.publishRate} publishes per second on one connection`, { retryAfter: 1 }), op.id, op.channel);
          return;
        }
        this.#identified.then(() => this.ctx.publisher.publish(this.identity, [{ channel: op.channel, data: op.data }], op.id)).then(
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
      case 'auth':
        this.#identified = this.#inOrder(() => this.authenticate(op), op.id, undefined);
        return;
    }
  }

  /**
   * The first token, or a refresh: the identity is replaced in place, live subscriptions the new
   * token no longer grants end (`unsubscribed` + `error forbidden`), its `subs` are added.
   */
  async authenticate(op: Extract<ClientOp, { op: 'auth' }>): Promise<void> {
    const first = this.identity.kind === 'anonymous' || this.identity.kind === 'open';
    let identity: Identity;
    try {
      identity = await this.ctx.auth.identify(op.token);
    } catch (error) {
      if (this.session.closed) return;
      // A failed first auth ends the connection; a failed refresh leaves the current token in force.
      if (first) return this.refuse(error, op.id);
      throw error;
    }
    if (this.session.closed) return;
    if (!first && identity.user !== this.identity.user) throw new PushError('forbidden', 'a refresh must be for the same user; reconnect to change users');
    clearTimeout(this.#authTimer);
    if (op.cursor !== undefined) this.#subsCursor = op.cursor;
    const previous = this.identity.user;
    this.identity = identity;
    this.ctx.metrics.auth('ok', first ? 'auth_op' : 'refresh');
    const reply: ServerOp = { op: 'authenticated' };
    if (op.id !== undefined) reply.id = op.id;
    if (identity.user !== undefined) reply.user = identity.user;
    if (identity.expiresAt !== undefined) reply.expires = Math.floor(identity.expiresAt / 1000);
    this.reply(reply);
    const revoked = this.ctx.resumer.revoked(identity, this.session.channels().filter((channel) => !this.#serverChannels.has(channel)));
    for (const channel of revoked) {
      this.session.unsubscribe(channel);
      this.reply({ op: 'unsubscribed', channel });
      this.fail(new PushError('forbidden', `the new token does not allow you to subscribe to ${JSON.stringify(channel.slice(0, 64))}`), undefined, channel);
    }
    this.#identityChanged(previous);
  }

  /** After the identity is set or replaced: the expiry timer, the registry, the token's own subscriptions. */
  #identityChanged(previousUser: string | undefined): void {
    this.#cancelExpiry();
    this.#cancelExpiry = whenExpired(this.identity.expiresAt, () => this.session.disconnect(DISCONNECTS.tokenExpired));
    if (previousUser !== this.identity.user) this.ctx.registry.userChanged(this, previousUser);
    for (const channel of this.identity.subs) {
      // Not a server-API subscription: a refresh whose token no longer lists or grants it ends it.
      if (!this.session.has(channel)) this.#inOrder(() => this.subscribe({ op: 'subscribe', channel, delta: null, ...(this.#subsCursor !== undefined ? { cursor: this.#subsCursor } : {}) }, SERVER_IDENTITY, true), undefined, channel);
    }
  }

  serverSubscribe(channel: string, cursor: string | undefined): void {
    this.#subscribeForServer(channel, cursor, undefined);
  }

  serverUnsubscribe(channel: string): void {
    this.#inOrder(
      async () => {
        this.#serverChannels.delete(channel);
        if (this.session.unsubscribe(channel)) this.reply({ op: 'unsubscribed', channel, server: true });
      },
      undefined,
      channel,
    );
  }

  serverDisconnect(code: number, reason: string): void {
    this.session.disconnect({ code, reason, reconnect: code < 4500 });
  }

  #subscribeForServer(channel: string, cursor: string | undefined, id: string | undefined): void {
    this.#serverChannels.add(channel);
    this.#inOrder(() => this.subscribe({ op: 'subscribe', channel, delta: null, ...(cursor !== undefined ? { cursor } : {}) }, SERVER_IDENTITY, true), id, channel);
  }

  /** Holds the op queue until the upgrade's credentials are checked. */
  whenIdentified(identified: Promise<void>): void {
    this.#identified = this.#inOrder(() => identified, undefined, undefined);
  }

  #inOrder(task: () => Promise<void>, id: string | undefined, channel: string | undefined): Promise<void> {
    this.#subscriptionOps = this.#subscriptionOps.then(task).catch((error: unknown) => this.fail(error, id, channel));
    return this.#subscriptionOps;
  }

  async subscribe(op: Extract<ClientOp, { op: 'subscribe' }>, identity: Identity = this.identity, byServer = false): Promise<void> {
    const { resumer, options } = this.ctx;
    if (this.session.closed) return;
    if (!this.session.has(op.channel) && this.session.channelCount >= options.maxChannelsPerSubscription) {
      throw new PushError('too_many_channels', `at most ${options.maxChannelsPerSubscription} channels per connection`);
    }
    const plan = await resumer.subscribe(identity, this.session, [op.channel], resumer.resumePoint(op.cursor), op.delta, {
      ...(op.snapshot ? { snapshot: op.snapshot } : {}),
      ...(op.maxRate ? { maxRate: op.maxRate } : {}),
      ...(op.onSlow ? { onSlow: op.onSlow } : {}),
    });
    if (!plan || this.session.closed) return;
    const subscribed: ServerOp = { op: 'subscribed', channel: op.channel, cursor: plan.startCursor.toString(), resumed: plan.resumed };
    if (byServer) subscribed.server = true;
    this.reply(withId(subscribed, op.id));
    for (const reset of plan.resets) this.reply({ op: 'reset', ...reset });
    // Only through this subscription: another of the socket's may match the same messages.
    this.session.replaySnapshot(plan.snapshot, plan.startCursor, [op.channel]);
    this.session.replayFromLog(plan.fromLog, [op.channel]);
    this.session.replay(plan.backlog, [op.channel]);
    this.session.replayEmissions(plan.elided, [op.channel]);
    this.session.release();
  }
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
  /** Every open connection, its pings spread over the interval. */
  const connections = new HeartbeatWheel<WebSocketConnection>(ctx.options.heartbeatInterval * 1000, (slot) => {
    for (const connection of slot) connection.heartbeat();
  });
  ctx.onShutdown(() => {
    connections.stop();
    for (const connection of connections) connection.session.disconnect(DISCONNECTS.shutdown);
  });

  // Checked before the upgrade, answered as HTTP: the address's limits and the page's origin.
  const guard = upgradeGuard(ctx, 'GET /v1/ws is a WebSocket endpoint: send an Upgrade: websocket request');
  app.route({
    method: 'GET',
    url: '/v1/ws',
    exposeHeadRoute: false,
    preHandler: guard.preHandler,
    handler: guard.handler,
    wsHandler: (socket, request) => {
      const release = guard.releaseOf(request);
      forgetUpgradeRequest(socket, request.raw.socket, (error) => onWebSocketError(ctx, error, socket));
      const query = request.query as Record<string, unknown>;
      const subsCursor = typeof query['cursor'] === 'string' ? query['cursor'] : undefined;
      let credential: string | undefined;
      let credentialProblem: unknown;
      try {
        credential = credentialOf(request);
      } catch (error) {
        credentialProblem = error;
      }
      const connection = new WebSocketConnection(socket, ctx, ctx.auth.anonymous);
      const slot = connections.add(connection);
      ctx.registry.add(connection);
      ctx.metrics.connectionOpened('ws');
      socket.on('message', (data, isBinary) => connection.onFrame(data, isBinary));
      socket.on('pong', () => {
        connection.alive = true;
      });
      socket.on('error', (error) => ctx.log.debug({ err: error }, 'websocket error'));
      socket.on('close', () => {
        connections.remove(connection, slot);
        ctx.registry.remove(connection);
        connection.close();
        connection.session.close();
        release();
        ctx.metrics.connectionClosed('ws');
      });
      if (credentialProblem !== undefined) return connection.refuse(credentialProblem);
      // Frames that arrive while the token is checked wait in order behind it.
      connection.whenIdentified(
        ctx.auth.identify(credential).then(
          (identity) => {
            connection.identity = identity;
            if (credential !== undefined) ctx.metrics.auth('ok', 'upgrade');
            connection.start(subsCursor);
          },
          (error: unknown) => connection.refuse(error),
        ),
      );
    },
  });
}
