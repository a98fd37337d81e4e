/**
 * Server-Sent Events: `GET /v1/sse?channel=A&channel=B`, resumable with the `Last-Event-ID` header
 * (sent by EventSource on its own reconnects) or `?lastEventId=`. The stream is: `retry:`, any reset
 * notices, the backlog, an id-only event with the current cursor, then live messages and heartbeats.
 */
import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { Session, type SessionSink } from '../src/engine/session.js';
import { SERVER_IDENTITY, type Identity } from '../src/auth/identity.js';
import type { DeltaCodec } from '../src/delta/codec.js';
import { DISCONNECTS, PushError, type Disconnect } from '../src/errors.js';
import { newSessionId, type ControllableConnection } from './connection-registry.js';
import type { TransportContext } from './context.js';
import { identify } from './credentials.js';
import { whenExpired } from './expiry-timer.js';
import { countRefusal, sendError, toPushError } from './http-errors.js';
import { channelsParam, deltaParam, maxRateParam, onSlowParam, snapshotParam, stringParam } from './request-params.js';
import type { SubscribeOptions } from '../src/resume/resumer.js';
import { SSE_MESSAGE, sseCursor, sseDisconnect, sseHello, sseNotice, ssePreamble, sseReset, sseResponseHead } from './sse-format.js';
import { HeartbeatWheel } from './heartbeat-wheel.js';
import { detachFromHttpServer } from './http-detach.js';
import { TurnOutbox } from './turn-outbox.js';

/** After a disconnect notice, how long a client that reads nothing may keep the socket. */
const GOODBYE_GRACE_MS = 5_000;

class SseStream implements SessionSink, ControllableConnection {
  readonly format = SSE_MESSAGE;
  /** One stream: a message matching several of its channels and patterns goes once. */
  readonly streamPerSubscription = false;
  readonly session: Session;
  readonly sessionId = newSessionId();
  /**
   * Heartbeats start once the subscriptions exist: before that a stream's idle cursor is the
   * node's frontier, and a heartbeat during a deep resume would carry the client past what it is
   * about to be sent.
   */
  subscribed = false;
  /** Subscription changes by the server API run one after another, like the WebSocket's ops. */
  #changes: Promise<void> = Promise.resolve();
  readonly #outbox: TurnOutbox;
  #ended = false;
  /** When the stream opened (ms), for the status page. */
  readonly connectedAt = Date.now();
  readonly transport = 'sse';

  constructor(private readonly socket: Socket, private readonly ctx: TransportContext, readonly identity: Identity, private readonly delta: DeltaCodec | null) {
    this.session = new Session(ctx.engine, this, { maxBufferedBytes: ctx.options.maxBufferedBytes });
    // A conflating stream catches up once its buffer is written out.
    this.#outbox = new TurnOutbox(socket, ctx.options.tcpNoDelay, () => this.session.drained());
  }

  get user(): string | undefined {
    return this.identity.user;
  }

  get bufferedAmount(): number {
    return this.#outbox.bufferedAmount;
  }

  /** The HTTP response head: first on the socket, not counted as stream bytes. */
  writeHead(head: Buffer): void {
    this.#outbox.write(head);
  }

  write(bytes: Buffer): void {
    this.#outbox.write(bytes);
    this.ctx.metrics.writtenBytes.sse += bytes.length;
  }

  disconnect(reason: Disconnect): void {
    if (this.#ended) return;
    this.#ended = true;
    if (reason === DISCONNECTS.slow) this.ctx.metrics.slowDisconnect('sse');
    this.write(sseDisconnect(reason));
    this.#outbox.flush();
    this.socket.end();
    // end() waits for the buffer to drain; a client that stopped reading would hold it forever.
    setTimeout(() => this.socket.destroy(), GOODBYE_GRACE_MS).unref();
  }

  /** Subscribes and writes the plan: resets, what was read back, the rings' backlog, then live. */
  async subscribe(identity: Identity, channels: readonly string[], cursorText: string | undefined, options: SubscribeOptions = {}): Promise<void> {
    const { resumer } = this.ctx;
    const plan = await resumer.subscribe(identity, this.session, channels, resumer.resumePoint(cursorText), this.delta, options);
    if (!plan || this.session.closed) return;
    for (const reset of plan.resets) this.session.writeControl(sseReset(reset));
    this.session.replaySnapshot(plan.snapshot, plan.startCursor);
    this.session.replayFromLog(plan.fromLog);
    this.session.replay(plan.backlog);
    this.session.replayEmissions(plan.elided);
    this.session.release();
  }

  serverSubscribe(channel: string, cursor: string | undefined): void {
    this.#inOrder(async () => {
      if (this.session.channelCount >= this.ctx.options.maxChannelsPerSubscription && !this.session.has(channel)) {
        throw new PushError('too_many_channels', `at most ${this.ctx.options.maxChannelsPerSubscription} channels per connection`);
      }
      this.session.writeControl(sseNotice('subscribed', { channel, server: true }));
      await this.subscribe(SERVER_IDENTITY, [channel], cursor);
    }, channel);
  }

  serverUnsubscribe(channel: string): void {
    this.#inOrder(async () => {
      if (this.session.unsubscribe(channel)) this.session.writeControl(sseNotice('unsubscribed', { channel, server: true }));
    }, channel);
  }

  serverDisconnect(code: number, reason: string): void {
    this.session.disconnect({ code, reason, reconnect: code < 4500 });
  }

  #inOrder(task: () => Promise<void>, channel: string): void {
    this.#changes = this.#changes.then(task).catch((error: unknown) => {
      const pushError = toPushError(error);
      if (pushError.code === 'internal') this.ctx.logError(error, 'sse subscription change failed');
      if (!this.session.closed) this.session.writeControl(sseNotice('error', { channel, ...pushError.toJSON() }));
    });
  }
}

export function registerSse(app: FastifyInstance, ctx: TransportContext): void {
  const { options, metrics } = ctx;

  /** An id-only event with each stream's current cursor. */
  const sendCursors = (to: Iterable<SseStream>): void => {
    // Streams whose cursors are equal (nearly all) share one Buffer per tick.
    const shared = new Map<string, Buffer>();
    for (const stream of to) {
      if (!stream.subscribed) continue;
      const cursor = stream.session.idleCursor()?.toString();
      if (cursor === undefined) continue;
      let bytes = shared.get(cursor);
      if (!bytes) shared.set(cursor, (bytes = sseCursor(cursor)));
      stream.session.writeControl(bytes);
    }
  };
  /** Every open stream, its heartbeats spread over the interval. */
  const streams = new HeartbeatWheel<SseStream>(options.heartbeatInterval * 1000, sendCursors);
  ctx.onShutdown(() => {
    streams.stop();
    // The newest cursor just before the goodbye: the client resumes on another node from here,
    // with less to read back than from its last message.
    sendCursors(streams);
    for (const stream of streams) stream.session.disconnect(DISCONNECTS.shutdown);
  });

  // What a stream would answer, without opening one (a HEAD must not leave a silent session behind).
  app.head('/v1/sse', async (_request, reply) => reply.header('content-type', 'text/event-stream; charset=utf-8').header('cache-control', 'no-store').send());

  app.get('/v1/sse', { exposeHeadRoute: false }, async (request, reply) => {
    const query = request.query as Record<string, string | string[] | undefined>;
    let channels: readonly string[];
    let cursorText: string | undefined;
    let delta: DeltaCodec | null;
    let snapshot: 'latest' | undefined;
    let maxRate: number | undefined;
    let onSlow: 'conflate' | 'disconnect' | undefined;
    let identity: Identity;
    let release: () => void;
    try {
      identity = await identify(ctx, request);
      channels = withOwnSubs(channelsParam(query, options.maxChannelsPerSubscription, identity.subs.length > 0), identity, options.maxChannelsPerSubscription);
      delta = deltaParam(query);
      snapshot = snapshotParam(stringParam(query, 'snapshot'));
      maxRate = maxRateParam(stringParam(query, 'maxRate'));
      onSlow = onSlowParam(stringParam(query, 'onSlow'));
      const header = request.headers['last-event-id'];
      // The header is what EventSource sends on its own reconnects, so it wins over the query.
      cursorText = (Array.isArray(header) ? header[0] : header) ?? stringParam(query, 'lastEventId');
      // Entitlements before the stream opens, so a refusal is an HTTP status the client can read.
      ctx.resumer.checkSubscribe(identity, channels);
      // A request pipelined behind another on its connection gets the socket only once the one
      // before it is answered, which a stream never is: it cannot become a stream, nor hold a slot.
      if (!reply.raw.socket) throw new PushError('bad_request', 'an event stream cannot follow another request still in flight on its connection; open it on a connection of its own');
      release = ctx.guard.admit(request.ip);
    } catch (error) {
      const pushError = toPushError(error);
      countRefusal(metrics, 'sse', pushError);
      return sendError(reply, pushError);
    }

    reply.hijack();
    // The stream is written straight to the socket (see turn-outbox.ts): its head here, and a body
    // that ends when the connection does, so no chunk framing is added to each write.
    const socket = reply.raw.socket as Socket;
    const stream = new SseStream(socket, ctx, identity, delta);
    const session = stream.session;
    const slot = streams.add(stream);
    ctx.registry.add(stream);
    metrics.connectionOpened('sse');
    const cancelExpiry = whenExpired(identity.expiresAt, () => session.disconnect(DISCONNECTS.tokenExpired));
    socket.once('close', () => {
      streams.remove(stream, slot);
      ctx.registry.remove(stream);
      cancelExpiry();
      session.close();
      release();
      metrics.connectionClosed('sse');
    });
    // ctx.log, not request.log: a long-lived listener must not keep the request's objects alive.
    socket.on('error', (error) => ctx.log.debug({ err: error }, 'sse stream error'));
    // The HTTP server's parser and objects are not needed for the rest of the stream's life.
    detachFromHttpServer(socket);

    stream.writeHead(sseResponseHead(ctx.cors.headers(request.headers.origin)));
    session.writeControl(ssePreamble(options.reconnectDelay * 1000, options.heartbeatInterval * 1000));
    session.writeControl(sseHello(stream.sessionId, identity.user));
    try {
      await stream.subscribe(identity, channels, cursorText, { ...(snapshot ? { snapshot } : {}), ...(maxRate ? { maxRate } : {}), ...(onSlow ? { onSlow } : {}) });
    } catch (error) {
      // Checked above, so this is rare (a read from the log failed): say so and end; the client resumes.
      const pushError = toPushError(error);
      if (pushError.code === 'internal') ctx.logError(error, 'sse subscribe failed');
      if (!session.closed) session.writeControl(sseNotice('error', pushError.toJSON()));
      session.disconnect(DISCONNECTS.shutdown);
      return;
    }
    if (session.closed) return;
    const cursor = session.idleCursor();
    if (cursor) session.writeControl(sseCursor(cursor.toString()));
    stream.subscribed = true;
  });
}

/** The channels asked for plus the token's own `subs`, within the per-connection limit. */
export function withOwnSubs(requested: readonly string[], identity: Identity, max: number): readonly string[] {
  if (identity.subs.length === 0) return requested;
  const channels = [...new Set([...requested, ...identity.subs])];
  if (channels.length > max) throw new PushError('too_many_channels', `at most ${max} channels per subscription (with the token's own subs), got ${channels.length}`);
  return channels;
}
