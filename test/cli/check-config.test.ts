// `edgepush check-config <file>`: a deploy pipeline's check of a config file, by the rules a start
// applies: "ok" and a summary with exit 0, or the start's one-line error with exit 2.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, REPO_ROOT, ensureBuilt } from '../helpers/edgepush-process.js';

const dir = mkdtempSync(join(tmpdir(), 'edgepush-check-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
/** Writes `content` (an object as JSON, or text as it is) to a file of its own. */
function configFile(content: unknown): string {
  const path = join(dir, `config-${++files}.json`);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

async function checkConfig(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  await ensureBuilt();
  // No EDGEPUSH_* variable of the test's environment may leak into a check of the file alone.
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('EDGEPUSH_')));
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, 'check-config', ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('edgepush check-config', () => {
  it('a valid file: "ok", what it sets, the source and the identity mode; exit 0', async () => {
    const file = configFile({ $schema: './node_modules/edgepush/edgepush.schema.json', port: 9000, historySize: 500, kafkaBrokers: 'kafka-0:9092,kafka-1:9092', kafkaTopics: 'jobs,prices', apiKeys: 'backend-key-0123456789' });
    const { code, stdout, stderr } = await checkConfig(file);
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    expect(stdout).toBe(`ok: ${file} sets port, historySize, kafkaBrokers, kafkaTopics, apiKeys; source: Kafka at kafka-0:9092,kafka-1:9092, topics jobs, prices; closed (identity options set); port 9000\n`);
  });

  it('an empty object is valid: the defaults, the embedded log, open mode', async () => {
    const file = configFile({});
    expect(await checkConfig(file)).toEqual({ code: 0, stdout: `ok: ${file} sets no options; source: the embedded log; open mode (no identity option set); port 8080\n`, stderr: '' });
  });

  it.each([
    ['an unknown key', { prot: 8080 }, 'unknown key "prot"'],
    ['a number given as a string', { port: '8080' }, '"port" in FILE must be an integer (a JSON number, not a string)'],
    ['a value out of range', { drainTimeout: -1 }, '"drainTimeout" in FILE must be a number >= 0 and <= 3600, got -1'],
    ['an unknown log level', { logLevel: 'verbose' }, '"logLevel" in FILE must be one of fatal, error, warn, info, debug, trace, silent'],
    ['a rule across options', { pollTimeout: 90 }, 'pollTimeout (90) must not exceed pollMaxTimeout (60)'],
    ['--workers without Kafka', { workers: 2 }, 'workers > 1 needs Kafka'],
    ['a bad Kafka block', { kafka: { brokers: ['no-port'], topics: [{ topic: 'jobs' }] } }, 'kafka.brokers must be a non-empty list of host:port'],
    ['a short JWT secret', { jwtSecret: 'short' }, 'jwtSecret must be at least 32 bytes'],
    ['YAML instead of JSON', 'port: 8080\n', 'cannot read config file FILE (it must be JSON)'],
  ])('%s: one line naming the problem, exit 2', async (_what, content, message) => {
    const file = configFile(content);
    const { code, stdout, stderr } = await checkConfig(file);
    expect({ code, stdout }).toEqual({ code: 2, stdout: '' });
    expect(stderr).toMatch(/^edgepush: invalid configuration: [^\n]+\n$/);
    expect(stderr).toContain(message.replace('FILE', file));
  });

  it('a missing file, or no file named: one line, exit 2', async () => {
    const missing = await checkConfig(join(dir, 'missing.json'));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^edgepush: invalid configuration: cannot read config file [^\n]+missing\.json[^\n]*\n$/);
    expect(await checkConfig()).toEqual({ code: 2, stdout: '', stderr: 'edgepush: usage: edgepush check-config <file>\n' });
  });
});
