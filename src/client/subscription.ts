/**
 * One subscription, to a channel or a pattern (`US/NASDAQ/#`): the application's handler, its cursor, and its delta decoder. The
 * transports decide when a cursor may move (each has its own rules); this class only holds it.
 */
import { filterMatches } from './channel-name.js';
import { DeltaDecoder } from './delta-decoder.js';
import type { DeltaFormat, Message, WireMessage } from './types.js';

export type MessageHandler = (message: Message) => void;

export interface SubscribeOptions {
  /** Ask the server for deltas; the handler still gets full messages. Default: none. */
  readonly delta?: DeltaFormat | 'none';
  /** Resume this channel from here (e.g. a cursor persisted before a page reload). */
  readonly cursor?: string;
  /**
   * `latest`: start with the newest message of the channel (of each channel a pattern matches),
   * flagged `snapshot: true`, then live. Only when the subscription starts without a cursor.
   */
  readonly snapshot?: 'latest';
  /**
   * Eliding: at most one message per channel per this many ms (the first at once, the latest of
   * each interval at its end, never lost); each message then says in `elided` how many it replaced.
   */
  readonly maxRate?: number;
  /**
   * `conflate`: when the client cannot keep up, the server keeps its connection and sends only the
   * latest message per channel until it catches up (`elided` counting the rest), instead of
   * disconnecting it to resume (the default, `disconnect`). SSE and WebSocket.
   */
  readonly onSlow?: 'conflate' | 'disconnect';
}

/** What the client does for a subscription; kept narrow so a subscription cannot reach the rest. */
export interface SubscriptionOwner {
  removeSubscription(subscription: Subscription): void;
  deliverFailed(error: unknown): void;
  cursorMoved(): void;
  /** A message came as a delta that saved this many bytes (see DecodeResult). */
  savedByDelta(bytes: number): void;
}

export class Subscription {
  readonly channel: string;
  readonly delta: DeltaFormat | undefined;
  readonly snapshot: 'latest' | undefined;
  readonly maxRate: number;
  readonly onSlow: 'conflate' | 'disconnect';
  #cursor: string | undefined;
  #active = true;
  readonly #decoder = new DeltaDecoder();
  /** Set while a WebSocket resubscribe (after a missing delta base) is in flight. */
  resyncing = false;

  constructor(
    channel: string,
    options: SubscribeOptions,
    private readonly handler: MessageHandler,
    private readonly owner: SubscriptionOwner,
  ) {
    this.channel = channel;
    this.delta = options.delta === 'none' ? undefined : options.delta;
    this.#cursor = options.cursor;
    this.snapshot = options.snapshot;
    this.maxRate = options.maxRate ?? 0;
    this.onSlow = options.onSlow ?? 'disconnect';
  }

  /** Asks for a snapshot now: it wants one and has no cursor yet (a reconnect resumes instead). */
  get wantsSnapshot(): boolean {
    return this.snapshot === 'latest' && this.#cursor === undefined;
  }

  /** Everything up to here has been handed to the handler: persist it to resume after a reload. */
  get cursor(): string | undefined {
    return this.#cursor;
  }

  get active(): boolean {
    return this.#active;
  }

  /** Does a message of `channel` belong here? Its own channel, or any channel its pattern matches. */
  covers(channel: string): boolean {
    return filterMatches(this.channel, channel);
  }

  unsubscribe(): void {
    if (!this.#active) return;
    this.#active = false;
    this.owner.removeSubscription(this);
  }

  /** Transports only: the cursor moves when what it covers has been delivered. */
  advance(cursor: string): void {
    if (cursor === this.#cursor) return;
    this.#cursor = cursor;
    this.owner.cursorMoved();
  }

  /**
   * Rebuilds and hands `wire` to the handler. False when it is a delta whose base this
   * subscription does not hold: the caller must resume from `cursor` (nothing was delivered).
   */
  receive(wire: WireMessage): boolean {
    if (!this.#active) return true;
    const result = this.#decoder.decode(wire);
    if (!result.ok) return false;
    if (result.saved !== 0) this.owner.savedByDelta(result.saved);
    const message: Message = {
      channel: wire.channel,
      id: wire.id,
      ts: wire.ts,
      data: result.data,
      ...(wire.encoding ? { encoding: wire.encoding } : {}),
      ...(wire.snapshot ? { snapshot: true as const } : {}),
      ...(wire.elided !== undefined ? { elided: wire.elided } : {}),
    };
    try {
      this.handler(message);
    } catch (error) {
      // The application's bug; the stream and the cursor carry on (the message counts as delivered).
      this.owner.deliverFailed(error);
    }
    return true;
  }
}
