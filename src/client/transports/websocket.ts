/**
 * WebSocket: one socket, one `subscribe` op per channel, each with that channel's own cursor.
 *
 * When may a cursor move? A `message` op's cursor is always valid for its own channel. It is valid
 * for the other channels only once every subscription shares one starting point: during a backlog
 * replay, or while some channel's cursor is ahead of this node (it came from a node that had read
 * further), it may be behind another channel's cursor. So: while a catch-up is pending, a message
 * moves only its own channel's cursor; a ping sent after the subscribes marks the end of every
 * replay (the socket is ordered), and a pong that carries a cursor says one cursor now fits all
 * channels (the server leaves it out otherwise, and the catch-up waits for the next keepalive).
 * From then on, live messages and pongs move every settled channel's cursor.
 *
 * Identity: with a token, the first frame is an `auth` op (never in the URL), and the subscribes
 * wait for its `authenticated` reply. Before the token expires, a fresh one is sent on the open
 * socket (refreshDelay); a channel it no longer grants comes back `unsubscribed` + `forbidden`.
 */
import type { WebSocketLike } from '../environment.js';
import type { Subscription } from '../subscription.js';
import { refreshDelay } from '../token-source.js';
import { EdgePushError, type ResetNotice, type WireMessage } from '../types.js';
import { tokenFailure, type Transport, type TransportFailure, type TransportHost } from './transport.js';

const OPEN = 1;

export class WebSocketTransport implements Transport {
  readonly name = 'ws';
  #socket: WebSocketLike | undefined;
  /** Channels subscribed on this socket, by channel. */
  readonly #subscribed = new Map<string, Subscription>();
  /** Unsubscribes sent and not yet answered, by channel: their `unsubscribed` is no news. */
  readonly #unsubscribing = new Map<string, number>();
  /** Channels the server unsubscribed on its own (a refresh lost their grant); its `error` follows. */
  readonly #dropped = new Map<string, Subscription>();
  /** Subscriptions whose replay is over: live cursors apply to them. */
  #settled = new Set<Subscription>();
  #catchUp: { id: string; subscriptions: Subscription[]; answered?: boolean } | undefined;
  #pings = 0;
  #auths = 0;
  /** The token last sent in an `auth` op. */
  #token: string | undefined;
  /** Subscribes wait for this: the socket is open and, with a token, `authenticated`. */
  #ready = false;
  /** The message of an `unauthorized` error op, for the close (4501) that follows it. */
  #refusal: string | undefined;
  #refreshTimer: ReturnType<typeof setTimeout> | undefined;
  #proven = false;
  #closed = false;
  #lastFrameAt = Date.now();
  #openTimer: ReturnType<typeof setTimeout> | undefined;
  #keepalive: ReturnType<typeof setInterval> | undefined;

  constructor(private readonly host: TransportHost) {
    void this.#start();
  }

  async #start(): Promise<void> {
    const { options, tokens } = this.host;
    let token: string | undefined;
    try {
      // Before the open timer: a slow token endpoint says nothing about WebSockets.
      token = await tokens.token();
    } catch (error) {
      return this.#fail(tokenFailure(error));
    }
    if (this.#closed) return;
    const url = `${this.host.baseUrl.replace(/^http/, 'ws')}/v1/ws`;
    let socket: WebSocketLike;
    try {
      if (!options.WebSocket) throw new Error('no WebSocket implementation');
      socket = this.#socket = new options.WebSocket(url);
    } catch (error) {
      return this.#fail({ kind: 'unsuitable', reason: `WebSocket unavailable: ${String(error)}` });
    }
    this.#openTimer = setTimeout(
      () => this.#fail({ kind: 'unsuitable', reason: `no WebSocket reply within ${options.wsOpenTimeout} ms` }),
      options.wsOpenTimeout,
    );
    socket.onopen = () => {
      this.#lastFrameAt = Date.now();
      this.#keepalive = setInterval(() => this.#checkAlive(), options.heartbeatInterval);
      if (token === undefined) this.#becomeReady();
      else this.#authenticate(token);
    };
    socket.onmessage = (event) => this.#frame(String(event.data));
    socket.onclose = (event) => this.#closedBy(event.code, event.reason);
    // Always followed by close; kept as a function so Node's `ws` has an error listener.
    socket.onerror = () => {};
  }

  subscriptionsChanged(): boolean {
    if (!this.#ready || this.#closed) return true;
    const wanted = new Set(this.host.subscriptions());
    for (const [channel, subscription] of this.#subscribed) {
      if (wanted.has(subscription)) continue;
      this.#subscribed.delete(channel);
      this.#settled.delete(subscription);
      this.#unsubscribing.set(channel, (this.#unsubscribing.get(channel) ?? 0) + 1);
      this.#send({ op: 'unsubscribe', channel });
    }
    const current = new Set(this.#subscribed.values());
    const added = [...wanted].filter((s) => !current.has(s));
    for (const subscription of added) this.#subscribe(subscription);
    if (added.length > 0) this.#startCatchUp();
    return true;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#openTimer);
    clearTimeout(this.#refreshTimer);
    clearInterval(this.#keepalive);
    const socket = this.#socket;
    if (!socket) return;
    socket.onopen = socket.onmessage = socket.onclose = null;
    try {
      socket.close(1000, 'client closed');
    } catch {
      // Closing a socket that never opened may throw in some implementations; it is gone either way.
    }
  }

  #fail(failure: TransportFailure): void {
    if (this.#closed) return;
    this.close();
    this.host.failed(failure);
  }

  #send(op: Record<string, unknown>): void {
    if (this.#socket?.readyState === OPEN) this.#socket.send(JSON.stringify(op));
  }

  #becomeReady(): void {
    this.#ready = true;
    this.subscriptionsChanged();
  }

  #authenticate(token: string): void {
    this.#token = token;
    this.#send({ op: 'auth', token, id: `auth-${++this.#auths}` });
  }

  /** The server accepted the last `auth`: subscribe (the first time), and plan the next refresh. */
  #authenticated(expires: unknown): void {
    this.host.tokens.accepted();
    if (!this.#ready) this.#becomeReady();
    clearTimeout(this.#refreshTimer);
    const delay = typeof expires === 'number' && this.host.tokens.renewable ? refreshDelay(expires * 1000, Date.now()) : undefined;
    if (delay !== undefined) this.#refreshTimer = setTimeout(() => void this.#refresh(), delay);
  }

  /** A fresh token on the open socket. getToken() failures are paced by the token source. */
  async #refresh(): Promise<void> {
    while (!this.#closed) {
      try {
        const token = await this.host.tokens.fresh();
        if (!this.#closed) this.#authenticate(token);
        return;
      } catch {
        // Try again (after the token source's backoff); if the token expires meanwhile, the
        // server closes with 4003 and the reconnect asks for a token once more.
      }
    }
  }

  #subscribe(subscription: Subscription): void {
    this.#subscribed.set(subscription.channel, subscription);
    this.#send({
      op: 'subscribe',
      channel: subscription.channel,
      ...(subscription.cursor !== undefined ? { cursor: subscription.cursor } : {}),
      ...(subscription.delta ? { delta: subscription.delta } : {}),
      ...(subscription.wantsSnapshot ? { snapshot: 'latest' } : {}),
      ...(subscription.maxRate > 0 ? { maxRate: subscription.maxRate } : {}),
      ...(subscription.onSlow === 'conflate' ? { onSlow: 'conflate' } : {}),
    });
  }

  #startCatchUp(): void {
    const id = `catch-up-${++this.#pings}`;
    this.#catchUp = { id, subscriptions: [...this.#subscribed.values()] };
    this.#send({ op: 'ping', id });
  }

  #checkAlive(): void {
    if (Date.now() - this.#lastFrameAt > this.host.options.heartbeatTimeout) {
      return this.#fail({ kind: 'network', reason: `no WebSocket traffic for ${this.host.options.heartbeatTimeout} ms` });
    }
    if (!this.#ready) return; // no op but `auth` before the server has answered it
    // A catch-up whose pong came without a cursor asks again, at keepalive pace.
    if (this.#catchUp?.answered) return this.#send({ op: 'ping', id: this.#catchUp.id });
    // Browsers hide protocol pings, so an op-level ping is how the client knows the socket is alive;
    // its pong also carries the current cursor for quiet channels.
    this.#send({ op: 'ping', id: `keepalive-${++this.#pings}` });
  }

  #frame(text: string): void {
    if (this.#closed) return;
    this.host.received(text.length);
    this.#lastFrameAt = Date.now();
    const op = JSON.parse(text) as Record<string, unknown> & { op: string; channel?: string; cursor?: string; id?: string };
    const subscription = op.channel === undefined ? undefined : this.#subscribed.get(op.channel);
    switch (op.op) {
      case 'hello':
        if (typeof op['session'] === 'string') this.host.session(op['session']);
        return;
      case 'authenticated':
        return this.#authenticated(op['expires']);
      case 'unsubscribed':
        if (op.channel === undefined) return;
        if (this.#answered(op.channel) || !subscription) return;
        // Not asked for: the server dropped the channel (its `error`, which says why, follows).
        this.#subscribed.delete(subscription.channel);
        this.#settled.delete(subscription);
        this.#dropped.set(subscription.channel, subscription);
        return;
      case 'subscribed':
        if (!subscription) return;
        subscription.resyncing = false;
        if (op.cursor) subscription.advance(op.cursor);
        if (!this.#proven) {
          this.#proven = true;
          clearTimeout(this.#openTimer);
          this.host.proven();
        }
        return;
      case 'message': {
        // A message through a pattern subscription names the pattern in `sub`.
        const target = typeof op['sub'] === 'string' ? this.#subscribed.get(op['sub']) : subscription;
        if (!target || target.resyncing) return; // a resubscribe will replay it
        const { op: _op, cursor, sub: _sub, ...wire } = op;
        if (!target.receive(wire as unknown as WireMessage)) return this.#resubscribe(target);
        if (cursor === undefined) return;
        if (this.#catchUp) target.advance(cursor);
        else for (const settled of this.#settled) if (!settled.resyncing) settled.advance(cursor);
        return;
      }
      case 'pong':
        if (this.#catchUp && op.id === this.#catchUp.id) {
          if (!op.cursor) {
            this.#catchUp.answered = true;
            return;
          }
          this.#settled = new Set(this.#catchUp.subscriptions.filter((s) => this.#subscribed.get(s.channel) === s));
          this.#catchUp = undefined;
        }
        if (op.cursor && !this.#catchUp) for (const settled of this.#settled) if (!settled.resyncing) settled.advance(op.cursor);
        return;
      case 'reset': {
        const { op: _op, ...notice } = op;
        this.host.reset(notice as unknown as ResetNotice);
        return;
      }
      case 'error': {
        const code = String(op['code']);
        if (code === 'unauthorized') this.#refusal = String(op['message']);
        // A subscribe the server refused (too_many_channels, forbidden), or a grant a refresh lost:
        // that subscription ends.
        const refused = subscription ?? (op.channel === undefined ? undefined : this.#dropped.get(op.channel));
        if (refused) {
          this.#subscribed.delete(refused.channel);
          this.#settled.delete(refused);
          this.#dropped.delete(refused.channel);
          this.host.rejected(refused, new EdgePushError(String(op['message'] ?? code), code, undefined, refused.channel));
        }
        return;
      }
    }
  }

  /** An `unsubscribed` answers an unsubscribe this client sent: true, and one fewer is pending. */
  #answered(channel: string): boolean {
    const pending = this.#unsubscribing.get(channel) ?? 0;
    if (pending === 0) return false;
    if (pending === 1) this.#unsubscribing.delete(channel);
    else this.#unsubscribing.set(channel, pending - 1);
    return true;
  }

  /** A delta arrived whose base this client does not hold: subscribe again from the cursor. */
  #resubscribe(subscription: Subscription): void {
    subscription.resyncing = true;
    this.#settled.delete(subscription);
    this.#subscribe(subscription);
    this.#startCatchUp();
  }

  #closedBy(code: number, reason: string): void {
    const text = `WebSocket closed: ${code}${reason || this.#refusal ? ` ${reason || this.#refusal}` : ''}`;
    // The token expired (4003) or was refused (4501): a new token, then resume as on any reconnect.
    if (code === 4003 || code === 4501) {
      return this.#fail({ kind: 'auth', error: new EdgePushError(text, String(code), code), refused: this.#token, expired: code === 4003 });
    }
    if (code >= 4500 && code <= 4999) return this.#fail({ kind: 'terminal', error: new EdgePushError(text, String(code), code) });
    // Never opened, or opened but never answered: something in between refuses WebSockets.
    if (!this.#proven) return this.#fail({ kind: 'unsuitable', reason: text });
    // 4000–4499 (shutdown, slow consumer, missed pong), 1006 (dropped), 1009 (a frame too large:
    // this client's frames are small ops, never application data, so reconnecting is safe).
    this.#fail({ kind: 'network', reason: text });
  }
}
