// The Kafka part of the configuration reaches the client as documented in docs/kafka.md: TLS and
// SASL pass through (mechanism names as the docs spell them), and client errors become one line.
import { describe, expect, it } from 'vitest';
import { clientOptions, describeKafkaError, failureKind } from '../../../src/kafka/kafka-client.js';
import type { KafkaOptions } from '../../../src/kafka/kafka-options.js';

const base: KafkaOptions = { brokers: ['k1:9092', 'k2:9092'], clientId: 'edge', topics: [{ topic: 't' }], publishTopic: 't', readBack: 0, deepResumeMaxRecords: 10, publishTimeout: 1000, controlTopic: 'edgepush-control', sessionTopic: 'edgepush-sessions' };

describe('Kafka client options', () => {
  it('brokers and a client id per role; no TLS or SASL unless configured', () => {
    const options = clientOptions(base, 'tail', 2);
    expect(options).toMatchObject({ clientId: 'edge-tail', bootstrapBrokers: ['k1:9092', 'k2:9092'], retries: 2 });
    expect(options).not.toHaveProperty('tls');
    expect(options).not.toHaveProperty('sasl');
  });

  it('ssl: true is TLS with the system CAs; an object is passed as the TLS options', () => {
    expect(clientOptions({ ...base, ssl: true }, 'tail', 0).tls).toEqual({});
    expect(clientOptions({ ...base, ssl: { rejectUnauthorized: false, ca: 'PEM' } }, 'tail', 0).tls).toEqual({ rejectUnauthorized: false, ca: 'PEM' });
    expect(clientOptions({ ...base, ssl: false }, 'tail', 0)).not.toHaveProperty('tls');
  });

  it('sasl: the documented lower-case mechanisms reach the client upper-case, with the credentials', () => {
    for (const mechanism of ['plain', 'scram-sha-256', 'scram-sha-512']) {
      expect(clientOptions({ ...base, sasl: { mechanism, username: 'u', password: 'p' } }, 'producer', 0).sasl).toEqual({ mechanism: mechanism.toUpperCase(), username: 'u', password: 'p' });
    }
  });
});

describe('Kafka client errors', () => {
  // The shape the client gives for an unreachable cluster: retries of "no broker" of a network error.
  const unreachable = Object.assign(new AggregateError([], 'metadata failed 3 times.'), {
    errors: [1, 2, 3].map(() => ({ message: 'Cannot connect to any broker.', errors: [{ message: 'Connection to k1:9092 failed.', cause: new Error('connect ECONNREFUSED 10.0.0.5:9092') }] })),
  });

  it('one line of the distinct innermost messages', () => {
    expect(describeKafkaError(unreachable)).toBe('connect ECONNREFUSED 10.0.0.5:9092');
    expect(describeKafkaError(new Error('plain'))).toBe('plain');
  });

  it('failures by kind, for the log line and the metric label', () => {
    expect(failureKind(unreachable)).toBe('unreachable');
    expect(failureKind(new Error('Unknown topic prices.'))).toBe('missing_topic');
    expect(failureKind(Object.assign(new Error('x'), { apiId: 'UNKNOWN_TOPIC_ID' }))).toBe('missing_topic');
    expect(failureKind(Object.assign(new Error('x'), { apiId: 'SASL_AUTHENTICATION_FAILED' }))).toBe('authentication');
    expect(failureKind(new Error('something else'))).toBe('other');
  });
});
