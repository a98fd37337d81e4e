// kafka.controlTopic (docs/kafka.md, "The control topic"): edgepush's own topic for server-API
// commands, `edgepush-control` unless configured, never one of the consumed data topics.
import { describe, expect, it } from 'vitest';
import { ConfigError, defaultOptions } from '../../../src/config.js';
import { kafkaOptionsOf } from '../../../src/kafka/kafka-options.js';

const withKafka = (kafka: Record<string, unknown>) => kafkaOptionsOf({ ...defaultOptions(), kafka: { brokers: ['k:9092'], topics: ['jobs', 'prices'], ...kafka } });

describe('kafka.controlTopic', () => {
  it('defaults to edgepush-control', () => {
    expect(withKafka({})?.controlTopic).toBe('edgepush-control');
  });

  it('takes any other topic name', () => {
    expect(withKafka({ controlTopic: 'ops.edgepush-commands' })?.controlTopic).toBe('ops.edgepush-commands');
  });

  it('must be a topic name', () => {
    expect(() => withKafka({ controlTopic: 'no spaces' })).toThrow(ConfigError);
    expect(() => withKafka({ controlTopic: 5 })).toThrow(/kafka\.controlTopic must be a topic name/);
  });

  it('must not be one of the consumed topics', () => {
    expect(() => withKafka({ controlTopic: 'prices' })).toThrow(/kafka\.controlTopic must be a topic that is not one of the consumed topics \(jobs, prices\), got "prices"/);
  });
});
