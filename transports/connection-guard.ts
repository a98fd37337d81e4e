/**
 * The limits that keep one client from taking the server (docs/security.md): new connections and
 * requests per second per client address, streaming connections per address and in all, and
 * publishes per second per client. Each refusal is a documented error with a Retry-After hint,
 * and a metric; none of them logs (a flood must not become a flood of log lines).
 */
import type { ServerOptions } from '../src/config.js';
import { PushError } from '../src/errors.js';
import { ConnectionCounter } from '../src/limits/connection-counter.js';
import { burstFor, KeyedRateLimiter } from '../src/limits/token-bucket.js';
import type { Metrics } from '../src/metrics.js';

type GuardOptions = Pick<ServerOptions, 'maxConnections' | 'maxConnectionsPerIp' | 'connectionRatePerIp' | 'publishRate'>;

/** How long a client refused by the global cap is asked to wait: long enough to spread a reconnect wave. */
const OVER_CAPACITY_RETRY_SECONDS = 5;

export class ConnectionGuard {
  readonly #connections: ConnectionCounter;
  readonly #requests: KeyedRateLimiter;
  readonly #publishes: KeyedRateLimiter;
  /** Connections whose first request was counted (sockets, held weakly). */
  readonly #counted = new WeakSet<object>();

  constructor(private readonly options: GuardOptions, private readonly metrics: Metrics) {
    this.#connections = new ConnectionCounter(options.maxConnections, options.maxConnectionsPerIp);
    this.#requests = new KeyedRateLimiter(options.connectionRatePerIp, burstFor(options.connectionRatePerIp));
    this.#publishes = new KeyedRateLimiter(options.publishRate, burstFor(options.publishRate));
  }

  /**
   * A request on `connection` from `address`: its first request counts as a new connection against
   * the address's rate (where the address is known, X-Forwarded-For included when trustProxy is on).
   */
  firstRequest(connection: object, address: string): void {
    if (this.#counted.has(connection)) return;
    this.#counted.add(connection);
    this.request(address);
  }

  /** A new connection from `address` (checked at its first request). */
  request(address: string): void {
    const retryAfter = this.#requests.tryTake(address);
    if (retryAfter === 0) return;
    this.metrics.limited('connection_rate_per_ip');
    throw new PushError('too_many_connections', `more than ${this.options.connectionRatePerIp} new connections per second from your address`, { retryAfter });
  }

  /** A streaming connection from `address` begins; call the returned function when it ends. */
  admit(address: string): () => void {
    const admission = this.#connections.admit(address);
    if (admission.ok) return admission.release;
    if (admission.reason === 'global') {
      this.metrics.limited('connections');
      throw new PushError('over_capacity', `this server holds its limit of ${this.options.maxConnections} connections; try again later or another node`, { retryAfter: OVER_CAPACITY_RETRY_SECONDS });
    }
    this.metrics.limited('connections_per_ip');
    throw new PushError('too_many_connections', `at most ${this.options.maxConnectionsPerIp} connections from one address`, { retryAfter: OVER_CAPACITY_RETRY_SECONDS });
  }

  /** `count` messages published over HTTP or MQTT by `client` (an identity scope, or the address for anonymous). */
  publish(client: string, count: number): void {
    // A batch over the burst could never pass, however long the client waited: not a 429.
    const burst = burstFor(this.options.publishRate);
    if (count > burst) throw new PushError('bad_request', `a batch of ${count} messages is over the publish burst of ${Math.floor(burst)} (twice publishRate): split it`);
    const retryAfter = this.#publishes.tryTake(client, count);
    if (retryAfter === 0) return;
    this.metrics.limited('publish_rate');
    throw new PushError('rate_limited', `more than ${this.options.publishRate} published messages per second`, { retryAfter });
  }
}
