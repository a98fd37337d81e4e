/**
 * /metrics in Prometheus conventions: the process and Node.js series under their standard names
 * (what stock dashboards query), every edgepush series prefixed once, counters and only counters
 * ending in _total; and docs/metrics.md lists exactly the series served, each with its type.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/start.js';
import { startTestServer } from '../helpers/server.js';

describe('metric names', () => {
  let server: RunningServer;
  let types: Map<string, string>;
  let names: string[];
  beforeAll(async () => {
    server = await startTestServer();
    types = typesOf(await (await fetch(`${server.url}/metrics`)).text());
    names = [...types.keys()];
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

  it('names counters with _total, and nothing else', () => {
    const own = [...types].filter(([name]) => name.startsWith('edgepush_'));
    expect(own.filter(([name, type]) => (type === 'counter') !== name.endsWith('_total')).map(([name]) => name)).toEqual([]);
  });
});

/** Each series' type, from the `# TYPE name type` lines of Prometheus text. */
function typesOf(text: string): Map<string, string> {
  return new Map(text.split('\n').filter((line) => line.startsWith('# TYPE ')).map((line) => line.split(' ').slice(2, 4) as [string, string]));
}

describe('docs/metrics.md', () => {
  let server: RunningServer;
  let served: string[];
  let types: Map<string, string>;
  const documented = new Map<string, boolean>();
  const documentedTypes = new Map<string, string>();
  beforeAll(async () => {
    server = await startTestServer();
    const text = await (await fetch(`${server.url}/metrics`)).text();
    types = typesOf(text);
    served = [...types.keys()].filter((name) => name.startsWith('edgepush_'));
    const page = readFileSync(new URL('../../docs/metrics.md', import.meta.url), 'utf8');
    let kafkaSection = false;
    for (const line of page.split('\n')) {
      if (line.startsWith('## ')) kafkaSection = line.startsWith('## Kafka');
      const match = /^\| `(edgepush_[a-z_]+)` \| ([a-z]+) \|/.exec(line);
      if (!match) continue;
      documented.set(match[1] as string, kafkaSection);
      documentedTypes.set(match[1] as string, match[2] as string);
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

  it('gives each series the type /metrics declares', () => {
    const wrong = served.filter((name) => documentedTypes.get(name) !== types.get(name)).map((name) => `${name}: documented ${documentedTypes.get(name)}, served ${types.get(name)}`);
    expect(wrong).toEqual([]);
    // The Kafka ones, served only with a Kafka source, are held to the same conventions.
    expect([...documentedTypes.values()].filter((type) => !['counter', 'gauge', 'histogram'].includes(type))).toEqual([]);
    expect([...documentedTypes].filter(([name, type]) => (type === 'counter') !== name.endsWith('_total')).map(([name]) => name)).toEqual([]);
  });
});
