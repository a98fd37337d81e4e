/**
 * Composition root: options → source → engine → HTTP server. No logic of its own; everything it
 * wires is tested on its own, and this is what the CLI, the tests and the benchmarks all start.
 */
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildServer } from '../transports/server.js';
import { checkIdentityOptions, isOpenMode, type ServerOptions } from './config.js';
import { drain } from '../transports/drain.js';
import { startMetricsListener } from '../transports/metrics-listener.js';
import { ConnectionRegistry } from '../transports/connection-registry.js';
import { startMarketFeed, type MarketFeed } from './demo/market-feed.js';
import { startVehicleFeed, type VehicleFeed } from './demo/vehicle-feed.js';
import { ChannelEngine } from './engine/engine.js';
import { createMetrics } from './metrics.js';
import { StatusSampler } from './status.js';
import { packageRoot } from './package-root.js';
import { Publisher } from './publish/publisher.js';
import { LogReadBack, isRangeSource } from './resume/log-read-back.js';
import { Resumer } from './resume/resumer.js';
import { kafkaOptionsOf } from './kafka/kafka-options.js';
import { KafkaSource } from './kafka/kafka-source.js';
import { createLogger, rateLimitedLog } from './logger.js';
import { createIngest } from './routing/ingest.js';
import { KeyRouter, type RecordRouter } from './routing/record-router.js';
import { CompiledRule, RuleRouter } from './routing/rule-router.js';
import { EmbeddedLog } from './log/embedded-log.js';
import type { Source } from './log/source.js';

export interface RunningServer {
  readonly app: FastifyInstance;
  readonly engine: ChannelEngine;
  readonly source: Source;
  /** `http://host:port` as bound (the real port when port 0 was asked for). */
  readonly url: string;
  readonly port: number;
  /** `http://host:port` of the /metrics listener when metricsPort is set. */
  readonly metricsUrl: string | undefined;
  /** Drains (transports/drain.ts: at most drainTimeout seconds), then closes the source. */
  close(): Promise<void>;
}

export interface StartExtras {
  /** Defaults to a new embedded log. */
  readonly source?: Source;
  /** Folder served at `/`; defaults to the package's public/; false serves nothing. */
  readonly publicDir?: string | false;
}

export async function startServer(options: ServerOptions, extras: StartExtras = {}): Promise<RunningServer> {
  // Options given in code skip resolveOptions: their security rules hold all the same.
  checkIdentityOptions(options);
  const log = createLogger(options.logLevel);
  const kafka = kafkaOptionsOf(options);
  const source = extras.source ?? (kafka ? await KafkaSource.connect(kafka, log) : new EmbeddedLog());
  let router: RecordRouter = new KeyRouter(options.maxMessageBytes);
  if (kafka && source instanceof KafkaSource) {
    const rules = new Map(kafka.topics.map((topic) => [topic.topic, new CompiledRule(topic, options.maxMessageBytes)]));
    router = new RuleRouter(source.partitionTopics.map((topic) => rules.get(topic) as CompiledRule));
  }
  const engine = new ChannelEngine({
    epoch: source.epoch,
    partitions: source.partitions,
    start: source.start,
    ring: { maxCount: options.historySize, maxBytes: options.historyBytes, maxAgeMs: options.historyTtl * 1000 },
    maxIdleChannels: options.maxIdleChannels,
    maxIdleBytes: options.maxIdleBytes,
  });
  const resumer = new Resumer(engine, isRangeSource(source) ? new LogReadBack(source, router, log) : undefined, options);
  const metrics = createMetrics(engine, source, resumer);
  const publisher = new Publisher(source, { maxMessageBytes: options.maxMessageBytes, idempotencyTtl: options.idempotencyTtl, allowClientPublish: options.allowPublish }, metrics.published, metrics.publishResult);
  const publicDir = extras.publicDir === false ? undefined : (extras.publicDir ?? join(packageRoot(), 'public'));
  const connections = new ConnectionRegistry();
  const status = new StatusSampler(engine, source, resumer, metrics, connections);
  const app = await buildServer({ options, engine, publisher, metrics, source, resumer, connections, status, logger: log, ...(publicDir ? { publicDir } : {}) });

  engine.onDeliveryError = (error, channel) => app.log.error({ err: error, channel }, 'delivery to a subscriber failed');
  const logBadRecord = rateLimitedLog(10, (line, details) => app.log.warn(details ?? {}, line));
  await source.open(
    createIngest(engine, router, (record, problem) => {
      metrics.badRecord();
      const where = source instanceof KafkaSource ? { topic: source.partitionTopics[record.partition] } : {};
      logBadRecord(`skipped a log record: ${problem}`, { ...where, partition: record.partition, offset: record.offset });
    }),
  );
  // One line per address listened on (fastify's own "Server listening at" said it twice over).
  await app.listen({ port: options.port, host: options.host, backlog: options.listenBacklog, listenTextResolver: (address) => `edgepush listening on ${address}` });
  if (isOpenMode(options)) {
    app.log.warn('OPEN MODE: no identity is configured (jwtSecret, jwtJwksUrl, apiKeys, anonymousCaps), so anyone who can reach this server may subscribe to, read and publish on every channel; fine for development, never for production (docs/security.md)');
  }
  const metricsServer = options.metricsPort >= 0 ? await startMetricsListener(metrics, status, options) : undefined;
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const url = urlOf(app, options.host);

  let feed: MarketFeed | undefined;
  let vehicles: VehicleFeed | undefined;
  if (options.demo) {
    const onError = (error: unknown): void => app.log.warn({ err: error }, 'demo publish failed');
    feed = startMarketFeed(publisher, onError);
    // The map is published again well within historyTtl, so that snapshot=latest always finds it.
    vehicles = startVehicleFeed(publisher, onError, { mapEveryMs: Math.min(60_000, options.historyTtl * 500) });
  }

  let closing: Promise<void> | undefined;
  return {
    app,
    engine,
    source,
    url,
    port,
    metricsUrl: metricsServer ? urlOf(metricsServer, options.host) : undefined,
    close() {
      closing ??= (async () => {
        feed?.stop();
        vehicles?.stop();
        await drain(app, options.drainTimeout * 1000);
        await metricsServer?.close();
        await source.close();
      })();
      return closing;
    },
  };
}

/** `http://host:port` of a listening server, with a wildcard address given as loopback. */
function urlOf(app: FastifyInstance, listenHost: string): string {
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const host = listenHost === '0.0.0.0' || listenHost === '::' ? '127.0.0.1' : listenHost;
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}
