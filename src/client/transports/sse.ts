/**
 * Server-Sent Events over fetch (not EventSource, which hides the id-only events edgepush uses as
 * heartbeats and as the current cursor; see sse-parser.ts). One stream per subscription group.
 *
 * Besides delivering, each stream watches for a proxy that buffers it (docs/client.md):
 * - nothing within `sseFirstEventTimeout` of the request (the server writes at once) → unsuitable;
 * - one read holding events the server wrote `sseBatchWindow` apart → unsuitable;
 * - silence longer than `heartbeatTimeout` → a dead connection (network).
 *
 * The token travels as `Authorization: Bearer` (fetch can set headers, unlike EventSource, and a
 * header keeps the token out of URLs and access logs).
 */
import type { Subscription } from '../subscription.js';
import { EdgePushError, type ResetNotice, type WireMessage } from '../types.js';
import { SseParser, type SseEvent } from './sse-parser.js';
import {
  authorization,
  channelParams,
  deliver,
  groupSubscriptions,
  rejectForbidden,
  requestFailure,
  tokenFailure,
  type Transport,
  type TransportFailure,
  type TransportHost,
} from './transport.js';

export class SseTransport implements Transport {
  readonly name = 'sse';
  readonly #streams: SseStream[] = [];
  #closed = false;

  constructor(private readonly host: TransportHost) {
    const end = (failure: TransportFailure): void => {
      if (this.#closed) return;
      this.close();
      host.failed(failure);
    };
    for (const group of groupSubscriptions(host.subscriptions())) this.#streams.push(new SseStream(group, host, end));
  }

  subscriptionsChanged(): boolean {
    return false; // the channels are in the URL: a new set needs a new request
  }

  close(): void {
    this.#closed = true;
    for (const stream of this.#streams) stream.close();
  }
}

class SseStream {
  readonly #abort = new AbortController();
  readonly #byChannel: Map<string, Subscription>;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  #proven = false;
  /** The first id-only event is the cursor after the backlog; later ones are heartbeats. */
  #live = false;
  /** As configured, until the server announces its own heartbeat interval. */
  #heartbeatInterval: number;
  #heartbeatTimeout: number;
  #batchWindow: number;
  /** The token this stream was opened with. */
  #token: string | undefined;

  constructor(
    private readonly subscriptions: readonly Subscription[],
    private readonly host: TransportHost,
    private readonly end: (failure: TransportFailure) => void,
  ) {
    this.#byChannel = new Map(subscriptions.map((s) => [s.channel, s]));
    this.#heartbeatInterval = host.options.heartbeatInterval;
    this.#heartbeatTimeout = host.options.heartbeatTimeout;
    this.#batchWindow = host.options.sseBatchWindow;
    void this.#run();
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#abort.abort();
  }

  #fail(failure: TransportFailure): void {
    if (this.#closed) return;
    this.close();
    this.end(failure);
  }

  #arm(ms: number, failure: TransportFailure): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#fail(failure), ms);
  }

  async #run(): Promise<void> {
    const { options, baseUrl, tokens } = this.host;
    try {
      this.#token = await tokens.token();
    } catch (error) {
      return this.#fail(tokenFailure(error));
    }
    if (this.#closed) return;
    const first = this.subscriptions[0];
    const params = channelParams(this.subscriptions, first?.delta);
    const cursor = this.subscriptions.find((s) => s.cursor !== undefined)?.cursor;
    // The query parameter, not the Last-Event-ID header: a custom header would cost cross-origin
    // pages a CORS preflight on every reconnect.
    if (cursor !== undefined) params.set('lastEventId', cursor);
    this.#arm(options.sseFirstEventTimeout, { kind: 'unsuitable', reason: `no SSE event within ${options.sseFirstEventTimeout} ms: a proxy holds the stream back` });
    let reader: ReadableStreamDefaultReader<Uint8Array>;
    try {
      const response = await options.fetch(`${baseUrl}/v1/sse?${params}`, {
        signal: this.#abort.signal,
        headers: { accept: 'text/event-stream', ...authorization(this.#token) },
      });
      if (response.status !== 200 || !response.body) {
        const failure = await requestFailure(response, 'SSE', this.#token);
        if (failure.kind !== 'forbidden') return this.#fail(failure);
        // The client reconnects without the refused channels (and has closed this stream by then).
        rejectForbidden(this.host, this.subscriptions, failure.error, failure.channels);
        return this.#fail({ kind: 'resubscribe', reason: 'a subscription was refused' });
      }
      reader = response.body.getReader();
    } catch (error) {
      return this.#fail({ kind: 'network', reason: `SSE request failed: ${String(error)}` });
    }
    const decoder = new TextDecoder();
    const parser = new SseParser();
    for (;;) {
      let chunk: Awaited<ReturnType<typeof reader.read>>;
      try {
        chunk = await reader.read();
      } catch (error) {
        return this.#fail({ kind: 'network', reason: `SSE stream broke: ${String(error)}` });
      }
      if (this.#closed) return void reader.cancel().catch(() => {});
      if (chunk.done) return this.#fail({ kind: 'network', reason: 'SSE stream ended' });
      this.host.received(chunk.value.byteLength);
      const { events, retry, heartbeat } = parser.feed(decoder.decode(chunk.value, { stream: true }));
      if (retry !== undefined) this.host.retryHint(retry);
      if (heartbeat !== undefined) this.#adoptHeartbeat(heartbeat);
      if (events.length === 0) continue;
      if (!this.#proven) {
        this.#proven = true;
        this.host.proven();
      }
      this.#arm(this.#heartbeatTimeout, { kind: 'network', reason: `no SSE traffic for ${this.#heartbeatTimeout} ms` });
      const failure = this.#handle(events);
      if (failure) return this.#fail(failure);
    }
  }

  /** Delivers one read's events; returns why the stream must end, if it must. */
  #handle(events: readonly SseEvent[]): TransportFailure | undefined {
    let heartbeats = 0;
    let oldest = Infinity;
    let newest = -Infinity;
    for (const event of events) {
      switch (event.type) {
        case 'id':
          if (this.#live) heartbeats++;
          this.#live = true;
          this.#advance(event.id);
          break;
        case 'message': {
          const wire = JSON.parse(event.data) as WireMessage;
          // A missing delta base: reconnect from the cursor before this event (it was not advanced).
          if (!deliver(this.subscriptions, this.#byChannel, wire)) return { kind: 'resubscribe', reason: `missing delta base on ${wire.channel}` };
          this.#advance(event.id);
          if (this.#live) {
            oldest = Math.min(oldest, wire.ts);
            newest = Math.max(newest, wire.ts);
          }
          break;
        }
        case 'reset':
          this.host.reset(JSON.parse(event.data) as ResetNotice);
          break;
        case 'hello': {
          // The server's name for this connection, for the application's logs; nothing else.
          const session = parseObject(event.data)?.['session'];
          if (typeof session === 'string') this.host.session(session);
          break;
        }
        case 'disconnect': {
          const notice = JSON.parse(event.data) as { code: number; reason: string; reconnect?: boolean };
          const text = `server ended the stream: ${notice.code} ${notice.reason}`;
          // The token expired (4003) or was refused (4501): a new token, then resume as usual.
          if (notice.code === 4003 || notice.code === 4501) {
            const error = new EdgePushError(text, String(notice.code), notice.code);
            return { kind: 'auth', error, refused: this.#token, expired: notice.code === 4003 };
          }
          if (notice.reconnect === false || (notice.code >= 4500 && notice.code <= 4999)) {
            return { kind: 'terminal', error: new EdgePushError(text, String(notice.code), notice.code) };
          }
          return { kind: 'network', reason: text };
        }
      }
    }
    // Everything in this read was delivered and its cursor kept; now judge how it arrived.
    const span = Math.max(newest - oldest, (heartbeats - 1) * this.#heartbeatInterval);
    if (span > 0 && span >= this.#batchWindow) {
      return { kind: 'unsuitable', reason: `SSE events written ${span} ms apart arrived together: a proxy buffers the stream` };
    }
    return undefined;
  }

  /**
   * The server announces its heartbeat interval in the stream's preamble: judge silence and
   * batching by it, never more strictly than configured, so a server with slow heartbeats is not
   * mistaken for a dead connection.
   */
  #adoptHeartbeat(interval: number): void {
    const { heartbeatInterval, heartbeatTimeout, sseBatchWindow } = this.host.options;
    this.#heartbeatInterval = interval;
    this.#heartbeatTimeout = Math.max(heartbeatTimeout, Math.round((heartbeatTimeout / heartbeatInterval) * interval));
    this.#batchWindow = Math.max(sseBatchWindow, interval);
  }

  /** Every cursor on an SSE stream is valid for all of its channels, and they only move forward. */
  #advance(cursor: string | undefined): void {
    if (cursor === undefined) return;
    for (const subscription of this.subscriptions) subscription.advance(cursor);
  }
}

function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
