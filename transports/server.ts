/**
 * The HTTP server: one fastify app with every transport registered on it. It wires, it does not
 * decide: each route lives in its own file and talks to the engine through the TransportContext.
 */
import { createServer, type IncomingMessage, type RequestListener, type Server } from 'node:http';
import type { Socket } from 'node:net';
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
import { countRefusal, sendError, toPushError } from './http-errors.js';
import { createPollRoute, isPollRequest } from './polling.js';
import { registerPublish } from './publish-route.js';
import type { RawHandler } from './raw-http.js';
import { registerSse } from './sse.js';
import { registerStaticFiles, registerVendorMqtt } from './static-files.js';
import { maxWebSocketPayload, registerWebSocket } from './websocket.js';
import { PushError } from '../src/errors.js';
import { Authenticator, type AuthOptions } from '../src/auth/authenticator.js';
import { apiKeysOf } from '../src/config.js';
import { jsonTooDeep } from '../src/protocol/json-depth.js';
import { rateLimitedLog } from '../src/logger.js';
import { ConnectionGuard } from './connection-guard.js';
import type { ConnectionRegistry } from './connection-registry.js';
import { CorsPolicy } from './cors.js';
import { registerServerApi } from './server-api-route.js';
import { registerOperatorRoutes } from './operator-routes.js';
import { checkMetricsAccess } from './metrics-access.js';
import type { StatusSampler } from '../src/status.js';
import { chooseSubprotocol, registerMqtt } from './mqtt.js';
import { MAX_HEADER_BYTES, answerClientError, onWebSocketError } from './protocol-errors.js';

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
  /** This node's connections (the status page reads them too). */
  readonly connections: ConnectionRegistry;
  /** The status page's snapshots. */
  readonly status: StatusSampler;
}

export async function buildServer(parts: ServerParts): Promise<FastifyInstance> {
  const { options, metrics } = parts;
  // Long-polls are served below fastify (see polling.ts), except while the server shuts down,
  // when fastify answers every request with its 503.
  let poll: RawHandler | undefined;
  let closing = false;
  const app = Fastify({
    serverFactory: (fastifyHandler) =>
      createHttpServer(options, (request, response) => {
        if (poll !== undefined && !closing && isPollRequest(request)) poll(request, response);
        else fastifyHandler(request, response);
      }),
    // A request the HTTP parser refuses, or a URL that cannot be decoded, gets our error body.
    clientErrorHandler: answerClientError,
    frameworkErrors: (error, _request, reply) => {
      const pushError = new PushError('bad_request', error.message);
      countRefusal(metrics, 'http', pushError);
      return sendError(reply, pushError);
    },
    loggerInstance: parts.logger ?? createLogger(options.logLevel),
    // Every long-poll is a request: two info lines each would drown the log. Errors still log.
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
    trustProxy: options.trustProxy,
  });
  const shutdownHooks: (() => void)[] = [];
  // Registered before the WebSocket plugin so our goodbye (close code 4001, "resume elsewhere")
  // reaches clients before the plugin's own generic close.
  app.addHook('preClose', (done) => {
    closing = true;
    for (const hook of shutdownHooks) hook();
    done();
  });

  const auth = new Authenticator({
    secret: options.jwtSecret || undefined,
    jwksUrl: options.jwtJwksUrl || undefined,
    audience: options.jwtAudience || undefined,
    issuer: options.jwtIssuer || undefined,
    apiKeys: apiKeysOf(options),
    anonymousCaps: options.anonymousCaps ?? undefined,
  } as AuthOptions);
  const errorLog = rateLimitedLog(5, (line, details) => app.log.error(details ?? {}, line));
  const ctx: TransportContext = {
    engine: parts.engine,
    publisher: parts.publisher,
    metrics,
    options,
    log: app.log,
    onShutdown: (hook) => shutdownHooks.push(hook),
    resumer: parts.resumer,
    auth,
    guard: new ConnectionGuard(options, metrics),
    registry: parts.connections,
    cors: new CorsPolicy(options, auth.open),
    logError: (error, line) => errorLog(line, { err: error }),
  };
  await app.register(websocketPlugin, {
    options: { maxPayload: maxWebSocketPayload(options.maxMessageBytes), perMessageDeflate: false, handleProtocols: chooseSubprotocol },
    // Errors thrown by a route's handler; a socket's own errors go to the same function, through
    // the listener each transport puts on with forgetUpgradeRequest (http-detach.ts).
    errorHandler: (error, socket) => onWebSocketError(ctx, error, socket),
  });
  registerCors(app, ctx.cors);
  closeSilentConnections(app, options.headerTimeout * 1000);
  // New connections per second per client address, counted at each connection's first request. A
  // refused connection gets its 429 and is closed, so it cannot go on with keep-alive requests.
  app.addHook('onRequest', async (request, reply) => {
    try {
      ctx.guard.firstRequest(request.raw.socket, request.ip);
    } catch (error) {
      reply.header('connection', 'close');
      throw error;
    }
  });
  registerJsonBodies(app, options.maxJsonDepth);
  app.setErrorHandler((error, request, reply) => {
    const pushError = toPushError(error);
    if (pushError.code === 'internal') ctx.logError(error, `request failed: ${request.method} ${request.url.split('?')[0]}`);
    countRefusal(metrics, 'http', pushError);
    return sendError(reply, pushError);
  });
  app.setNotFoundHandler((request, reply) => sendError(reply, new PushError('not_found', `no route ${request.method} ${request.url.split('?')[0]}`)));

  registerHealth(app, parts.source);
  // On the main port only without a metrics listener (which serves them, open, instead).
  if (options.metricsPort < 0) registerOperatorRoutes(app, metrics, parts.status, (request) => checkMetricsAccess(ctx, request));
  registerPublish(app, ctx);
  registerServerApi(app, ctx, parts.source.control);
  registerHistory(app, ctx);
  registerSse(app, ctx);
  poll = createPollRoute(ctx);
  registerWebSocket(app, ctx);
  registerMqtt(app, ctx, parts.source.sessions);
  if (parts.publicDir) {
    registerStaticFiles(app, parts.publicDir);
    registerVendorMqtt(app);
  }
  return app;
}

/**
 * A TCP connection that never sends a byte is not a request yet, so Node's headersTimeout does
 * not see it: close it if no request has begun within `ms` (a cheap way to hold sockets otherwise).
 */
function closeSilentConnections(app: FastifyInstance, ms: number): void {
  const waiting = new Map<Socket, NodeJS.Timeout>();
  const begun = (socket: Socket): void => {
    const timer = waiting.get(socket);
    if (timer === undefined) return;
    clearTimeout(timer);
    waiting.delete(socket);
  };
  app.server.on('connection', (socket: Socket) => {
    waiting.set(socket, setTimeout(() => {
      waiting.delete(socket);
      socket.destroy();
    }, ms).unref());
    socket.once('close', () => begun(socket));
  });
  app.server.on('request', (request: IncomingMessage) => begun(request.socket));
  app.server.on('upgrade', (request: IncomingMessage) => begun(request.socket));
}

/**
 * The HTTP server, set up as fastify would set up its own, with `route` as its request listener.
 * Request lines and headers up to 64 KiB: a request of maxChannelsPerSubscription long channel
 * names, or a long cursor in both the query and Last-Event-ID, must fit (Node's default is 16 KiB).
 * A request must arrive in time: headers within headerTimeout (a connection that sends nothing, or
 * a slowloris, is closed), the whole request within REQUEST_TIMEOUT_MS, both checked every second.
 * Responses are not timed: long-lived streams are kept alive by their heartbeats.
 */
function createHttpServer(options: ServerOptions, route: RequestListener): Server {
  const server = createServer({ headersTimeout: options.headerTimeout * 1000, connectionsCheckingInterval: 1000, maxHeaderSize: MAX_HEADER_BYTES }, route);
  server.requestTimeout = Math.max(REQUEST_TIMEOUT_MS, options.headerTimeout * 1000);
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  server.setTimeout(0);
  return server;
}

/** Fastify's own default: longer than the idle timeout of common load balancers (60 s). */
const KEEP_ALIVE_TIMEOUT_MS = 72_000;

/** Longest time a client may take to send a whole request (headers and body). */
const REQUEST_TIMEOUT_MS = 30_000;

/**
 * JSON bodies, with the nesting checked before parsing: a deep body is a 400 like any other bad
 * JSON, not a stack overflow somewhere later.
 */
function registerJsonBodies(app: FastifyInstance, maxDepth: number): void {
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    const text = body as string;
    if (jsonTooDeep(text, maxDepth)) return done(new PushError('bad_json', `request body nests arrays and objects more than ${maxDepth} levels deep`), undefined);
    if (text.trim() === '') return done(new PushError('bad_json', 'request body is empty; send a JSON object'), undefined);
    try {
      done(null, JSON.parse(text, MAY_NAME_PROTO.test(text) ? dropProto : undefined));
    } catch (error) {
      done(new PushError('bad_json', `request body is not valid JSON: ${(error as Error).message}`), undefined);
    }
  });
}

/**
 * Text that may hold a `__proto__` key: spelled out, or with a \u escape in it. Only such a body
 * goes through the reviver, which makes a parse about five times slower (4.7 against 0.85 µs for
 * a 250-byte publish body).
 */
const MAY_NAME_PROTO = /__proto__|\\u/;

/** `__proto__` keys are dropped (as fastify's own parser does), so no body can reach a prototype. */
function dropProto(key: string, value: unknown): unknown {
  return key === '__proto__' ? undefined : value;
}
