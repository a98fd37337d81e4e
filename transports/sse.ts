/**
 * Server-Sent Events: `GET /v1/sse?channel=A&channel=B`, resumable with the `Last-Event-ID` header
 * (sent by EventSource on its own reconnects) or `?lastEventId=`. The stream is: `retry:`, any reset
 * notices, the backlog, an id-only event with the current cursor, then live messages and heartbeats.
 */
import type { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { Session, type SessionSink } from '../src/engine/session.js';
import { DISCONNECTS, type Disconnect } from '../src/errors.js';
import type { TransportContext } from './context.js';
import { corsHeaders } from './cors.js';
import { sendError, toPushError } from './http-errors.js';
import { channelsParam, deltaParam, stringParam } from './request-params.js';
import type { DeltaCodec } from '../src/delta/codec.js';
import { SSE_MESSAGE, sseCursor, sseDisconnect, ssePreamble, sseReset } from './sse-format.js';

/** After a disconnect notice, how long a client that reads nothing may keep the socket. */
const GOODBYE_GRACE_MS = 5_000;

class SseStream implements SessionSink {
  readonly format = SSE_MESSAGE;
  readonly session: Session;
  /**
   * Heartbeats start once the subscriptions exist: before that a stream's idle cursor is the
   * node's frontier, and a heartbeat during a deep resume would carry the client past what it is
   * about to be sent.
   */
  subscribed = false;

  constructor(private readonly res: ServerResponse, private readonly ctx: TransportContext) {
    this.session = new Session(ctx.engine, this, { maxBufferedBytes: ctx.options.maxBufferedBytes });
  }

  get bufferedAmount(): number {
    return this.res.writableLength;
  }

  write(bytes: Buffer): void {
    this.res.write(bytes);
  }

  disconnect(reason: Disconnect): void {
    if (this.res.writableEnded) return;
    if (reason === DISCONNECTS.slow) this.ctx.metrics.slowDisconnect('sse');
    this.res.end(sseDisconnect(reason));
    // end() waits for the buffer to drain; a client that stopped reading would hold it forever.
    setTimeout(() => this.res.destroy(), GOODBYE_GRACE_MS).unref();
  }
}

export function registerSse(app: FastifyInstance, ctx: TransportContext): void {
  const { options, metrics } = ctx;
  const streams = new Set<SseStream>();

  const heartbeat = setInterval(() => {
    // Streams whose cursors are equal (nearly all) share one Buffer per tick.
    const shared = new Map<string, Buffer>();
    for (const stream of streams) {
      if (!stream.subscribed) continue;
      const cursor = stream.session.idleCursor()?.toString();
      if (cursor === undefined) continue;
      let bytes = shared.get(cursor);
      if (!bytes) shared.set(cursor, (bytes = sseCursor(cursor)));
      stream.session.writeControl(bytes);
    }
  }, options.heartbeatInterval * 1000);
  ctx.onShutdown(() => {
    clearInterval(heartbeat);
    for (const stream of streams) stream.session.disconnect(DISCONNECTS.shutdown);
  });

  app.get('/v1/sse', async (request, reply) => {
    const query = request.query as Record<string, string | string[] | undefined>;
    let channels: string[];
    let cursorText: string | undefined;
    let delta: DeltaCodec | null;
    try {
      channels = channelsParam(query, options.maxChannelsPerSubscription);
      delta = deltaParam(query);
      const header = request.headers['last-event-id'];
      // The header is what EventSource sends on its own reconnects, so it wins over the query.
      cursorText = (Array.isArray(header) ? header[0] : header) ?? stringParam(query, 'lastEventId');
    } catch (error) {
      const pushError = toPushError(error);
      metrics.badInput('sse', pushError.code);
      return sendError(reply, pushError);
    }

    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
      connection: 'keep-alive',
      ...corsHeaders(options),
    });
    const stream = new SseStream(res, ctx);
    const session = stream.session;
    streams.add(stream);
    metrics.connectionOpened('sse');
    res.on('close', () => {
      streams.delete(stream);
      session.close();
      metrics.connectionClosed('sse');
    });
    res.on('error', (error) => request.log.debug({ err: error }, 'sse stream error'));

    session.writeControl(ssePreamble(options.reconnectDelay * 1000, options.heartbeatInterval * 1000));
    const plan = await ctx.resumer.subscribe(session, channels, ctx.resumer.resumePoint(cursorText), delta);
    if (!plan || session.closed) return;
    for (const reset of plan.resets) session.writeControl(sseReset(reset));
    session.replayFromLog(plan.fromLog);
    session.replay(plan.backlog);
    session.release();
    const cursor = session.idleCursor();
    if (cursor) session.writeControl(sseCursor(cursor.toString()));
    stream.subscribed = true;
  });
}
