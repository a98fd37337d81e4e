/**
 * The HTTP server: one fastify app with every transport registered on it. It wires, it does not
 * decide: each route lives in its own file and talks to the engine through the TransportContext.
 */
import websocketPlugin from '@fastify/websocket';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { ServerOptions } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import type { ChannelEngine } from '../src/engine/engine.js';
import type { Metrics } from '../src/metrics.js';
import type { Publisher } from '../src/publish/publisher.js';
import type { Resumer } from '../src/resume/resumer.js';
import type { Source } from '../src/log/source.js';
import type { TransportContext } from './context.js';
import { registerCors } from './cors.js';
import { registerHealth } from './health-route.js';
import { registerHistory } from './history-route.js';
import { sendError, toPushError } from './http-errors.js';
import { registerPolling } from './polling.js';
import { registerPublish } from './publish-route.js';
import { registerSse } from './sse.js';
import { registerStaticFiles } from './static-files.js';
import { maxWebSocketPayload, registerWebSocket } from './websocket.js';
import { PushError } from '../src/errors.js';

export interface ServerParts {
  readonly options: ServerOptions;
  readonly engine: ChannelEngine;
  readonly publisher: Publisher;
  readonly metrics: Metrics;
  readonly source: Source;
  /** Folder served at `/` (the demo page and client). */
  readonly publicDir?: string;
  /** The process logger (pino); HTTP lines share it. */
  readonly logger?: FastifyBaseLogger;
  /** Subscribe-and-resume (reads the log back where the rings fall short, when it can). */
  readonly resumer: Resumer;
}

export async function buildServer(parts: ServerParts): Promise<FastifyInstance> {
  const { options, metrics } = parts;
  const app = Fastify({
    loggerInstance: parts.logger ?? createLogger(options.logLevel),
    // Every long-poll is a request: two info lines each would drown the log. Errors still log.
    logController: new LogController({ disableRequestLogging: true }),
    // Long-lived streams must not be cut by Node's defaults; liveness is the heartbeats' job.
    requestTimeout: 0,
    connectionTimeout: 0,
    return503OnClosing: true,
  });
  const shutdownHooks: (() => void)[] = [];
  // Registered before the WebSocket plugin so our goodbye (close code 4001, "resume elsewhere")
  // reaches clients before the plugin's own generic close.
  app.addHook('preClose', (done) => {
    for (const hook of shutdownHooks) hook();
    done();
  });
  await app.register(websocketPlugin, { options: { maxPayload: maxWebSocketPayload(options.maxMessageBytes), perMessageDeflate: false } });

  const ctx: TransportContext = {
    engine: parts.engine,
    publisher: parts.publisher,
    metrics,
    options,
    log: app.log,
    onShutdown: (hook) => shutdownHooks.push(hook),
    resumer: parts.resumer,
  };
  registerCors(app, options);
  app.setErrorHandler((error, request, reply) => {
    const pushError = toPushError(error);
    if (pushError.code === 'internal') request.log.error({ err: error }, 'request failed');
    // Only what the client got wrong counts as bad input; an outage (503) does not.
    else if (pushError.status < 500) metrics.badInput('http', pushError.code);
    return sendError(reply, pushError);
  });
  app.setNotFoundHandler((request, reply) => sendError(reply, new PushError('not_found', `no route ${request.method} ${request.url.split('?')[0]}`)));

  registerHealth(app, ctx, parts.source);
  registerPublish(app, ctx);
  registerHistory(app, ctx);
  registerSse(app, ctx);
  registerPolling(app, ctx);
  registerWebSocket(app, ctx);
  if (parts.publicDir) registerStaticFiles(app, parts.publicDir);
  return app;
}
