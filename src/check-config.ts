/**
 * `edgepush check-config <file>`: checks a config file by the rules the server applies at start
 * (each option, the rules across options, identity, the Kafka block) without starting anything,
 * for a deploy pipeline to run before a rollout. The file alone: not the environment, not flags.
 * A bad file throws the ConfigError a start would (one line, exit code 2 in the CLI).
 */
import { readFileSync } from 'node:fs';
import { isOpenMode, resolveOptions } from './config.js';
import { kafkaOptionsOf } from './kafka/kafka-options.js';

/** The one-line summary of a valid file: `ok: …`. */
export function checkConfig(file: string): string {
  const options = resolveOptions({ file });
  const kafka = kafkaOptionsOf(options);
  const keys = Object.keys(JSON.parse(readFileSync(file, 'utf8')) as object).filter((key) => key !== '$schema');
  const source = kafka ? `Kafka at ${kafka.brokers.join(',')}, topics ${kafka.topics.map((topic) => topic.topic).join(', ')}` : 'the embedded log';
  const identity = isOpenMode(options) ? 'open mode (no identity option set)' : 'closed (identity options set)';
  return `ok: ${file} sets ${keys.length === 0 ? 'no options' : keys.join(', ')}; source: ${source}; ${identity}; port ${options.port}`;
}
