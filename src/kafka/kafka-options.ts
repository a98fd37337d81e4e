/**
 * The Kafka part of the configuration (docs/kafka.md): checked once at start-up, with errors that
 * name the exact key (`kafka.topics[1].split`), so a bad deployment fails fast and clearly.
 */
import { ConfigError, type ServerOptions } from '../config.js';
import { CompiledRule, RuleError, type RouteRule } from '../routing/rule-router.js';

export interface TopicConfig extends RouteRule {
  readonly topic: string;
}

export interface KafkaOptions {
  readonly brokers: string[];
  readonly clientId: string;
  /** `true` for TLS with the system's CAs, or Node TLS options (`ca`, `cert`, `key`, `rejectUnauthorized`, …). */
  readonly ssl?: boolean | Record<string, unknown>;
  /** `{mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512' | 'oauthbearer', username, password}` (or `token`), passed to the client. */
  readonly sasl?: Record<string, unknown>;
  /** Topics in a fixed order: a topic's place in this list is part of every message position. */
  readonly topics: TopicConfig[];
  /** Where publishes go (HTTP and WebSocket), keyed by channel. Default: the first topic. */
  readonly publishTopic: string;
  /** Records per partition read back at start to refill the channel rings. */
  readonly readBack: number;
  /** Most records read back from Kafka for one resume beyond the rings (deep resume). */
  readonly deepResumeMaxRecords: number;
  /** Milliseconds before a publish (or a control command) to an unreachable cluster answers 503. */
  readonly publishTimeout: number;
  /** edgepush's own topic for server-API commands (src/kafka/kafka-control.ts); created when missing. */
  readonly controlTopic: string;
  /** edgepush's own compacted topic of MQTT persistent sessions (src/kafka/kafka-control.ts); created when missing. */
  readonly sessionTopic: string;
}

const TOPIC_KEYS = new Set(['topic', 'channel', 'channelHeader', 'prefix', 'split', 'fields']);
const KAFKA_KEYS = new Set(['brokers', 'clientId', 'ssl', 'sasl', 'topics', 'publishTopic', 'readBack', 'deepResumeMaxRecords', 'publishTimeout', 'controlTopic', 'sessionTopic']);
// Kafka's own rule for topic names.
const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,249}$/;

/** The Kafka options, or undefined when none are configured (the embedded log is used). */
export function kafkaOptionsOf(options: ServerOptions): KafkaOptions | undefined {
  const raw: Record<string, unknown> = { ...(options.kafka ?? {}) };
  if (options.kafkaBrokers !== '') raw['brokers'] = options.kafkaBrokers.split(',').map((b) => b.trim()).filter(Boolean);
  if (options.kafkaTopics !== '' && raw['topics'] === undefined) {
    raw['topics'] = options.kafkaTopics.split(',').map((t) => ({ topic: t.trim() })).filter((t) => t.topic !== '');
  }
  if (Object.keys(raw).length === 0) return undefined;
  const fail = (key: string, expected: string, got?: unknown): never => {
    throw new ConfigError(`invalid configuration: kafka.${key} must be ${expected}${got === undefined ? '' : `, got ${JSON.stringify(got)?.slice(0, 80)}`}`);
  };
  for (const key of Object.keys(raw)) if (!KAFKA_KEYS.has(key)) throw new ConfigError(`invalid configuration: unknown key "kafka.${key}"`);

  const brokers = raw['brokers'];
  if (!Array.isArray(brokers) || brokers.length === 0 || !brokers.every((b) => typeof b === 'string' && /^[^\s:]+:\d+$/.test(b))) {
    fail('brokers', 'a non-empty list of host:port (or --kafka-brokers host:port,...)', brokers);
  }
  const topicsRaw = raw['topics'];
  if (!Array.isArray(topicsRaw) || topicsRaw.length === 0) fail('topics', 'a non-empty list (or --kafka-topics a,b)', topicsRaw);
  const topics = (topicsRaw as unknown[]).map((entry, index) => topicConfig(entry, `topics[${index}]`, options.maxMessageBytes, fail));
  const names = topics.map((t) => t.topic);
  const duplicate = names.find((name, i) => names.indexOf(name) !== i);
  if (duplicate) fail('topics', 'a list of distinct topics', duplicate);

  const publishTopic = raw['publishTopic'] ?? names[0];
  // Published messages reach subscribers by being consumed like any other record.
  if (typeof publishTopic !== 'string' || !names.includes(publishTopic)) fail('publishTopic', `one of the consumed topics (${names.join(', ')})`, publishTopic);
  const int = (key: string, fallback: number, min: number): number => {
    const value = raw[key] ?? fallback;
    return typeof value === 'number' && Number.isInteger(value) && value >= min ? value : fail(key, `an integer >= ${min}`, value);
  };
  const ssl = raw['ssl'];
  if (ssl !== undefined && typeof ssl !== 'boolean' && (typeof ssl !== 'object' || ssl === null)) fail('ssl', 'true, false or an object of TLS options', ssl);
  const sasl = raw['sasl'];
  if (sasl !== undefined && (typeof sasl !== 'object' || sasl === null || typeof (sasl as { mechanism?: unknown }).mechanism !== 'string')) {
    fail('sasl', 'an object with a mechanism (plain, scram-sha-256, scram-sha-512), username and password');
  }
  const controlTopic = raw['controlTopic'] ?? 'edgepush-control';
  if (typeof controlTopic !== 'string' || !TOPIC_NAME.test(controlTopic)) fail('controlTopic', 'a topic name', controlTopic);
  // Commands are not channel messages: the control topic must not be read as data too.
  if (names.includes(controlTopic as string)) fail('controlTopic', `a topic that is not one of the consumed topics (${names.join(', ')})`, controlTopic);
  const sessionTopic = raw['sessionTopic'] ?? 'edgepush-sessions';
  if (typeof sessionTopic !== 'string' || !TOPIC_NAME.test(sessionTopic)) fail('sessionTopic', 'a topic name', sessionTopic);
  if (names.includes(sessionTopic as string) || sessionTopic === controlTopic) fail('sessionTopic', 'a topic that is neither one of the consumed topics nor the control topic', sessionTopic);
  const clientId = raw['clientId'] ?? 'edgepush';
  if (typeof clientId !== 'string' || clientId === '') fail('clientId', 'a non-empty string', clientId);
  return {
    brokers: brokers as string[],
    clientId: clientId as string,
    ...(ssl !== undefined ? { ssl: ssl as boolean | Record<string, unknown> } : {}),
    ...(sasl !== undefined ? { sasl: sasl as Record<string, unknown> } : {}),
    topics,
    publishTopic: publishTopic as string,
    readBack: int('readBack', Math.max(1000, options.historySize), 0),
    deepResumeMaxRecords: int('deepResumeMaxRecords', 100_000, 0),
    publishTimeout: int('publishTimeout', 5000, 100),
    controlTopic: controlTopic as string,
    sessionTopic: sessionTopic as string,
  };
}

function topicConfig(entry: unknown, where: string, maxMessageBytes: number, fail: (key: string, expected: string, got?: unknown) => never): TopicConfig {
  if (typeof entry === 'string') entry = { topic: entry };
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) return fail(where, 'a topic name or an object with a topic', entry);
  const fields = entry as Record<string, unknown>;
  for (const key of Object.keys(fields)) if (!TOPIC_KEYS.has(key)) throw new ConfigError(`invalid configuration: unknown key "kafka.${where}.${key}"`);
  if (typeof fields['topic'] !== 'string' || !TOPIC_NAME.test(fields['topic'])) fail(`${where}.topic`, 'a topic name', fields['topic']);
  for (const key of ['channel', 'channelHeader', 'prefix', 'split']) {
    if (fields[key] !== undefined && typeof fields[key] !== 'string') fail(`${where}.${key}`, 'a string', fields[key]);
  }
  const picks = fields['fields'];
  if (picks !== undefined && (typeof picks !== 'object' || picks === null || Array.isArray(picks) || !Object.values(picks).every((p) => typeof p === 'string'))) {
    fail(`${where}.fields`, 'an object of output field → input path strings', picks);
  }
  const config = fields as unknown as TopicConfig;
  try {
    new CompiledRule(config, maxMessageBytes);
  } catch (error) {
    if (error instanceof RuleError || error instanceof Error) fail(where, `a valid routing rule (${error.message})`);
    throw error;
  }
  return config;
}
