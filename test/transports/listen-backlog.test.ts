// The listening socket's accept queue: Node's default (511) overflowed when 10,000 clients
// reconnected at once (perf-notes: 30,861 overflows, 10-20 s waits). The server asks for
// listenBacklog (default 4096); `ss` shows what the kernel granted as the socket's Send-Q.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/start.js';
import { startTestServer } from '../helpers/server.js';

const ss = spawnSync('ss', ['-V']);
const hasSs = ss.status === 0;

/** The accept-queue length of the socket listening on `port` (ss -ltn: Send-Q), or undefined. */
function listenQueue(port: number): number | undefined {
  const out = spawnSync('ss', ['-ltnH', `sport = :${port}`], { encoding: 'utf8' }).stdout;
  const fields = out.trim().split(/\s+/);
  return fields.length >= 3 ? Number(fields[2]) : undefined;
}

describe.skipIf(!hasSs)(`listen backlog${hasSs ? '' : ' — SKIPPED: no ss (iproute2) on this machine'}`, () => {
  let server: RunningServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('the server listens with the configured backlog', async () => {
    server = await startTestServer({ listenBacklog: 777 });
    expect(listenQueue(server.port)).toBe(777);
  });

  it('by default 4096 (as far as the kernel allows), not Node\'s 511', async () => {
    server = await startTestServer();
    const somaxconn = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8'));
    expect(listenQueue(server.port)).toBe(Math.min(4096, somaxconn));
  });
});
