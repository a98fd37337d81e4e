/** What every transport is given: the engine, publishing, metrics, options and a logger. */
import type { FastifyBaseLogger } from 'fastify';
import type { ServerOptions } from '../src/config.js';
import type { ChannelEngine } from '../src/engine/engine.js';
import type { Metrics } from '../src/metrics.js';
import type { Publisher } from '../src/publish/publisher.js';
import type { Resumer } from '../src/resume/resumer.js';
import type { Authenticator } from '../src/auth/authenticator.js';
import type { ConnectionGuard } from './connection-guard.js';
import type { CorsPolicy } from './cors.js';
import type { ConnectionRegistry } from './connection-registry.js';

export interface TransportContext {
  readonly engine: ChannelEngine;
  readonly publisher: Publisher;
  readonly metrics: Metrics;
  readonly options: ServerOptions;
  readonly log: FastifyBaseLogger;
  /**
   * Runs `hook` when the server starts shutting down, before it stops accepting connections, so a
   * transport can tell its clients to reconnect elsewhere (and resume) instead of just vanishing.
   */
  onShutdown(hook: () => void): void;
  /** Subscribe-and-resume for every transport: where a resumed stream starts. */
  readonly resumer: Resumer;
  /** Credentials → identity (entitlements are checked by the resumer and the publisher). */
  readonly auth: Authenticator;
  /** Connection and request limits. */
  readonly guard: ConnectionGuard;
  /** This node's WebSocket and SSE connections, for server-API commands. */
  readonly registry: ConnectionRegistry;
  /** Which pages may connect (CORS, and the WebSocket upgrade's Origin). */
  readonly cors: CorsPolicy;
  /** Logs an unexpected error, at most a few lines per second whatever the request rate. */
  logError(error: unknown, line: string): void;
}
