/**
 * Prometheus metrics (GET /metrics). Counters on the hot path are plain numbers kept by the engine
 * and read at scrape time, so fan-out never pays for metric bookkeeping per delivery.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { ChannelEngine } from './engine/engine.js';
import type { Resumer } from './resume/resumer.js';
import type { Source } from './log/source.js';

export interface Metrics {
  readonly registry: Registry;
  /** A client sent something the server refused (the code is the error code it got). */
  badInput(transport: string, code: string): void;
  /** A log record could not be routed and was skipped. */
  badRecord(): void;
  connectionOpened(transport: string): void;
  connectionClosed(transport: string): void;
  slowDisconnect(transport: string): void;
  published(count: number): void;
  /** A request, op or connection refused by a limit (`connections_per_ip`, `op_rate`, ...). */
  limited(limit: string): void;
  /** Credentials checked: `outcome` is ok, refused (401) or forbidden (403). */
  auth(outcome: 'ok' | 'refused' | 'forbidden', reason?: string): void;
  /** A server-API command acted on by this node (`type`), for as many connections as `count`. */
  controlApplied(type: string, count: number): void;
}

export function createMetrics(engine: ChannelEngine, source?: Source, resumer?: Resumer): Metrics {
  const registry = new Registry();
  // Under their standard names (process_cpu_seconds_total, nodejs_*): what stock dashboards query.
  collectDefaultMetrics({ register: registry });
  const badInput = new Counter({ name: 'edgepush_bad_input_total', help: 'Client input refused, by transport and error code.', labelNames: ['transport', 'code'], registers: [registry] });
  const badRecords = new Counter({ name: 'edgepush_bad_records_total', help: 'Log records skipped because they could not be routed.', registers: [registry] });
  const connections = new Gauge({ name: 'edgepush_connections', help: 'Open client connections by transport.', labelNames: ['transport'], registers: [registry] });
  const slow = new Counter({ name: 'edgepush_slow_disconnects_total', help: 'Connections closed because their outbox passed the limit.', labelNames: ['transport'], registers: [registry] });
  const limited = new Counter({ name: 'edgepush_limited_total', help: 'Requests, ops and connections refused by a limit, by limit.', labelNames: ['limit'], registers: [registry] });
  const auth = new Counter({ name: 'edgepush_auth_total', help: 'Credential checks by outcome (ok, refused: 401, forbidden: 403) and reason.', labelNames: ['outcome', 'reason'], registers: [registry] });
  const control = new Counter({ name: 'edgepush_server_api_connections_total', help: 'Connections on this node acted on by server-API commands, by command.', labelNames: ['type'], registers: [registry] });
  const published = new Counter({ name: 'edgepush_published_messages_total', help: 'Messages accepted by publish.', registers: [registry] });
  const stats = engine.stats;
  const fromStats = (name: string, help: string, read: () => number): void => scrapedCounter(registry, name, help, read);
  fromStats('edgepush_records_total', 'Log records taken by the engine.', () => stats.records);
  fromStats('edgepush_duplicate_records_total', 'Log records skipped as already seen.', () => stats.duplicateRecords);
  fromStats('edgepush_messages_total', 'Channel messages dispatched.', () => stats.messages);
  fromStats('edgepush_deliveries_total', 'Messages handed to subscribers.', () => stats.deliveries);
  fromStats('edgepush_evicted_channels_total', 'Idle channels dropped by the LRU.', () => stats.evictedChannels);
  new Counter({
    name: 'edgepush_resets_total',
    help: 'Cursors the rings alone could not honour, by reason (the log may still have answered them: see edgepush_resumes_total).',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [reason, count] of Object.entries(stats.resets)) this.inc({ reason }, count);
    },
  });
  if (resumer) registerResumeOutcomes(registry, resumer);
  new Gauge({
    name: 'edgepush_channels',
    help: 'Channels held, by state (active: has subscribers).',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const counts = engine.channelCounts;
      this.set({ state: 'active' }, counts.active);
      this.set({ state: 'idle' }, counts.idle);
    },
  });
  if (source?.health) registerSourceHealth(registry, source.health.bind(source));
  return {
    registry,
    badInput: (transport, code) => badInput.inc({ transport, code }),
    badRecord: () => badRecords.inc(),
    connectionOpened: (transport) => connections.inc({ transport }),
    connectionClosed: (transport) => connections.dec({ transport }),
    slowDisconnect: (transport) => slow.inc({ transport }),
    published: (count) => published.inc(count),
    limited: (limit) => limited.inc({ limit }),
    auth: (outcome, reason = '') => auth.inc({ outcome, reason }),
    controlApplied: (type, count) => control.inc({ type }, count),
  };
}

/** Kafka's side, read at scrape time: per-partition progress and lag, failures by kind. */
function registerSourceHealth(registry: Registry, health: NonNullable<Source['health']>): void {
  const perPartition = (name: string, help: string, read: (p: ReturnType<typeof health>['partitions'][number]) => number): void => {
    new Gauge({
      name,
      help,
      labelNames: ['topic', 'partition'],
      registers: [registry],
      collect() {
        this.reset();
        for (const p of health().partitions) {
          const value = read(p);
          // -1 means "not known yet": no sample rather than a misleading one.
          if (value >= 0) this.set({ topic: p.topic, partition: String(p.partition) }, value);
        }
      },
    });
  };
  perPartition('edgepush_kafka_high_watermark', 'The partition\'s end offset (next to be written), as last fetched.', (p) => p.highWatermark);
  perPartition('edgepush_kafka_position', 'The next offset this node reads from the partition.', (p) => p.position);
  perPartition('edgepush_kafka_lag_records', 'Records written to the partition and not yet read by this node.', (p) => p.lag);
  perPartition('edgepush_kafka_newest_record_age_seconds', 'Age of the newest record ingested from the partition (record timestamp to now).', (p) => p.newestRecordAgeSeconds);
  new Gauge({
    name: 'edgepush_kafka_reachable',
    help: '1 while the tail reads Kafka, 0 while it cannot (broker down, topic missing, credentials refused).',
    registers: [registry],
    collect() {
      this.set(health().reachable ? 1 : 0);
    },
  });
  new Counter({
    name: 'edgepush_kafka_read_failures_total',
    help: 'Failed reads of Kafka by kind (unreachable, authentication, missing_topic, other).',
    labelNames: ['kind'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [kind, count] of Object.entries(health().failures)) this.inc({ kind }, count);
    },
  });
  const total = (name: string, help: string, read: () => number): void => scrapedCounter(registry, name, help, read);
  total('edgepush_kafka_skipped_records_total', 'Records deleted by retention before this node could read them.', () => health().skippedRecords);
  total('edgepush_kafka_records_read_back_total', 'Records read back from Kafka for deep resumes.', () => health().recordsReadBack);
}

/** How subscribes and polls with a cursor were served: from the rings, from the log, or with a reset. */
function registerResumeOutcomes(registry: Registry, resumer: Resumer): void {
  const stats = resumer.stats;
  new Counter({
    name: 'edgepush_resumes_total',
    help: 'Subscribes and polls served: from the rings, or reading the log (outcome ring | log).',
    labelNames: ['outcome'],
    registers: [registry],
    collect() {
      this.reset();
      this.inc({ outcome: 'ring' }, stats.ring);
      this.inc({ outcome: 'log' }, stats.log);
    },
  });
  new Counter({
    name: 'edgepush_resume_resets_total',
    help: 'Subscribes and polls that sent a reset notice (the data was really gone), by reason.',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [reason, count] of Object.entries(stats.reset)) this.inc({ reason }, count);
    },
  });
  scrapedCounter(registry, 'edgepush_resume_records_read_back_total', 'Log records read back to serve resumes.', () => stats.recordsReadBack);
}

/** A counter whose value is read at scrape time from a plain number kept elsewhere. */
function scrapedCounter(registry: Registry, name: string, help: string, read: () => number): void {
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}
