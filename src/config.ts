/**
 * Server options: one table gives each option its type, default, environment variable, CLI flag and
 * description. The same table drives parsing, validation, `--help`, docs/config.md and the JSON
 * Schema edgepush.schema.json (tests check both), so they cannot drift apart.
 *
 * Precedence, highest first: command line, environment (`EDGEPUSH_*`), options given in code
 * (createServer), config file (JSON), defaults.
 */
import { readFileSync } from 'node:fs';
import { CapsError, parseCaps } from './auth/caps.js';

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
  maxPatternsPerConnection: number;
  maxPatternLevels: number;
  /** @default 1048576 */
  maxBufferedBytes: number;
  /** @default 15 */
  heartbeatInterval: number;
  tcpNoDelay: boolean;
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
  /** @default '' */
  corsOrigin: string;
  /** @default '' */
  jwtSecret: string;
  /** @default '' */
  jwtJwksUrl: string;
  /** @default '' */
  jwtAudience: string;
  /** @default '' */
  jwtIssuer: string;
  /** @default '' */
  apiKeys: string;
  /** @default null */
  anonymousCaps: unknown[] | null;
  /** @default 100000 */
  maxConnections: number;
  /** @default 1000 */
  maxConnectionsPerIp: number;
  /** @default 50 */
  connectionRatePerIp: number;
  /** @default 100 */
  opRate: number;
  /** @default 50 */
  publishRate: number;
  /** @default 10 */
  headerTimeout: number;
  /** @default 10 */
  authTimeout: number;
  /** @default 32 */
  maxJsonDepth: number;
  /** @default false */
  trustProxy: boolean;
  /** @default -1 */
  metricsPort: number;
  /** @default '' */
  metricsToken: string;
  /** @default 1 */
  workers: number;
  /** @default 30 */
  drainTimeout: number;
  /** @default '' */
  kafkaBrokers: string;
  /** @default '' */
  kafkaTopics: string;
  /** @default null */
  kafka: Record<string, unknown> | null;
}

type Kind = 'integer' | 'number' | 'string' | 'boolean' | 'level' | 'object' | 'array';

export interface OptionSpec {
  readonly kind: Kind;
  readonly default: number | string | boolean | null;
  readonly description: string;
  readonly min?: number;
  readonly max?: number;
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export const OPTION_SPECS: { readonly [K in keyof ServerOptions]: OptionSpec } = {
  port: { kind: 'integer', default: 8080, min: 0, max: 65535, description: 'TCP port to listen on (0 picks a free one).' },
  host: { kind: 'string', default: '0.0.0.0', description: 'Address to listen on.' },
  listenBacklog: { kind: 'integer', default: 4096, min: 1, max: 65535, description: 'Connections the kernel queues before the server accepts them (capped by net.core.somaxconn); 10,000 clients reconnecting at once overflow a short queue.' },
  demo: { kind: 'boolean', default: false, description: 'Run the built-in demo feeds: prices for the market board, and buses driving the map of a generated city for vehicles.html.' },
  logLevel: { kind: 'level', default: 'info', description: `Log level: ${LOG_LEVELS.join(', ')}.` },
  historySize: { kind: 'integer', default: 100, min: 1, max: 1_000_000, description: 'Most messages kept per channel for resume and history.' },
  historyBytes: { kind: 'integer', default: 1_048_576, min: 1024, description: 'Most bytes kept per channel ring.' },
  historyTtl: { kind: 'number', default: 300, min: 1, description: 'Seconds a message stays in its channel ring.' },
  maxIdleChannels: { kind: 'integer', default: 100_000, min: 1, description: 'Most channels kept without subscribers; least recently used go first.' },
  maxIdleBytes: { kind: 'integer', default: 268_435_456, min: 65_536, description: 'Most bytes of ring held by channels without subscribers.' },
  maxMessageBytes: { kind: 'integer', default: 65_536, min: 16, max: 16_777_216, description: 'Largest message payload accepted by publish (and from the log).' },
  maxChannelsPerSubscription: { kind: 'integer', default: 100, min: 1, max: 10_000, description: 'Most channels on one SSE or poll request, or one WebSocket.' },
  maxPatternsPerConnection: { kind: 'integer', default: 20, min: 0, max: 10_000, description: 'Most pattern subscriptions (channels with a "+" or "#" level) on one SSE or poll request, or one WebSocket; each costs the publish path a little for every message.' },
  maxPatternLevels: { kind: 'integer', default: 16, min: 1, max: 128, description: 'Most levels in a pattern subscription.' },
  maxBufferedBytes: { kind: 'integer', default: 1_048_576, min: 65_536, description: 'Outbox limit per connection; a client over it is disconnected as slow and resumes.' },
  tcpNoDelay: { kind: 'boolean', default: false, description: 'Send every write of a streaming connection (SSE, WebSocket, MQTT) in its own packet at once. Off: Nagle\'s algorithm joins the writes made while an earlier one is unacknowledged into one packet, as nginx does for streamed responses: about half the kernel time per delivery under load, for up to one round trip of added delay to a message that closely follows another. Long-polls and other replies always go at once.' },
  heartbeatInterval: { kind: 'number', default: 15, min: 0.05, max: 3600, description: 'Seconds between heartbeats (SSE id-only events, WebSocket pings).' },
  reconnectDelay: { kind: 'number', default: 2, min: 0, max: 3600, description: 'Seconds a client should wait before reconnecting (SSE retry:).' },
  pollTimeout: { kind: 'number', default: 25, min: 0, description: 'Seconds a long-poll waits when the request names no timeout.' },
  pollMaxTimeout: { kind: 'number', default: 60, min: 0, description: 'Longest wait a long-poll request may ask for, in seconds.' },
  pollMaxMessages: { kind: 'integer', default: 1000, min: 1, description: 'Most messages in one long-poll reply; the cursor continues from the last one.' },
  historyMaxLimit: { kind: 'integer', default: 100, min: 1, description: 'Largest limit a history request may ask for.' },
  allowPublish: { kind: 'boolean', default: true, description: 'Accept publishes from clients (POST /v1/publish, WebSocket publish).' },
  idempotencyTtl: { kind: 'number', default: 300, min: 1, description: 'Seconds an Idempotency-Key is remembered.' },
  corsOrigin: { kind: 'string', default: '', description: 'Origins (comma-separated, e.g. https://app.example.com) whose pages may use /v1 routes and open WebSockets; "*" any (open mode only). Empty: "*" in open mode, same origin only otherwise.' },
  jwtSecret: { kind: 'string', default: '', description: 'HS256 secret that user tokens (JWT) are signed with. Setting any identity option closes the server to requests without a grant.' },
  jwtJwksUrl: { kind: 'string', default: '', description: 'URL of a JWKS with the public keys (RS256, ES256) that user tokens are signed with; cached, refetched for an unknown kid.' },
  jwtAudience: { kind: 'string', default: '', description: 'When set, tokens must carry this aud.' },
  jwtIssuer: { kind: 'string', default: '', description: 'When set, tokens must carry this iss.' },
  apiKeys: { kind: 'string', default: '', description: 'API keys for backends (publish, the server API), comma-separated so that one can be rotated without downtime.' },
  anonymousCaps: { kind: 'array', default: null, description: 'Caps for requests without a token, as a JSON array ([{"match": "public/#", "allow": ["sub", "hst"]}]). Unset: none (once any identity option is set).' },
  maxConnections: { kind: 'integer', default: 100_000, min: 1, description: 'Most streaming connections (WebSocket, SSE, held long-polls) on this process; past it new ones get 503 over_capacity with Retry-After.' },
  maxConnectionsPerIp: { kind: 'integer', default: 1000, min: 1, description: 'Most streaming connections from one client address (NATs put many users behind one: keep it generous).' },
  connectionRatePerIp: { kind: 'number', default: 50, min: 0.1, description: 'New connections per second one client address may open (burst: twice that); past it 429 too_many_connections and the connection is closed.' },
  opRate: { kind: 'number', default: 100, min: 1, description: 'WebSocket ops per second per connection (burst: twice that); past it an error op rate_limited, far past it close 4029.' },
  publishRate: { kind: 'number', default: 50, min: 0.1, description: 'Messages per second one connection (WebSocket) or one client (HTTP: token sub, API key or address) may publish (burst: twice that); past it 429 rate_limited.' },
  headerTimeout: { kind: 'number', default: 10, min: 1, max: 600, description: 'Seconds a connection may take to send its request headers (a connection that sends nothing, or a slowloris, is closed).' },
  authTimeout: { kind: 'number', default: 10, min: 1, max: 600, description: 'Seconds a WebSocket without credentials (and with nothing anonymous may do) has to send its auth op.' },
  maxJsonDepth: { kind: 'integer', default: 32, min: 2, max: 1000, description: 'Deepest nesting of arrays and objects accepted in a JSON body or frame.' },
  trustProxy: { kind: 'boolean', default: false, description: 'Take the client address from X-Forwarded-For (set it behind a load balancer, never when clients reach the server directly).' },
  metricsPort: { kind: 'integer', default: -1, min: -1, max: 65535, description: 'Serve /metrics (and the /status page) on its own listener at this port (0: a free one) instead of the main one; -1: on the main port.' },
  metricsToken: { kind: 'string', default: '', description: 'Bearer token /metrics and /status require on the main port (API keys also work). Unset on a closed server: they need an API key on the main port.' },
  workers: { kind: 'integer', default: 1, min: 1, max: 64, description: 'Processes on this machine (node:cluster), each a full consumer sharing the port; needs Kafka.' },
  drainTimeout: { kind: 'number', default: 30, min: 0, max: 3600, description: 'Seconds a shutdown (SIGTERM, SIGINT) waits for clients to leave once they are told to reconnect elsewhere with their cursors; connections still open then are closed and the process exits 0. Keep it below the orchestrator\'s grace period (terminationGracePeriodSeconds).' },
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
function coerce(key: keyof ServerOptions, raw: unknown, where: string, typed = false): number | string | boolean | Record<string, unknown> | null {
  const spec = OPTION_SPECS[key];
  const fail = (expected: string): never => {
    throw new ConfigError(`invalid configuration: ${where} must be ${expected}, got ${JSON.stringify(raw)}`);
  };
  // A typed value equal to the default (`""`, `null`) is the default, even where an operator could
  // not choose it: a whole ServerOptions object (defaultOptions() with changes) passes as it is.
  if (typed && raw === spec.default) return spec.default;
  if (typed && typeof raw === 'string' && spec.kind !== 'string' && spec.kind !== 'level') {
    const json = spec.kind === 'boolean' ? 'boolean' : spec.kind === 'object' ? 'object' : spec.kind === 'array' ? 'array' : 'number';
    const expected = spec.kind === 'boolean' ? 'true or false' : spec.kind === 'integer' ? 'an integer' : `a JSON ${json}`;
    return fail(`${expected} (a JSON ${json}, not a string)`);
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
    case 'array': {
      let value = raw;
      if (typeof raw === 'string') {
        try {
          value = JSON.parse(raw);
        } catch {
          return fail('a JSON array');
        }
      }
      return Array.isArray(value) ? (value as unknown as Record<string, unknown>) : fail('a JSON array');
    }
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
  /** Options given in code (createServer): typed like the file's, applied over it; undefined is unset. */
  readonly values?: Readonly<Record<string, unknown>>;
}

/** Builds validated options from the layered sources; throws ConfigError naming the bad key. */
export function resolveOptions(sources: ConfigSources): ServerOptions {
  const options = defaultOptions() as unknown as Record<string, unknown>;
  if (sources.file !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(sources.file, 'utf8'));
    } catch (error) {
      // YAML and the like are a common guess: say which format is wanted. One line, though the
      // parser's message quotes the file's text, newlines and all.
      throw new ConfigError(`invalid configuration: cannot read config file ${sources.file} (it must be JSON): ${(error as Error).message.replace(/\s*\n\s*/g, ' ')}`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new ConfigError(`invalid configuration: config file ${sources.file} must hold a JSON object`);
    }
    const values = { ...(parsed as Record<string, unknown>) };
    // "$schema" points an editor at edgepush.schema.json: it is not an option.
    delete values['$schema'];
    applyTyped(options, values, `in ${sources.file}`);
  }
  if (sources.values !== undefined) applyTyped(options, sources.values, 'in the createServer options');
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
  checkIdentityOptions(result);
  return result;
}

/** Sets the options of a typed source (the file, or code) over `options`; unknown keys are errors. */
function applyTyped(options: Record<string, unknown>, values: Readonly<Record<string, unknown>>, where: string): void {
  for (const [key, raw] of Object.entries(values)) {
    if (raw === undefined) continue;
    if (!Object.hasOwn(OPTION_SPECS, key)) throw new ConfigError(`invalid configuration: unknown key "${key}" ${where}`);
    options[key] = coerce(key as keyof ServerOptions, raw, `"${key}" ${where}`, true);
  }
}

/** True when no identity option is set: the server is open to everyone (development, the demo). */
export function isOpenMode(options: ServerOptions): boolean {
  return options.jwtSecret === '' && options.jwtJwksUrl === '' && options.apiKeys === '' && options.anonymousCaps === null;
}

/** The API keys, from the comma-separated option. */
export function apiKeysOf(options: Pick<ServerOptions, 'apiKeys'>): string[] {
  return options.apiKeys.split(',').map((key) => key.trim()).filter((key) => key !== '');
}

/**
 * The identity options' own rules (key lengths, caps, CORS in closed mode). resolveOptions applies
 * them; startServer applies them again, for options given in code.
 */
export function checkIdentityOptions(options: ServerOptions): void {
  if (options.anonymousCaps !== null) {
    try {
      parseCaps(options.anonymousCaps, undefined, 'anonymousCaps');
    } catch (error) {
      if (error instanceof CapsError) throw new ConfigError(`invalid configuration: ${error.message}`);
      throw error;
    }
  }
  if (options.jwtJwksUrl !== '' && !/^https?:\/\//.test(options.jwtJwksUrl)) throw new ConfigError(`invalid configuration: jwtJwksUrl must be an http(s) URL, got ${JSON.stringify(options.jwtJwksUrl)}`);
  // A secret short enough to guess makes every token forgeable.
  if (options.jwtSecret !== '' && Buffer.byteLength(options.jwtSecret) < 32) throw new ConfigError('invalid configuration: jwtSecret must be at least 32 bytes (HS256 needs a key as long as its hash)');
  for (const key of apiKeysOf(options)) {
    if (key.length < 16) throw new ConfigError('invalid configuration: each API key must be at least 16 characters');
  }
  const origins = options.corsOrigin.split(',').map((origin) => origin.trim());
  if (origins.includes('*') && !isOpenMode(options)) {
    throw new ConfigError('invalid configuration: corsOrigin "*" is for open mode only; list the origins whose pages may connect (https://app.example.com,...)');
  }
}

/** Text of `--help`: every option with its flag, environment variable and default. */
export function helpText(): string {
  const lines = [
    'edgepush: push Kafka (or the embedded log) to browsers and apps over WebSocket, SSE and long-poll.',
    '',
    'Usage: edgepush [options]',
    '       edgepush healthcheck [options]   exit 0 when the server these options start is healthy (container HEALTHCHECK)',
    '       edgepush check-config <file>     check a config file by the server\'s rules: "ok" and exit 0, or the error and exit 2',
    '',
    'Options (each also settable as an EDGEPUSH_* environment variable or a key in the --config file):',
    '  --config <file>                 JSON file of options (keys as in docs/config.md)',
    '  -h, --help                      Show this help',
    '  -v, --version                   Print the version',
  ];
  for (const key of KEYS) {
    const spec = OPTION_SPECS[key];
    const flag = spec.kind === 'boolean' ? `--[no-]${flagName(key)}` : spec.kind === 'object' || spec.kind === 'array' ? `--${flagName(key)} <json>` : `--${flagName(key)} <value>`;
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
