/**
 * One interface over the three transports, so the conformance suite is written once. A client
 * records what it received and its latest cursor; tests await conditions on it (no sleeps).
 */
import { EventEmitter } from 'node:events';
import { waitForChange } from './wait-for-change.js';

export interface ReceivedMessage {
  channel: string;
  id: string;
  data: unknown;
  ts: number;
  encoding?: string;
  /** On elided subscriptions: how many messages of the channel this one replaced. */
  elided?: number;
  /** Present when `data` is a delta against the message named by `base`. */
  delta?: { format: string; base: string };
}

export interface ResetRecord {
  reason: string;
  channel: string;
  from?: string;
  to?: string;
}

export interface TestClient {
  readonly received: ReceivedMessage[];
  readonly resets: ResetRecord[];
  /** The latest cursor the client could resume from. */
  readonly cursor: string | undefined;
  /** Set once the server ended the connection, with its close or disconnect code when it gave one. */
  readonly ended: { code?: number } | undefined;
  /** Resolves once the subscription is live and a starting cursor is known. */
  readonly ready: Promise<void>;
  /** Resolves when `predicate` holds; rejects after `timeoutMs` as a failure, never as a sync tool. */
  waitFor(predicate: () => boolean, what: string, timeoutMs?: number): Promise<void>;
  /** Cuts the connection abruptly, as a network failure would. */
  drop(): void;
  /** Stops reading from the socket (to make the client slow), and starts again. */
  pause(): void;
  resume(): void;
}

export abstract class BaseTestClient extends EventEmitter implements TestClient {
  readonly received: ReceivedMessage[] = [];
  readonly resets: ResetRecord[] = [];
  cursor: string | undefined;
  ended: { code?: number } | undefined;
  abstract readonly ready: Promise<void>;

  constructor() {
    super();
    this.setMaxListeners(0);
  }

  protected changed(): void {
    this.emit('change');
  }

  waitFor(predicate: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
    return waitForChange(this, predicate, () => `timed out waiting for ${what} (received ${this.received.length} messages, ended: ${JSON.stringify(this.ended)})`, timeoutMs);
  }

  abstract drop(): void;
  abstract pause(): void;
  abstract resume(): void;
}

export type TransportName = 'sse' | 'poll' | 'ws';

export interface OpenOptions {
  readonly cursor?: string;
  /** Ask for delta-compressed messages (`json-patch` or `vcdiff`). */
  readonly delta?: string;
  /** `latest`: the newest message of each channel first (a subscribe without a cursor). */
  readonly snapshot?: 'latest';
  /** Eliding: at most one message per channel per this many ms. */
  readonly maxRate?: number;
  /** `conflate`: a client that cannot keep up keeps its connection and gets the latest per channel. */
  readonly onSlow?: 'conflate' | 'disconnect';
}

export type ClientFactory = (baseUrl: string, channels: string[], options?: OpenOptions) => TestClient;
