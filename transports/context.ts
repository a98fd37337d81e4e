/** What every transport is given: the engine, publishing, metrics, options and a logger. */
import type { FastifyBaseLogger } from 'fastify';
import type { ServerOptions } from '../src/config.js';
import type { DeepResume, DeepResumeResult } from '../src/engine/deep-resume.js';
import type { ChannelEngine, ResumePoint } from '../src/engine/engine.js';
import type { Metrics } from '../src/metrics.js';
import type { Publisher } from '../src/publish/publisher.js';

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
  /** Present when the source can read its past: cursors older than the rings are served from it. */
  readonly deep?: DeepResume;
}

/** Deep resume when the source supports it; otherwise the resume point as it is. */
export function resolveDeep(ctx: TransportContext, channels: readonly string[], from: ResumePoint): Promise<DeepResumeResult> | DeepResumeResult {
  return ctx.deep ? ctx.deep.resolve(channels, from) : { from, messages: [], resets: [] };
}
