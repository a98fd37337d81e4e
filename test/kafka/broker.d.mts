// Types for broker.mjs, which stays plain JavaScript so it can run as a CLI without a build step.

/** Exact Kafka versions the harness is tested with (newest 4.1.x and newest 3.9.x on Maven Central). */
export declare const KAFKA_VERSIONS: {
  readonly latest: '4.1.2';
  readonly previous: '3.9.2';
};

export type KafkaAvailability = { ok: true } | { ok: false; reason: string };

/**
 * Whether Java 17+ and Maven are on PATH. Synchronous so a test file can use it in
 * `describe.skipIf(...)`; the result is cached for the process.
 */
export declare function kafkaAvailability(): KafkaAvailability;

/**
 * Makes sure the broker jars for `version` are in `.cache/kafka/<version>/libs`, downloading
 * them from Maven Central if needed. Idempotent and safe to call from parallel processes.
 * Resolves to the absolute libs directory.
 */
export declare function ensureKafkaLibs(
  version?: string,
  options?: { log?: (line: string) => void },
): Promise<string>;

export interface StartKafkaOptions {
  /** Exact version such as '4.1.2', or 'latest' (default) / 'previous'. */
  version?: string;
  /**
   * Run directory instead of a fresh `.cache/kafka/run/<random>`. A dir this harness used before
   * is restarted with the same ports and data. A caller-provided dir is never deleted.
   */
  dir?: string;
  /** Keep the run dir (config, data, logs) when stop() is called. */
  keep?: boolean;
  /** Leave the broker running after this Node process exits (the CLI uses this). */
  persistent?: boolean;
  /** Receives progress lines (download, readiness). Silent by default. */
  log?: (line: string) => void;
  /** Broker properties over the harness's own, e.g. `{'group.initial.rebalance.delay.ms': '3000'}`. */
  properties?: Record<string, string>;
}

export interface KafkaBroker {
  readonly version: string;
  /** `127.0.0.1:PORT`; stays the same across kill()/start() and restart(). */
  readonly bootstrap: string;
  readonly port: number;
  readonly controllerPort: number;
  readonly clusterId: string;
  readonly runDir: string;
  /** pid of the broker JVM, or null while it is stopped. */
  readonly pid: number | null;
  readonly running: boolean;
  /** Start again after kill(), on the same address with the same data; resolves when it answers. No-op if running. */
  start(): Promise<void>;
  /** Stop the JVM (SIGTERM, then SIGKILL after a bound) but keep its data so start() can resume. */
  kill(): Promise<void>;
  /** kill() then start(). */
  restart(): Promise<void>;
  /** Stop the JVM and delete the run dir unless it is kept (`keep`, caller `dir`, or `{ keep: true }` here). */
  stop(options?: { keep?: boolean }): Promise<void>;
}

/**
 * Starts a real single-node KRaft broker on 127.0.0.1 (free ports) and resolves when it answers
 * a metadata request. Downloads the jars on first use.
 */
export declare function startKafka(options?: StartKafkaOptions): Promise<KafkaBroker>;
