/**
 * What every Kafka client of a node shares: the connection options built from the configuration,
 * Java's key partitioner, and one-line descriptions of the client's errors (its errors nest: a
 * response error holds one error per failed partition, a retry error one per attempt).
 */
import { murmur2, ProduceAcks, Producer, stringSerializer, type BaseOptions } from '@platformatic/kafka';
import { PushError } from '../errors.js';
import type { KafkaOptions } from './kafka-options.js';

/** Connection options for a client of this node; `role` tells the clients apart in broker logs. */
export function clientOptions(options: KafkaOptions, role: string, retries: number): BaseOptions {
  const sasl = options.sasl as { mechanism: string; username?: string; password?: string } | undefined;
  const tls = options.ssl === true ? {} : options.ssl === false ? undefined : options.ssl;
  return {
    clientId: `${options.clientId}-${role}`,
    bootstrapBrokers: options.brokers,
    retries,
    retryDelay: (_client, _operation, attempt) => Math.min(5000, 200 * 2 ** (attempt - 1)),
    connectTimeout: 5000,
    ...(tls !== undefined ? { tls } : {}),
    // The configuration's mechanism names are lower-case (`scram-sha-256`, as documented); the client wants them upper-case.
    ...(sasl !== undefined ? { sasl: { ...sasl, mechanism: sasl.mechanism.toUpperCase() } as BaseOptions['sasl'] } : {}),
  } as BaseOptions;
}

/** The producer's record types: string keys and headers, byte values. */
export type NodeProducer = Producer<string, Buffer, string, string>;

/**
 * The node's one producer, for publishes and control commands alike, made at its first use:
 * idempotent with the client's own retries (the broker drops a retried duplicate) and acks=all;
 * callers bound their wait with `acknowledged` instead.
 */
export class SharedProducer {
  readonly #options: KafkaOptions;
  #producer: NodeProducer | undefined;

  constructor(options: KafkaOptions) {
    this.#options = options;
  }

  get(): NodeProducer {
    this.#producer ??= new Producer({
      ...clientOptions(this.#options, 'producer', 5),
      idempotent: true,
      acks: ProduceAcks.ALL,
      serializers: { key: stringSerializer, headerKey: stringSerializer, headerValue: stringSerializer },
    });
    return this.#producer;
  }

  async close(): Promise<void> {
    await this.#producer?.close(true);
  }
}

/** `sent`, or a PushError 'unavailable' (`message`) when it takes over `timeoutMs`. */
export async function acknowledged<T>(sent: Promise<T>, timeoutMs: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new PushError('unavailable', message)), timeoutMs);
  });
  try {
    return await Promise.race([sent, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The partition Kafka's Java client (and so most backends) puts `key` on: a channel lands on one
 * partition whoever writes it. The client's own default partitioner makes the hash positive another way.
 */
export function javaPartition(key: string, partitions: number): number {
  return (murmur2(Buffer.from(key, 'utf8')) & 0x7fffffff) % partitions;
}

/** The leaf messages of a client error, deduplicated: "connect ECONNREFUSED 127.0.0.1:9" rather than "Performing fetch failed". */
export function describeKafkaError(error: unknown): string {
  const seen = new Set<string>();
  const visit = (e: unknown, depth: number): void => {
    if (depth > 5 || e === null || typeof e !== 'object') {
      if (e !== undefined && e !== null && typeof e !== 'object') seen.add(String(e));
      return;
    }
    const nested = [...((e as { errors?: unknown[] }).errors ?? []), ...((e as { cause?: unknown }).cause !== undefined ? [(e as { cause: unknown }).cause] : [])];
    if (nested.length === 0) {
      const { message, code } = e as { message?: string; code?: string };
      seen.add(message ?? code ?? String(e));
      return;
    }
    for (const inner of nested) visit(inner, depth + 1);
  };
  visit(error, 0);
  return [...seen].join('; ') || String(error);
}

/** Kafka error codes (by their protocol names) anywhere in a client error. */
export function kafkaErrorIds(error: unknown): Set<string> {
  const ids = new Set<string>();
  const visit = (e: unknown, depth: number): void => {
    if (depth > 5 || e === null || typeof e !== 'object') return;
    const apiId = (e as { apiId?: unknown }).apiId;
    if (typeof apiId === 'string') ids.add(apiId);
    for (const inner of (e as { errors?: unknown[] }).errors ?? []) visit(inner, depth + 1);
    const cause = (e as { cause?: unknown }).cause;
    if (cause !== undefined) visit(cause, depth + 1);
  };
  visit(error, 0);
  return ids;
}

/** A failure's kind, for one log line per change of state and a metric label. */
export type KafkaFailureKind = 'unreachable' | 'authentication' | 'missing_topic' | 'other';

export function failureKind(error: unknown): KafkaFailureKind {
  const ids = kafkaErrorIds(error);
  if (ids.has('UNKNOWN_TOPIC_OR_PARTITION') || ids.has('UNKNOWN_TOPIC_ID')) return 'missing_topic';
  if (ids.has('SASL_AUTHENTICATION_FAILED') || ids.has('TOPIC_AUTHORIZATION_FAILED') || ids.has('CLUSTER_AUTHORIZATION_FAILED') || ids.has('ILLEGAL_SASL_STATE') || ids.has('UNSUPPORTED_SASL_MECHANISM')) return 'authentication';
  const text = describeKafkaError(error);
  if (/unknown topic/i.test(text)) return 'missing_topic';
  if (/authentication|sasl/i.test(text)) return 'authentication';
  if (/ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENOTFOUND|ETIMEDOUT|timed out|closed|Connection|socket/i.test(text)) return 'unreachable';
  return 'other';
}
