/**
 * Prometheus metrics (GET /metrics). Counters on the hot path are plain numbers kept by the engine
 * and the transports and read at scrape time, so fan-out never pays for metric bookkeeping per
 * delivery.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client';
import type { ChannelEngine } from './engine/engine.js';
import type { LatencyHistogram } from './engine/latency-histogram.js';
import type { PublishOutcome } from './publish/publisher.js';
import type { Resumer } from './resume/resumer.js';
import type { Source } from './log/source.js';

/** The transports clients connect with (the `transport` label). */
export const TRANSPORTS = ['ws', 'sse', 'poll', 'mqtt'] as const;
export type Transport = (typeof TRANSPORTS)[number];

const PUBLISH_OUTCOMES: readonly PublishOutcome[] = ['ok', 'duplicate', 'refused', 'invalid', 'too_large', 'rate_limited', 'failed'];

/** Held long-polls, as the poll spool counts them. */
export interface PollWaiterCounts {
  /** Polls held, waiting for a message or their timeout. */
  readonly waiters: number;
  /** Distinct (channels, cursor, options) among them: each shares one engine registration and one reply body. */
  readonly groups: number;
}

export interface Metrics {
  readonly registry: Registry;
  /** Open connections by transport (a held long-poll counts while it waits). */
  readonly connections: Readonly<Record<Transport, number>>;
  /**
   * Bytes handed to clients' sockets, by transport: the transports add to these plain numbers as
   * they write (no call per write), and /metrics reads them.
   */
  readonly writtenBytes: Record<Transport, number>;
  /** Publish requests answered, by outcome. */
  readonly publishResults: Readonly<Record<PublishOutcome, number>>;
  /** A client sent something the server refused (the code is the error code it got). */
  badInput(transport: string, code: string): void;
  /** A log record could not be routed and was skipped. */
  badRecord(): void;
  connectionOpened(transport: Transport): void;
  connectionClosed(transport: Transport): void;
  slowDisconnect(transport: Transport): void;
  published(count: number): void;
  /** A publish request (one message or a batch, from any way in) answered with `outcome`. */
  publishResult(outcome: PublishOutcome): void;
  /** Where the held long-polls are counted (the poll spool), read at scrape time. */
  watchPollWaiters(read: () => PollWaiterCounts): void;
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
  const connections = perTransport();
  const writtenBytes = perTransport();
  gaugeByLabel(registry, 'edgepush_connections', 'Open client connections by transport.', 'transport', connections);
  counterByLabel(registry, 'edgepush_written_bytes_total', 'Bytes handed to client sockets, by transport.', 'transport', writtenBytes);
  const slow = new Counter({ name: 'edgepush_slow_disconnects_total', help: 'Connections closed because their outbox passed the limit.', labelNames: ['transport'], registers: [registry] });
  const limited = new Counter({ name: 'edgepush_limited_total', help: 'Requests, ops and connections refused by a limit, by limit.', labelNames: ['limit'], registers: [registry] });
  const auth = new Counter({ name: 'edgepush_auth_total', help: 'Credential checks by outcome (ok, refused: 401, forbidden: 403) and reason.', labelNames: ['outcome', 'reason'], registers: [registry] });
  const control = new Counter({ name: 'edgepush_server_api_connections_total', help: 'Connections on this node acted on by server-API commands, by command.', labelNames: ['type'], registers: [registry] });
  const published = new Counter({ name: 'edgepush_published_messages_total', help: 'Messages accepted by publish.', registers: [registry] });
  const publishResults = Object.fromEntries(PUBLISH_OUTCOMES.map((outcome) => [outcome, 0])) as Record<PublishOutcome, number>;
  counterByLabel(registry, 'edgepush_publish_results_total', 'Publish requests answered, by outcome (ok, duplicate, refused, invalid, too_large, rate_limited, failed).', 'outcome', publishResults);
  const stats = engine.stats;
  const fromStats = (name: string, help: string, read: () => number): void => scrapedCounter(registry, name, help, read);
  fromStats('edgepush_records_total', 'Log records taken by the engine.', () => stats.records);
  fromStats('edgepush_duplicate_records_total', 'Log records skipped as already seen.', () => stats.duplicateRecords);
  fromStats('edgepush_messages_total', 'Channel messages dispatched.', () => stats.messages);
  fromStats('edgepush_deliveries_total', 'Messages handed to subscribers.', () => stats.deliveries);
  fromStats('edgepush_evicted_channels_total', 'Idle channels dropped by the LRU.', () => stats.evictedChannels);
  fromStats('edgepush_elided_messages_total', 'Messages replaced by a newer one of their channel within an eliding interval (maxRate), per eliding class.', () => engine.elider.stats.elided);
  fromStats('edgepush_conflated_messages_total', 'Messages a conflating connection (onSlow=conflate) replaced by a newer one before writing.', () => stats.conflatedMessages);
  counterByLabel(registry, 'edgepush_delta_saved_bytes_total', 'Bytes deltas saved by codec: full message minus delta, once per delta computed.', 'codec', stats.deltaSavedBytes);
  registerScrapedHistogram(registry, 'edgepush_delivery_latency_seconds', 'Seconds from a message\'s log timestamp to the end of its fan-out to the subscribers\' sockets, once per message.', engine.deliveryLatency);
  let pollWaiters: () => PollWaiterCounts = () => ({ waiters: 0, groups: 0 });
  scrapedGauge(registry, 'edgepush_poll_waiters', 'Long-polls held, waiting for a message or their timeout.', () => pollWaiters().waiters);
  scrapedGauge(registry, 'edgepush_poll_waiter_groups', 'Distinct channels, cursor and options among held long-polls (each group shares one registration and one reply).', () => pollWaiters().groups);
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
  if (source) registerControlLogs(registry, source);
  if (source?.health) registerSourceHealth(registry, source.health.bind(source));
  return {
    registry,
    connections,
    writtenBytes,
    publishResults,
    badInput: (transport, code) => badInput.inc({ transport, code }),
    badRecord: () => badRecords.inc(),
    connectionOpened: (transport) => connections[transport]++,
    connectionClosed: (transport) => connections[transport]--,
    slowDisconnect: (transport) => slow.inc({ transport }),
    published: (count) => published.inc(count),
    publishResult: (outcome) => publishResults[outcome]++,
    watchPollWaiters: (read) => (pollWaiters = read),
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

/** The server-API and MQTT-session logs every node reads: commands applied, records skipped as no command. */
function registerControlLogs(registry: Registry, source: Source): void {
  new Counter({
    name: 'edgepush_control_log_records_total',
    help: 'Records of the control and sessions logs read by this node, by log (control, sessions) and outcome (applied, skipped: not a command).',
    labelNames: ['log', 'outcome'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [log, reader] of [['control', source.control], ['sessions', source.sessions]] as const) {
        this.inc({ log, outcome: 'applied' }, reader.received);
        this.inc({ log, outcome: 'skipped' }, reader.undecodable);
      }
    },
  });
}

function perTransport(): Record<Transport, number> {
  return { ws: 0, sse: 0, poll: 0, mqtt: 0 };
}

/** A counter with one label, read at scrape time from a record of plain numbers (every key a sample, zeros included). */
function counterByLabel(registry: Registry, name: string, help: string, label: string, values: Readonly<Record<string, number>>): void {
  new Counter({
    name,
    help,
    labelNames: [label],
    registers: [registry],
    collect() {
      this.reset();
      for (const [key, value] of Object.entries(values)) this.inc({ [label]: key }, value);
    },
  });
}

/** A gauge with one label, read at scrape time like counterByLabel's. */
function gaugeByLabel(registry: Registry, name: string, help: string, label: string, values: Readonly<Record<string, number>>): void {
  new Gauge({
    name,
    help,
    labelNames: [label],
    registers: [registry],
    collect() {
      for (const [key, value] of Object.entries(values)) this.set({ [label]: key }, value);
    },
  });
}

/**
 * A histogram kept in plain numbers (LatencyHistogram), exported at scrape time. prom-client's own
 * Histogram can only be fed observation by observation; the registry takes any metric that answers
 * get() with its samples, which is all this is.
 */
function registerScrapedHistogram(registry: Registry, name: string, help: string, histogram: LatencyHistogram): void {
  const metric = {
    name,
    help,
    type: 'histogram',
    aggregator: 'sum',
    get: async () => {
      let cumulative = 0;
      const buckets = histogram.bounds.map((bound, i) => {
        cumulative += histogram.counts[i] as number;
        return { metricName: `${name}_bucket`, labels: { le: bound }, value: cumulative };
      });
      return {
        name,
        help,
        type: 'histogram',
        aggregator: 'sum',
        values: [
          ...buckets,
          { metricName: `${name}_bucket`, labels: { le: '+Inf' }, value: histogram.count },
          { metricName: `${name}_sum`, labels: {}, value: histogram.sum },
          { metricName: `${name}_count`, labels: {}, value: histogram.count },
        ],
      };
    },
    // Nothing to forget: the numbers belong to the engine.
    reset: () => {},
  };
  registry.registerMetric(metric as unknown as Metric);
}

/** A gauge whose value is read at scrape time. */
function scrapedGauge(registry: Registry, name: string, help: string, read: () => number): void {
  new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      this.set(read());
    },
  });
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
