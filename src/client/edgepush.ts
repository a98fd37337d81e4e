/**
 * The edgepush client: subscriptions, one connection carrying them all, transport fallback,
 * reconnects with backoff, and exact resume from each subscription's cursor.
 *
 *   const client = new EdgePush('https://push.example.com');
 *   const sub = client.subscribe('US/NASDAQ/AAPL', { delta: 'vcdiff' }, (message) => render(message));
 *   client.on('state', ({ state, transport }) => show(state, transport));
 */
import { Backoff } from './backoff.js';
import { channelNameProblem } from './channel-name.js';
import { Emitter } from './emitter.js';
import { isOnline, watchNetwork } from './environment.js';
import { FallbackPolicy } from './fallback-policy.js';
import { resolveOptions, type EdgePushOptions, type ResolvedOptions } from './options.js';
import { publishMessages, type PublishOptions } from './publish.js';
import { Subscription, type MessageHandler, type SubscribeOptions } from './subscription.js';
import { TokenSource } from './token-source.js';
import { TransportMemory } from './transport-memory.js';
import { PollTransport } from './transports/poll.js';
import { SseTransport } from './transports/sse.js';
import type { Transport, TransportFailure, TransportHost } from './transports/transport.js';
import { WebSocketTransport } from './transports/websocket.js';
import type { ConnectionState, ResetNotice, StateChange, TransportName } from './types.js';

export interface EdgePushEvents extends Record<string, unknown> {
  state: StateChange;
  reset: ResetNotice;
  /** The cursor shared by every subscription moved (see `EdgePush.cursor`): persist it here. */
  cursor: string;
  /**
   * A message handler threw, or the server refused a subscription (an EdgePushError with its
   * `channel`; e.g. `forbidden`: the subscription has ended). The connection carries on.
   */
  error: Error;
}

const TRANSPORTS: Record<TransportName, new (host: TransportHost) => Transport> = {
  ws: WebSocketTransport,
  sse: SseTransport,
  poll: PollTransport,
};

export class EdgePush extends Emitter<EdgePushEvents> {
  /** The server's base URL, e.g. `https://push.example.com` (no `/v1`). */
  readonly url: string;
  readonly #options: ResolvedOptions;
  readonly #subscriptions = new Map<string, Subscription>();
  readonly #policy: FallbackPolicy;
  readonly #backoff: Backoff;
  readonly #memory: TransportMemory;
  readonly #tokens: TokenSource;
  readonly #stopWatching: () => void;
  /** The seed cursor applies to subscriptions made before the first connection; later ones start now. */
  #seed: string | undefined;
  #transport: Transport | undefined;
  /** Bumped per connection attempt, so callbacks from an abandoned transport are ignored. */
  #attempt = 0;
  #attemptProven = false;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #connectQueued = false;
  #state: StateChange = { state: 'idle', transport: undefined };
  #closed = false;
  #bytes = 0;
  #savedByDeltas = 0;
  #lastCursor: string | undefined;
  #cursorCheckQueued = false;
  #session: string | undefined;

  constructor(url: string, options: EdgePushOptions = {}) {
    super();
    this.url = url.replace(/\/+$/, '');
    this.#options = resolveOptions(options);
    this.#seed = this.#options.cursor;
    this.#memory = new TransportMemory(this.url, this.#options.rememberTransport, this.#options.rememberFor);
    this.#policy = new FallbackPolicy(this.#options.transports, this.#memory.recall(), this.#options.demoteAfter);
    this.#backoff = new Backoff(this.#options.backoff);
    this.#tokens = new TokenSource(this.#options.token, this.#options.getToken, this.#options.backoff);
    this.#stopWatching = watchNetwork(
      () => this.#wake('back online or visible'),
      () => this.#lost('offline'),
    );
  }

  get state(): ConnectionState {
    return this.#state.state;
  }

  /** The transport in use (or being tried). */
  get transport(): TransportName | undefined {
    return this.#state.transport;
  }

  /**
   * The cursor every subscription has reached, or undefined while they differ (right after a
   * subscribe, or on a WebSocket before the first pong). Seed a new client with it (`cursor`
   * option) to resume after a page reload; per-channel cursors are on each subscription.
   */
  get cursor(): string | undefined {
    let shared: string | undefined;
    for (const subscription of this.#subscriptions.values()) {
      if (subscription.cursor === undefined) return undefined;
      if (shared === undefined) shared = subscription.cursor;
      else if (shared !== subscription.cursor) return undefined;
    }
    return shared;
  }

  /** The server's id for the current connection (its `hello`), for correlating logs; undefined before it. */
  get session(): string | undefined {
    return this.#session;
  }

  /** Approximate bytes received over every transport (text length of frames, events, replies). */
  get bytesReceived(): number {
    return this.#bytes;
  }

  /**
   * Approximate bytes deltas saved: for each message that came as a delta, the text length of its
   * full data less that of the delta. `bytesReceived + bytesSavedByDeltas` is roughly what the same
   * messages would have cost without deltas.
   */
  get bytesSavedByDeltas(): number {
    return this.#savedByDeltas;
  }

  subscribe(channel: string, handler: MessageHandler): Subscription;
  subscribe(channel: string, options: SubscribeOptions, handler: MessageHandler): Subscription;
  subscribe(channel: string, optionsOrHandler: SubscribeOptions | MessageHandler, maybeHandler?: MessageHandler): Subscription {
    if (this.#closed) throw new Error('edgepush: the client is closed');
    const problem = channelNameProblem(channel);
    if (problem) throw new TypeError(`edgepush: bad channel ${JSON.stringify(channel)}: ${problem}`);
    if (this.#subscriptions.has(channel)) throw new Error(`edgepush: already subscribed to ${channel}; unsubscribe first`);
    const options = typeof optionsOrHandler === 'function' ? {} : optionsOrHandler;
    const handler = typeof optionsOrHandler === 'function' ? optionsOrHandler : maybeHandler;
    if (typeof handler !== 'function') throw new TypeError('edgepush: subscribe needs a message handler');
    const cursor = options.cursor ?? this.#seed;
    const subscription = new Subscription(channel, cursor === undefined ? options : { ...options, cursor }, handler, {
      removeSubscription: (s) => {
        if (this.#subscriptions.get(s.channel) === s) this.#subscriptions.delete(s.channel);
        this.#subscriptionsChanged();
      },
      deliverFailed: (error) => this.emit('error', error instanceof Error ? error : new Error(String(error))),
      cursorMoved: () => this.#cursorMoved(),
      savedByDelta: (bytes) => {
        this.#savedByDeltas += bytes;
      },
    });
    this.#subscriptions.set(channel, subscription);
    this.#subscriptionsChanged();
    return subscription;
  }

  /** Publishes one message; resolves with its id once it is in the log. */
  async publish(channel: string, data: unknown, options?: PublishOptions): Promise<string> {
    const [id] = await this.publishBatch([{ channel, data }], options);
    return id as string;
  }

  /** Publishes up to 1000 messages in order, all or nothing; resolves with their ids. */
  publishBatch(messages: readonly { channel: string; data: unknown }[], options?: PublishOptions): Promise<string[]> {
    const { fetch, publishRetries: retries, backoff, requestTimeout } = this.#options;
    return publishMessages(this.url, messages, { fetch, retries, backoff, requestTimeout, tokens: this.#tokens }, options);
  }

  /** Ends every subscription and the connection. */
  close(): void {
    this.#shutDown({ state: 'closed', transport: this.#state.transport });
  }

  #shutDown(finalState: StateChange): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopWatching();
    this.#tokens.close();
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#transport?.close();
    this.#transport = undefined;
    this.#setState(finalState);
  }

  #subscriptionsChanged(): void {
    if (this.#closed) return;
    if (this.#subscriptions.size === 0) {
      clearTimeout(this.#retryTimer);
      this.#retryTimer = undefined;
      this.#transport?.close();
      this.#transport = undefined;
      this.#setState({ state: 'idle', transport: this.#state.transport });
      return;
    }
    if (this.#transport?.subscriptionsChanged() === false) {
      // SSE and long-poll carry the channels in the URL: reconnect at once, resuming from the cursors.
      this.#transport.close();
      this.#transport = undefined;
      this.#connectSoon();
    } else if (!this.#transport && this.#retryTimer === undefined) {
      this.#connectSoon();
    }
  }

  /** Several subscribe() calls in one tick share one connection attempt. */
  #connectSoon(): void {
    if (this.#connectQueued) return;
    this.#connectQueued = true;
    queueMicrotask(() => {
      this.#connectQueued = false;
      if (!this.#transport && this.#retryTimer === undefined) this.#connect();
    });
  }

  #connect(reason?: string): void {
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    if (this.#closed || this.#subscriptions.size === 0) return;
    const name = this.#policy.current;
    const attempt = ++this.#attempt;
    this.#attemptProven = false;
    if (this.#state.state !== 'connected' || this.#state.transport !== name) {
      this.#setState({ state: 'connecting', transport: name, ...(reason ? { reason } : {}) });
    }
    this.#session = undefined;
    this.#transport = new TRANSPORTS[name](this.#hostFor(attempt));
  }

  #hostFor(attempt: number): TransportHost {
    const current = (): boolean => attempt === this.#attempt && !this.#closed;
    return {
      baseUrl: this.url,
      options: this.#options,
      tokens: this.#tokens,
      subscriptions: () => [...this.#subscriptions.values()],
      proven: () => {
        if (!current() || this.#attemptProven) return;
        this.#attemptProven = true;
        this.#seed = undefined;
        this.#policy.succeeded();
        this.#backoff.reset();
        this.#tokens.accepted();
        this.#memory.remember(this.#policy.current);
        this.#setState({ state: 'connected', transport: this.#policy.current });
      },
      reset: (notice) => current() && this.emit('reset', notice),
      rejected: (subscription, error) => {
        if (!current()) return;
        // Ended for good: no later connection carries it (SSE and long-poll reconnect without it).
        subscription.unsubscribe();
        this.emit('error', error);
      },
      session: (id) => {
        if (current()) this.#session = id;
      },
      received: (bytes) => {
        if (current()) this.#bytes += bytes;
      },
      retryHint: (ms) => current() && this.#backoff.setFloor(ms),
      failed: (failure) => {
        if (current()) this.#failed(failure);
      },
    };
  }

  #failed(failure: TransportFailure): void {
    this.#transport = undefined;
    const transport = this.#policy.current;
    switch (failure.kind) {
      case 'terminal':
        return this.#shutDown({ state: 'closed', transport, reason: failure.error.message, error: failure.error });
      case 'resubscribe':
        return this.#connect(failure.reason);
      case 'auth':
        // Says nothing about the transport: the same one again, with a new token after a backoff.
        if (failure.refused !== undefined) this.#tokens.refused(failure.refused, failure.expired);
        if (!this.#tokens.renewable) return this.#shutDown({ state: 'closed', transport, reason: failure.error.message, error: failure.error });
        return this.#retryLater(transport, failure.error.message);
      default: {
        const next = this.#policy.failed(failure.kind, isOnline());
        if (next.immediately) return this.#connect(`fell back from ${transport}: ${failure.reason}`);
        return this.#retryLater(next.transport, failure.reason, failure.retryAfter);
      }
    }
  }

  /** The next attempt after a backoff, and never before the server's Retry-After. */
  #retryLater(transport: TransportName, reason: string, retryAfter = 0): void {
    const delayMs = Math.max(this.#backoff.next(), retryAfter);
    this.#setState({ state: 'reconnecting', transport, reason, delayMs });
    this.#retryTimer = setTimeout(() => this.#connect(), delayMs);
  }

  /** The browser went offline: drop the connection now rather than wait for it to stall. */
  #lost(reason: string): void {
    const transport = this.#transport;
    if (!transport) return;
    transport.close();
    this.#attempt++;
    this.#failed({ kind: 'network', reason });
  }

  /** Back online, or the tab is visible again: do not sit out the rest of a backoff. */
  #wake(reason: string): void {
    if (this.#retryTimer === undefined || this.#closed) return;
    this.#backoff.reset();
    this.#connect(reason);
  }

  #cursorMoved(): void {
    // Checked once per task: a message moves the cursor of every subscription of its connection.
    if (this.#cursorCheckQueued) return;
    this.#cursorCheckQueued = true;
    queueMicrotask(() => {
      this.#cursorCheckQueued = false;
      const cursor = this.cursor;
      if (cursor === undefined || cursor === this.#lastCursor) return;
      this.#lastCursor = cursor;
      this.emit('cursor', cursor);
    });
  }

  #setState(change: StateChange): void {
    this.#state = change;
    this.emit('state', change);
  }
}
