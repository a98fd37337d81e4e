/**
 * What the status page shows (GET /status.json, transports/operator-routes.ts): a snapshot of this
 * node's traffic, assembled from counters the engine, the resumer, the transports and the source
 * keep anyway. Rates are differences between two snapshots. A snapshot is taken at most every
 * SAMPLE_MS however many pages are open, and costs one pass over the channels and the connections
 * held: nothing on the delivery path.
 */
import type { ChannelEngine } from './engine/engine.js';
import type { Source } from './log/source.js';
import { TRANSPORTS, type Metrics, type Transport } from './metrics.js';
import type { Resumer } from './resume/resumer.js';

/** Shortest time between two snapshots: pages asking more often share the last one. */
const SAMPLE_MS = 500;
/** Rows in the busiest-channels and slowest-consumers lists. */
const TOP = 10;

/** One connection as the status page lists it. */
export interface ConsumerStatus {
  readonly session: string;
  readonly transport: Transport;
  /** The token's `sub`, null for anonymous and open connections. */
  readonly user: string | null;
  /** Bytes in its outbox, not yet taken by the network. */
  readonly bufferedBytes: number;
  readonly channels: number;
  /** When it connected, in ms. */
  readonly connectedAt: number;
}

/** Where the connections come from (the transports' connection registry). */
export interface ConsumerSource {
  /** The connections with the fullest outboxes, fullest first, at most `limit`. */
  slowest(limit: number): ConsumerStatus[];
}

export interface StatusSnapshot {
  /** When it was taken, in ms. */
  readonly time: number;
  /** Seconds the rates cover: since the previous snapshot (or since start, for the first). */
  readonly interval: number;
  readonly source: {
    readonly kind: string;
    /** False while the log cannot be read; null when the source does not say (the embedded log). */
    readonly reachable: boolean | null;
    /** Records written and not yet read, per partition (-1 before the first read); null when the source has no lag (the embedded log). */
    readonly lag: readonly { readonly topic: string; readonly partition: number; readonly records: number }[] | null;
  };
  readonly connections: Readonly<Record<Transport, number>>;
  /** Per second over the interval. */
  readonly rates: Activity;
  readonly channels: { readonly active: number; readonly idle: number };
  /** The channels that took the most messages over the interval, busiest first. */
  readonly busiestChannels: readonly { readonly channel: string; readonly rate: number; readonly subscribers: number }[];
  /** The connections with the fullest outboxes, fullest first (none when every outbox is empty). */
  readonly slowestConsumers: readonly ConsumerStatus[];
}

/** The node's activity: counts since start as the counters hold them, or per second as a snapshot's rates. */
export interface Activity {
  /** Messages handed to subscribers. */
  readonly deliveries: number;
  /** Channel messages taken from the log (ingest). */
  readonly messages: number;
  /** Log records taken from the log. */
  readonly records: number;
  /** Publish requests answered ok. */
  readonly published: number;
  readonly writtenBytes: Readonly<Record<Transport, number>>;
  /** Subscribes and polls with a cursor, by how they were served. */
  readonly resumes: { readonly ring: number; readonly log: number; readonly reset: number };
}

/** The counters rates are computed from, as one snapshot read them. */
interface Counters extends Activity {
  readonly time: number;
}

export class StatusSampler {
  #previous: Counters;
  #last: StatusSnapshot | undefined;

  constructor(
    private readonly engine: ChannelEngine,
    private readonly source: Source,
    private readonly resumer: Resumer,
    private readonly metrics: Metrics,
    private readonly consumers: ConsumerSource,
    private readonly now: () => number = Date.now,
  ) {
    this.#previous = this.#read(now());
  }

  /** The latest snapshot, taken now unless one was taken less than SAMPLE_MS ago. */
  snapshot(): StatusSnapshot {
    const time = this.now();
    if (this.#last && time - this.#last.time < SAMPLE_MS) return this.#last;
    const current = this.#read(time);
    const previous = this.#previous;
    const seconds = (time - previous.time) / 1000;
    const rate = (now: number, then: number): number => (seconds > 0 ? (now - then) / seconds : 0);
    const health = this.source.health?.();
    this.#previous = current;
    this.#last = {
      time,
      interval: seconds,
      source: {
        kind: this.source.kind,
        reachable: health ? health.reachable : null,
        lag: health ? health.partitions.map((p) => ({ topic: p.topic, partition: p.partition, records: p.lag })) : null,
      },
      connections: { ...this.metrics.connections },
      rates: {
        deliveries: rate(current.deliveries, previous.deliveries),
        messages: rate(current.messages, previous.messages),
        records: rate(current.records, previous.records),
        published: rate(current.published, previous.published),
        writtenBytes: perTransport((t) => rate(current.writtenBytes[t], previous.writtenBytes[t])),
        resumes: {
          ring: rate(current.resumes.ring, previous.resumes.ring),
          log: rate(current.resumes.log, previous.resumes.log),
          reset: rate(current.resumes.reset, previous.resumes.reset),
        },
      },
      channels: this.engine.channelCounts,
      busiestChannels: this.engine.busiestChannels(TOP).map((c) => ({ channel: c.channel, rate: rate(c.messages, 0), subscribers: c.subscribers })),
      slowestConsumers: this.consumers.slowest(TOP),
    };
    return this.#last;
  }

  #read(time: number): Counters {
    const { stats } = this.engine;
    const resumes = this.resumer.stats;
    return {
      time,
      deliveries: stats.deliveries,
      messages: stats.messages,
      records: stats.records,
      published: this.metrics.publishResults.ok,
      writtenBytes: { ...this.metrics.writtenBytes },
      resumes: { ring: resumes.ring, log: resumes.log, reset: Object.values(resumes.reset).reduce((sum, n) => sum + n, 0) },
    };
  }
}

function perTransport(value: (transport: Transport) => number): Record<Transport, number> {
  return Object.fromEntries(TRANSPORTS.map((t) => [t, value(t)])) as Record<Transport, number>;
}
