/**
 * /metrics in Prometheus conventions: the process and Node.js series under their standard names
 * (what stock dashboards query), and every edgepush series prefixed once.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/start.js';
import { startTestServer } from '../helpers/server.js';

describe('metric names', () => {
  let server: RunningServer;
  let names: string[];
  beforeAll(async () => {
    server = await startTestServer();
    const text = await (await fetch(`${server.url}/metrics`)).text();
    names = [...new Set(text.split('\n').filter((line) => line.startsWith('# TYPE ')).map((line) => line.split(' ')[2] as string))];
  });
  afterAll(async () => {
    await server.close();
  });

  it('has the standard process and Node.js series, not prefixed copies', () => {
    expect(names).toContain('process_cpu_seconds_total');
    expect(names).toContain('process_resident_memory_bytes');
    expect(names).toContain('nodejs_eventloop_lag_seconds');
    expect(names.filter((name) => name.includes('process_process') || name.startsWith('edgepush_process_') || name.startsWith('edgepush_nodejs'))).toEqual([]);
  });

  it('prefixes every other series with edgepush_, once', () => {
    const own = names.filter((name) => !name.startsWith('process_') && !name.startsWith('nodejs_'));
    expect(own.length).toBeGreaterThan(5);
    expect(own.filter((name) => !name.startsWith('edgepush_') || name.startsWith('edgepush_edgepush_'))).toEqual([]);
  });
});

describe('docs/metrics.md', () => {
  let server: RunningServer;
  let served: string[];
  const documented = new Map<string, boolean>();
  beforeAll(async () => {
    server = await startTestServer();
    const text = await (await fetch(`${server.url}/metrics`)).text();
    served = [...new Set(text.split('\n').filter((line) => line.startsWith('# TYPE edgepush_')).map((line) => line.split(' ')[2] as string))];
    const page = readFileSync(new URL('../../docs/metrics.md', import.meta.url), 'utf8');
    let kafkaSection = false;
    for (const line of page.split('\n')) {
      if (line.startsWith('## ')) kafkaSection = line.startsWith('## Kafka');
      const match = /^\| `(edgepush_[a-z_]+)` \|/.exec(line);
      if (match) documented.set(match[1] as string, kafkaSection);
    }
  });
  afterAll(async () => {
    await server.close();
  });

  it('documents every series /metrics serves', () => {
    expect(served.filter((name) => !documented.has(name))).toEqual([]);
  });

  it('serves every series it documents (the Kafka ones with a Kafka source)', () => {
    const expected = [...documented].filter(([, kafkaOnly]) => !kafkaOnly).map(([name]) => name);
    expect(expected.filter((name) => !served.includes(name))).toEqual([]);
    expect([...documented.keys()].every((name) => name.startsWith('edgepush_kafka_') === documented.get(name))).toBe(true);
  });
});
