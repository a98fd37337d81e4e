/**
 * Prometheus metrics (GET /metrics). Counters on the hot path are plain numbers kept by the engine
 * and read at scrape time, so fan-out never pays for metric bookkeeping per delivery.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { ChannelEngine } from './engine/engine.js';

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
}

export function createMetrics(engine: ChannelEngine): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'edgepush_process_' });
  const badInput = new Counter({ name: 'edgepush_bad_input_total', help: 'Client input refused, by transport and error code.', labelNames: ['transport', 'code'], registers: [registry] });
  const badRecords = new Counter({ name: 'edgepush_bad_records_total', help: 'Log records skipped because they could not be routed.', registers: [registry] });
  const connections = new Gauge({ name: 'edgepush_connections', help: 'Open client connections by transport.', labelNames: ['transport'], registers: [registry] });
  const slow = new Counter({ name: 'edgepush_slow_disconnects_total', help: 'Connections closed because their outbox passed the limit.', labelNames: ['transport'], registers: [registry] });
  const published = new Counter({ name: 'edgepush_published_messages_total', help: 'Messages accepted by publish.', registers: [registry] });
  const stats = engine.stats;
  const fromStats = (name: string, help: string, read: () => number): void => {
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  };
  fromStats('edgepush_records_total', 'Log records taken by the engine.', () => stats.records);
  fromStats('edgepush_duplicate_records_total', 'Log records skipped as already seen.', () => stats.duplicateRecords);
  fromStats('edgepush_messages_total', 'Channel messages dispatched.', () => stats.messages);
  fromStats('edgepush_deliveries_total', 'Messages handed to subscribers.', () => stats.deliveries);
  fromStats('edgepush_evicted_channels_total', 'Idle channels dropped by the LRU.', () => stats.evictedChannels);
  new Counter({
    name: 'edgepush_resets_total',
    help: 'Reset notices sent, by reason.',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [reason, count] of Object.entries(stats.resets)) this.inc({ reason }, count);
    },
  });
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
  return {
    registry,
    badInput: (transport, code) => badInput.inc({ transport, code }),
    badRecord: () => badRecords.inc(),
    connectionOpened: (transport) => connections.inc({ transport }),
    connectionClosed: (transport) => connections.dec({ transport }),
    slowDisconnect: (transport) => slow.inc({ transport }),
    published: (count) => published.inc(count),
  };
}
