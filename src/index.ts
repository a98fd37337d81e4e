/**
 * edgepush as a library: `import { createServer } from 'edgepush'` starts the server the
 * `edgepush` command starts, in this process, with the same options checked by the same rules.
 */
import { ConfigError, resolveOptions, type ServerOptions } from './config.js';
import { startServer } from './start.js';

export { ConfigError, defaultOptions, type ServerOptions } from './config.js';
export { KafkaStartError } from './kafka/kafka-source.js';

export interface EdgepushServer {
  /** `http://host:port` as bound (the real port when port 0 was asked for). */
  readonly url: string;
  readonly port: number;
  /** `http://host:port` of the /metrics listener when metricsPort is set. */
  readonly metricsUrl: string | undefined;
  /**
   * Drains and stops: clients are told to reconnect elsewhere with their cursors, and it resolves
   * once they are gone or drainTimeout seconds have passed.
   */
  close(): Promise<void>;
}

/**
 * Starts a server with `options` over the defaults (docs/config.md), and resolves once it listens.
 * Throws ConfigError for an invalid option (the message is the command's one line) and
 * KafkaStartError when Kafka cannot be reached or a topic is missing. The environment is not read.
 */
export async function createServer(options: Partial<ServerOptions> = {}): Promise<EdgepushServer> {
  const resolved = resolveOptions({ values: options });
  // node:cluster needs a script to fork; the command has one, a library caller owns its processes.
  if (resolved.workers > 1) throw new ConfigError('invalid configuration: workers is an option of the edgepush command; with createServer, start one server per process');
  const server = await startServer(resolved);
  return { url: server.url, port: server.port, metricsUrl: server.metricsUrl, close: () => server.close() };
}
