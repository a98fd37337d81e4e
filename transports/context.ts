/** What every transport is given: the engine, publishing, metrics, options and a logger. */
import type { FastifyBaseLogger } from 'fastify';
import type { ServerOptions } from '../src/config.js';
import type { ChannelEngine } from '../src/engine/engine.js';
import type { Metrics } from '../src/metrics.js';
import type { Publisher } from '../src/publish/publisher.js';
import type { Resumer } from '../src/resume/resumer.js';

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
}
