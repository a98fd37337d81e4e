#!/usr/bin/env -S node --max-semi-space-size=8
/**
 * The `edgepush` command: reads options from flags, environment and an optional config file,
 * starts the server, and drains on SIGINT/SIGTERM: clients are told to reconnect elsewhere with
 * their cursors, and the process exits 0 once they are gone or drainTimeout has passed.
 *
 * --max-semi-space-size=8 (MB): a push server's garbage is short-lived and small. Left to itself,
 * Node 24 grows the young generation far larger, which measured 12-14 KiB of RSS per idle
 * connection at 10,000 against 5-7 with 8 MB; at 2 MB, fan-out and long-poll spent more CPU on
 * scavenges (WebSocket about 15 % more per delivery). See docs/benchmarks.md.
 */
import { parseArgs } from 'node:util';
import { checkConfig } from './check-config.js';
import { healthcheck } from './healthcheck.js';
import { ConfigError, OPTION_SPECS, flagName, helpText, resolveOptions } from './config.js';
import { KafkaStartError } from './kafka/kafka-source.js';
import { createLogger } from './logger.js';
import { packageVersion } from './package-root.js';
import { startServer } from './start.js';
import { isWorkerPrimary, superviseWorkers } from './workers.js';

function parseCommandLine(argv: string[]): { cli: Record<string, string | boolean>; file?: string; help: boolean; version: boolean } {
  const flags: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
    config: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
    version: { type: 'boolean', short: 'v' },
  };
  const keyOfFlag = new Map<string, string>();
  const negated = new Map<string, string>();
  for (const [key, spec] of Object.entries(OPTION_SPECS)) {
    flags[flagName(key)] = { type: spec.kind === 'boolean' ? 'boolean' : 'string' };
    keyOfFlag.set(flagName(key), key);
    // Node 20's parseArgs has no negation of its own: `--no-allow-publish` turns a default-on switch off.
    if (spec.kind === 'boolean') {
      flags[`no-${flagName(key)}`] = { type: 'boolean' };
      negated.set(`no-${flagName(key)}`, key);
    }
  }
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: argv, options: flags, strict: true, allowPositionals: false }) as { values: Record<string, string | boolean | undefined> });
  } catch (error) {
    throw new ConfigError(`invalid command line: ${(error as Error).message} (see --help)`);
  }
  const cli: Record<string, string | boolean> = {};
  for (const [flag, value] of Object.entries(values)) {
    const key = keyOfFlag.get(flag);
    if (key !== undefined && value !== undefined) cli[key] = value;
    const negatedKey = negated.get(flag);
    if (negatedKey !== undefined && value === true) cli[negatedKey] = false;
  }
  const file = typeof values['config'] === 'string' ? values['config'] : undefined;
  return { cli, help: values['help'] === true, version: values['version'] === true, ...(file !== undefined ? { file } : {}) };
}

async function main(): Promise<void> {
  if (process.argv[2] === 'check-config') return checkConfigCommand(process.argv.slice(3));
  let parsed;
  let options;
  // `edgepush healthcheck [options]`: the same options, a question instead of a server.
  const checking = process.argv[2] === 'healthcheck';
  try {
    parsed = parseCommandLine(process.argv.slice(checking ? 3 : 2));
    if (parsed.help) {
      process.stdout.write(helpText() + '\n');
      return;
    }
    if (parsed.version) {
      process.stdout.write(`edgepush ${packageVersion()}\n`);
      return;
    }
    options = resolveOptions({ cli: parsed.cli, env: process.env, ...(parsed.file !== undefined ? { file: parsed.file } : {}) });
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`edgepush: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  if (checking) {
    const healthy = await healthcheck(options);
    if (!healthy) process.stderr.write(`edgepush healthcheck: no healthy server on port ${options.port}\n`);
    process.exit(healthy ? 0 : 1);
  }
  if (isWorkerPrimary(options.workers)) {
    superviseWorkers(options.workers, createLogger(options.logLevel));
    return;
  }
  const server = await startServer(options);
  const everywhere = options.host === '0.0.0.0' || options.host === '::';
  server.app.log.info(
    `edgepush ready: source ${server.source.kind}, epoch ${server.source.epoch}${options.demo ? `; demo page at ${server.url}/` : ''}` +
      // Right in a container, surprising on a laptop: say it.
      (everywhere ? `; bound to all interfaces (--host 127.0.0.1 keeps it on this machine)` : ''),
  );
  let draining = false;
  const stop = (signal: string): void => {
    // One drain, bounded by drainTimeout: a second signal (a terminal's Ctrl-C reaches --workers
    // children as well as the primary, which forwards it) must not kill the process midway.
    if (draining) return;
    draining = true;
    server.app.log.info(`${signal}: draining: clients are told to reconnect elsewhere; exit once they are gone, within ${options.drainTimeout} s`);
    server.close().then(
      () => process.exit(0),
      (error: unknown) => {
        server.app.log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

/** `edgepush check-config <file>`: "ok" and a summary, exit 0; or the one-line error, exit 2. */
function checkConfigCommand(args: string[]): void {
  try {
    if (args.length !== 1 || args[0]?.startsWith('-')) throw new ConfigError('usage: edgepush check-config <file>');
    process.stdout.write(checkConfig(args[0] as string) + '\n');
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`edgepush: ${error.message}\n`);
    process.exit(2);
  }
}

main().catch((error: unknown) => {
  // What the operator must fix (a bad option, Kafka unreachable or a topic missing) is one line.
  if (error instanceof ConfigError || error instanceof KafkaStartError) {
    process.stderr.write(`edgepush: ${error.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`edgepush: failed to start: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
