// What `edgepush` says when it starts: one line per address it listens on and one "ready" line,
// not fastify's "Server listening at" on top of ours (findings.md: the address was logged twice).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI, REPO_ROOT, ensureBuilt } from '../helpers/edgepush-process.js';
import { startTestServer } from '../helpers/server.js';

/** Starts the CLI, collects its log until the "ready" line (bounded), then stops it. */
async function startupLog(args: readonly string[]): Promise<string[]> {
  await ensureBuilt();
  const child = spawn(process.execPath, [CLI, '--port', '0', ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ready line within 30 s: ${out}`)), 30_000);
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('edgepush ready')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => reject(new Error(`exited with ${code}: ${out}`)));
    });
  } finally {
    child.kill('SIGKILL');
  }
  return out.trim().split('\n').map((line) => (JSON.parse(line) as { msg: string }).msg);
}

describe('start-up log', () => {
  it('on 127.0.0.1: one "listening on" line, one "ready" line, nothing from fastify', async () => {
    const lines = await startupLog(['--host', '127.0.0.1']);
    expect(lines.filter((line) => line.includes('listening'))).toEqual([expect.stringMatching(/^edgepush listening on http:\/\/127\.0\.0\.1:\d+$/)]);
    expect(lines.filter((line) => line.startsWith('edgepush ready'))).toEqual([expect.stringMatching(/^edgepush ready: source embedded, epoch [0-9a-z]+$/)]);
  });

  it('bound to all interfaces (the default), it says so and how to keep it local', async () => {
    const lines = await startupLog([]);
    expect(lines.some((line) => line.startsWith('Server listening'))).toBe(false);
    expect(lines.find((line) => line.startsWith('edgepush ready'))).toMatch(/bound to all interfaces \(--host 127\.0\.0\.1 keeps it on this machine\)/);
  });
});

describe('edgepush -h and --version', () => {
  const run = async (args: readonly string[]): Promise<{ code: number | null; stdout: string }> => {
    await ensureBuilt();
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [CLI, ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      child.once('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout });
      });
    });
  };

  it('-h prints the help, like --help, and exits 0', async () => {
    const short = await run(['-h']);
    expect(short.code).toBe(0);
    expect(short.stdout).toContain('Usage: edgepush [options]');
    expect(short.stdout).toBe((await run(['--help'])).stdout);
  });

  it('--version and -v print the package version and exit 0', async () => {
    const { version } = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-v']) expect(await run([flag])).toEqual({ code: 0, stdout: `edgepush ${version}\n` });
  });
});

describe('edgepush healthcheck', () => {
  const check = async (args: readonly string[], env: Record<string, string> = {}): Promise<number | null> => {
    await ensureBuilt();
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [CLI, 'healthcheck', ...args], { cwd: REPO_ROOT, stdio: 'ignore', env: { ...process.env, ...env } });
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      child.once('exit', (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
  };

  it('exits 0 for a healthy server on the configured port (flag or EDGEPUSH_PORT), 1 where none answers', async () => {
    const server = await startTestServer();
    try {
      const port = String(server.port);
      expect(await check(['--port', port])).toBe(0);
      expect(await check([], { EDGEPUSH_PORT: port })).toBe(0);
    } finally {
      await server.close();
    }
    expect(await check(['--port', String(server.port)])).toBe(1);
  });
});
