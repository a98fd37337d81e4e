/**
 * /metrics in Prometheus conventions: the process and Node.js series under their standard names
 * (what stock dashboards query), and every edgepush series prefixed once.
 */
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
