/**
 * Server options: one table gives each option its type, default, environment variable, CLI flag and
 * description. The same table drives parsing, validation, `--help` and docs/config.md (a test
 * checks the doc lists every option), so they cannot drift apart.
 *
 * Precedence, highest first: command line, environment (`EDGEPUSH_*`), config file (JSON), defaults.
 */
import { readFileSync } from 'node:fs';

export interface ServerOptions {
  /** @default 8080 */
  port: number;
  /** @default '0.0.0.0' */
  host: string;
  /** @default 4096 */
  listenBacklog: number;
  /** @default false */
  demo: boolean;
  /** @default 'info' */
  logLevel: string;
  /** @default 100 */
  historySize: number;
  /** @default 1048576 */
  historyBytes: number;
  /** @default 300 */
  historyTtl: number;
  /** @default 100000 */
  maxIdleChannels: number;
  /** @default 268435456 */
  maxIdleBytes: number;
  /** @default 65536 */
  maxMessageBytes: number;
  /** @default 100 */
  maxChannelsPerSubscription: number;
  /** @default 1048576 */
  maxBufferedBytes: number;
  /** @default 15 */
  heartbeatInterval: number;
  /** @default 2 */
  reconnectDelay: number;
  /** @default 25 */
  pollTimeout: number;
  /** @default 60 */
  pollMaxTimeout: number;
  /** @default 1000 */
  pollMaxMessages: number;
  /** @default 100 */
  historyMaxLimit: number;
  /** @default true */
  allowPublish: boolean;
  /** @default 300 */
  idempotencyTtl: number;
  /** @default '*' */
  corsOrigin: string;
  /** @default 1 */
  workers: number;
  /** @default '' */
  kafkaBrokers: string;
  /** @default '' */
  kafkaTopics: string;
  /** @default null */
  kafka: Record<string, unknown> | null;
}

type Kind = 'integer' | 'number' | 'string' | 'boolean' | 'level' | 'object';

interface OptionSpec {
  readonly kind: Kind;
  readonly default: number | string | boolean | null;
  readonly description: string;
  readonly min?: number;
  readonly max?: number;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export const OPTION_SPECS: { readonly [K in keyof ServerOptions]: OptionSpec } = {
  port: { kind: 'integer', default: 8080, min: 0, max: 65535, description: 'TCP port to listen on (0 picks a free one).' },
  host: { kind: 'string', default: '0.0.0.0', description: 'Address to listen on.' },
  listenBacklog: { kind: 'integer', default: 4096, min: 1, max: 65535, description: 'Connections the kernel queues before the server accepts them (capped by net.core.somaxconn); 10,000 clients reconnecting at once overflow a short queue.' },
  demo: { kind: 'boolean', default: false, description: 'Run the built-in market-data publisher that feeds the demo page.' },
  logLevel: { kind: 'level', default: 'info', description: `Log level: ${LOG_LEVELS.join(', ')}.` },
  historySize: { kind: 'integer', default: 100, min: 1, max: 1_000_000, description: 'Most messages kept per channel for resume and history.' },
  historyBytes: { kind: 'integer', default: 1_048_576, min: 1024, description: 'Most bytes kept per channel ring.' },
  historyTtl: { kind: 'number', default: 300, min: 1, description: 'Seconds a message stays in its channel ring.' },
  maxIdleChannels: { kind: 'integer', default: 100_000, min: 1, description: 'Most channels kept without subscribers; least recently used go first.' },
  maxIdleBytes: { kind: 'integer', default: 268_435_456, min: 65_536, description: 'Most bytes of ring held by channels without subscribers.' },
  maxMessageBytes: { kind: 'integer', default: 65_536, min: 16, max: 16_777_216, description: 'Largest message payload accepted by publish (and from the log).' },
  maxChannelsPerSubscription: { kind: 'integer', default: 100, min: 1, max: 10_000, description: 'Most channels on one SSE or poll request, or one WebSocket.' },
  maxBufferedBytes: { kind: 'integer', default: 1_048_576, min: 65_536, description: 'Outbox limit per connection; a client over it is disconnected as slow and resumes.' },
  heartbeatInterval: { kind: 'number', default: 15, min: 0.05, max: 3600, description: 'Seconds between heartbeats (SSE id-only events, WebSocket pings).' },
  reconnectDelay: { kind: 'number', default: 2, min: 0, max: 3600, description: 'Seconds a client should wait before reconnecting (SSE retry:).' },
  pollTimeout: { kind: 'number', default: 25, min: 0, description: 'Seconds a long-poll waits when the request names no timeout.' },
  pollMaxTimeout: { kind: 'number', default: 60, min: 0, description: 'Longest wait a long-poll request may ask for, in seconds.' },
  pollMaxMessages: { kind: 'integer', default: 1000, min: 1, description: 'Most messages in one long-poll reply; the cursor continues from the last one.' },
  historyMaxLimit: { kind: 'integer', default: 100, min: 1, description: 'Largest limit a history request may ask for.' },
  allowPublish: { kind: 'boolean', default: true, description: 'Accept publishes from clients (POST /v1/publish, WebSocket publish).' },
  idempotencyTtl: { kind: 'number', default: 300, min: 1, description: 'Seconds an Idempotency-Key is remembered.' },
  corsOrigin: { kind: 'string', default: '*', description: 'Access-Control-Allow-Origin for /v1 routes.' },
  workers: { kind: 'integer', default: 1, min: 1, max: 64, description: 'Processes on this machine (node:cluster), each a full consumer sharing the port; needs Kafka.' },
  kafkaBrokers: { kind: 'string', default: '', description: 'Kafka bootstrap brokers, comma-separated (host:port,...). Empty: the embedded log.' },
  kafkaTopics: { kind: 'string', default: '', description: 'Kafka topics to consume, comma-separated, channel from the record key. For routing rules use the kafka option.' },
  kafka: { kind: 'object', default: null, description: 'Full Kafka configuration as a JSON object (brokers, topics with routing rules, publishTopic, readBack, ...): see docs/kafka.md.' },
};

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

const KEYS = Object.keys(OPTION_SPECS) as (keyof ServerOptions)[];

export function flagName(key: string): string {
  return key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
}

export function envName(key: string): string {
  return 'EDGEPUSH_' + key.replace(/[A-Z]/g, (c) => '_' + c).toUpperCase();
}

export function defaultOptions(): ServerOptions {
  const out: Record<string, unknown> = {};
  for (const key of KEYS) out[key] = OPTION_SPECS[key].default;
  return out as unknown as ServerOptions;
}

/**
 * Converts one raw value (a string from env/CLI, or a JSON value from the file) or throws. A file
 * is typed JSON: there `"500"` is a string, not a number, and `"true"` not a boolean.
 */
function coerce(key: keyof ServerOptions, raw: unknown, where: string, typed = false): number | string | boolean | Record<string, unknown> {
  const spec = OPTION_SPECS[key];
  const fail = (expected: string): never => {
    throw new ConfigError(`invalid configuration: ${where} must be ${expected}, got ${JSON.stringify(raw)}`);
  };
  if (typed && typeof raw === 'string' && spec.kind !== 'string' && spec.kind !== 'level') {
    const expected = spec.kind === 'boolean' ? 'true or false' : spec.kind === 'object' ? 'a JSON object' : spec.kind === 'integer' ? 'an integer' : 'a number';
    return fail(`${expected} (a JSON ${spec.kind === 'boolean' ? 'boolean' : spec.kind === 'object' ? 'object' : 'number'}, not a string)`);
  }
  switch (spec.kind) {
    case 'boolean': {
      if (typeof raw === 'boolean') return raw;
      if (raw === 'true' || raw === '1' || raw === '') return true;
      if (raw === 'false' || raw === '0') return false;
      return fail('true or false');
    }
    case 'string':
      return typeof raw === 'string' && raw.length > 0 ? raw : fail('a non-empty string');
    case 'level':
      return typeof raw === 'string' && LOG_LEVELS.includes(raw) ? raw : fail(`one of ${LOG_LEVELS.join(', ')}`);
    case 'object': {
      let value = raw;
      if (typeof raw === 'string') {
        try {
          value = JSON.parse(raw);
        } catch {
          return fail('a JSON object');
        }
      }
      return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : fail('a JSON object');
    }
    case 'integer':
    case 'number': {
      const value = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
      const integer = spec.kind === 'integer';
      const bounds = `${spec.min !== undefined ? ` >= ${spec.min}` : ''}${spec.max !== undefined ? ` and <= ${spec.max}` : ''}`;
      if (!Number.isFinite(value) || (integer && !Number.isInteger(value))) return fail(`${integer ? 'an integer' : 'a number'}${bounds}`);
      if ((spec.min !== undefined && value < spec.min) || (spec.max !== undefined && value > spec.max)) return fail(`${integer ? 'an integer' : 'a number'}${bounds}`);
      return value;
    }
  }
}

export interface ConfigSources {
  /** Parsed command-line options: option key → raw string or boolean. */
  readonly cli?: Readonly<Record<string, string | boolean | undefined>>;
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Path of a JSON config file. */
  readonly file?: string;
}

/** Builds validated options from the layered sources; throws ConfigError naming the bad key. */
export function resolveOptions(sources: ConfigSources): ServerOptions {
  const options = defaultOptions() as unknown as Record<string, unknown>;
  if (sources.file !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(sources.file, 'utf8'));
    } catch (error) {
      // YAML and the like are a common guess: say which format is wanted.
      throw new ConfigError(`invalid configuration: cannot read config file ${sources.file} (it must be JSON): ${(error as Error).message}`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new ConfigError(`invalid configuration: config file ${sources.file} must hold a JSON object`);
    }
    for (const [key, raw] of Object.entries(parsed)) {
      if (!Object.hasOwn(OPTION_SPECS, key)) throw new ConfigError(`invalid configuration: unknown key "${key}" in ${sources.file}`);
      options[key] = coerce(key as keyof ServerOptions, raw, `"${key}" in ${sources.file}`, true);
    }
  }
  // A misspelt variable would otherwise be ignored without a word, and the server run with a default.
  const known = new Set(KEYS.map(envName));
  for (const name of Object.keys(sources.env ?? {})) {
    if (!name.startsWith('EDGEPUSH_') || known.has(name) || sources.env?.[name] === undefined) continue;
    const near = closest(name, [...known]);
    throw new ConfigError(`invalid configuration: unknown environment variable ${name}${near ? ` (did you mean ${near}?)` : ''}`);
  }
  for (const key of KEYS) {
    const raw = sources.env?.[envName(key)];
    if (raw !== undefined) options[key] = coerce(key, raw, envName(key));
  }
  for (const key of KEYS) {
    const raw = sources.cli?.[key];
    if (raw !== undefined) options[key] = coerce(key, raw, `--${flagName(key)}`);
  }
  const result = options as unknown as ServerOptions;
  if (result.pollTimeout > result.pollMaxTimeout) {
    throw new ConfigError(`invalid configuration: pollTimeout (${result.pollTimeout}) must not exceed pollMaxTimeout (${result.pollMaxTimeout})`);
  }
  if (result.workers > 1 && result.kafkaBrokers === '' && !result.kafka) {
    throw new ConfigError('invalid configuration: workers > 1 needs Kafka (kafkaBrokers or kafka): each worker would hold an embedded log of its own');
  }
  // A ring keeps its newest message even when that alone is over historyBytes.
  const largestRing = Math.max(result.historyBytes, result.maxMessageBytes);
  if (result.maxIdleBytes < largestRing * 2) {
    throw new ConfigError(`invalid configuration: maxIdleBytes (${result.maxIdleBytes}) must be at least twice historyBytes and maxMessageBytes (${largestRing})`);
  }
  return result;
}

/** Text of `--help`: every option with its flag, environment variable and default. */
export function helpText(): string {
  const lines = [
    'edgepush: push Kafka (or the embedded log) to browsers and apps over WebSocket, SSE and long-poll.',
    '',
    'Usage: edgepush [options]',
    '',
    'Options (each also settable as an EDGEPUSH_* environment variable or a key in the --config file):',
    '  --config <file>                 JSON file of options (keys as in docs/config.md)',
    '  -h, --help                      Show this help',
    '  -v, --version                   Print the version',
  ];
  for (const key of KEYS) {
    const spec = OPTION_SPECS[key];
    const flag = spec.kind === 'boolean' ? `--[no-]${flagName(key)}` : spec.kind === 'object' ? `--${flagName(key)} <json>` : `--${flagName(key)} <value>`;
    lines.push(`  ${flag.padEnd(32)}${spec.description}`);
    lines.push(`  ${''.padEnd(32)}[${envName(key)}, default ${JSON.stringify(spec.default)}]`);
  }
  return lines.join('\n');
}

/** The candidate nearest to `name` by edit distance, when it is near enough to be a misspelling. */
function closest(name: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(name, candidate);
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  return bestDistance <= Math.max(2, Math.floor(name.length / 4)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) current[j] = Math.min((previous[j] as number) + 1, (current[j - 1] as number) + 1, (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1));
    previous = current;
  }
  return previous[b.length] as number;
}
