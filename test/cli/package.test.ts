// The npm package as a user gets it: `npm pack` on a fresh copy of the sources (its prepare script
// builds), `npm install <tarball>` into an empty folder, then `npx edgepush --demo` serves the board
// and its SSE stream, `import('edgepush')` starts a server, `edgepush/client` subscribes to it, and
// the types resolve through the package's exports.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/edgepush-process.js';

/** The sources a fresh clone has (tracked, plus new files not ignored), or why there are none. */
function cloneFiles(): string[] | string {
  const listed = spawnSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], { cwd: REPO_ROOT, encoding: 'utf8' });
  if (listed.error || listed.status !== 0) return `the sources are not a git checkout (git ls-files: ${listed.error?.message ?? listed.stderr.trim()})`;
  // node_modules may be a symlink, which .gitignore's "node_modules/" does not match.
  return listed.stdout.split('\0').filter((path) => path !== '' && path !== 'node_modules' && existsSync(join(REPO_ROOT, path)));
}

const files = cloneFiles();
const skip = typeof files === 'string' ? files : undefined;
if (skip) console.warn(`package test skipped: ${skip}`);

const work = mkdtempSync(join(tmpdir(), 'edgepush-package-'));
const app = join(work, 'app');
const children = new Set<ChildProcess>();
let tarball = '';

function run(command: string, args: readonly string[], cwd: string): string {
  // EDGEPUSH_* variables of the test's environment would be unknown options to the server.
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('EDGEPUSH_')));
  const result = spawnSync(command, args, { cwd, env, encoding: 'utf8', timeout: 240_000 });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (${result.error?.message ?? `exit ${result.status}`}): ${result.stdout}${result.stderr}`);
  return result.stdout;
}

beforeAll(() => {
  if (skip) return;
  const source = join(work, 'source');
  for (const path of files as string[]) cpSync(join(REPO_ROOT, path), join(source, path), { recursive: true });
  // The dependencies a clone's `npm ci` would install: the same, shared.
  symlinkSync(join(REPO_ROOT, 'node_modules'), join(source, 'node_modules'), 'dir');
  mkdirSync(join(work, 'packed'));
  run('npm', ['pack', '--pack-destination', join(work, 'packed')], source);
  const packed = readdirSync(join(work, 'packed')).filter((name) => name.endsWith('.tgz'));
  expect(packed).toHaveLength(1);
  tarball = join(work, 'packed', packed[0] as string);
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'edgepush-install-check', private: true, type: 'module' }));
  // From the npm cache that `npm ci` filled; the registry only for what it lacks.
  run('npm', ['install', tarball, '--prefer-offline', '--no-audit', '--no-fund'], app);
}, 300_000);

afterAll(() => {
  for (const child of children) if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

/** Starts `npx edgepush args` in the install folder; resolves with its URL once it is ready. */
async function startInstalled(args: readonly string[]): Promise<{ child: ChildProcess; url: string }> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('EDGEPUSH_')));
  // Its own process group: npx, the shell it may use and node go down together.
  const child = spawn('npx', ['--no-install', 'edgepush', ...args], { cwd: app, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let out = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not ready within 60 s: ${out}`)), 60_000);
    const read = (chunk: Buffer): void => {
      out += chunk.toString();
      const listening = /edgepush listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (listening && out.includes('edgepush ready')) {
        clearTimeout(timer);
        resolve(listening[1] as string);
      }
    };
    child.stdout?.on('data', read);
    child.stderr?.on('data', read);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`npx edgepush exited with ${code}: ${out}`));
    });
  });
  return { child, url };
}

/** The first message event of an SSE stream. */
async function firstSseMessage(url: string): Promise<{ channel: string; data: unknown }> {
  const abort = new AbortController();
  const response = await fetch(url, { signal: abort.signal });
  expect(response.status).toBe(200);
  const decoder = new TextDecoder();
  let text = '';
  try {
    for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
      text += decoder.decode(chunk, { stream: true });
      // An event of the default type is a message: `id:` then `data:`, no `event:` line.
      const event = text.split('\n\n').find((block) => /^id: .+\ndata: /.test(block));
      if (event) return JSON.parse(event.slice(event.indexOf('data: ') + 6)) as { channel: string; data: unknown };
    }
  } finally {
    abort.abort();
  }
  throw new Error(`the stream ended without a message: ${text}`);
}

describe.skipIf(skip !== undefined)('the npm package', () => {
  it('holds the built server, client, types and schema, and no sources or tests', () => {
    const listed = run('tar', ['-tzf', tarball], work).split('\n').filter(Boolean).map((path) => path.replace(/^package\//, ''));
    expect(listed).toEqual(
      expect.arrayContaining([
        'package.json',
        'README.md',
        'dist/src/cli.js',
        'dist/src/index.js',
        'dist/src/index.d.ts',
        'dist/transports/server.js',
        'public/index.html',
        'public/edgepush.js',
        'public/edgepush.min.js',
        'public/edgepush.d.ts',
        'public/edgepush-types/index.d.ts',
        'edgepush.schema.json',
        'docs/config.md',
      ]),
    );
    expect(listed.filter((path) => /^(src|test|transports|bench|deploy)\/|^dist\/src\/client\/|^dist\/.*\.map$|\.ts$/.test(path) && !path.endsWith('.d.ts'))).toEqual([]);
  });

  it('npx edgepush --demo serves the board, its client and a live SSE stream, and exits 0 on SIGTERM', async () => {
    const { child, url } = await startInstalled(['--demo', '--port', '0', '--host', '127.0.0.1', '--log-level', 'info']);
    const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('exit', (code, signal) => resolve([code, signal])));
    const board = await fetch(`${url}/`);
    expect(board.status).toBe(200);
    expect(await board.text()).toContain('<title>edgepush · live market board</title>');
    expect((await fetch(`${url}/edgepush.js`)).status).toBe(200);
    const message = await firstSseMessage(`${url}/v1/sse?channel=${encodeURIComponent('US/#')}`);
    expect(message.channel).toMatch(/^US\//);
    expect(message.data).toHaveProperty('lastPrice');
    // The server itself, as an orchestrator signals it (npx would die of the signal, not drain).
    const { pid } = (await (await fetch(`${url}/healthz`)).json()) as { pid: number };
    process.kill(pid, 'SIGTERM');
    // npx exits as the server did.
    expect(await exited).toEqual([0, null]);
  });

  it("import('edgepush') starts a server that edgepush/client subscribes to; edgepush/client/min and the schema resolve", () => {
    const script = `
      import { createServer } from 'edgepush';
      import { EdgePush } from 'edgepush/client';
      const server = await createServer({ port: 0, host: '127.0.0.1', logLevel: 'silent', demo: true });
      const client = new EdgePush(server.url);
      const message = await new Promise((resolve) => client.subscribe('US/NASDAQ/#', resolve));
      client.close();
      await server.close();
      const resolved = ['edgepush/client/min', 'edgepush/schema.json'].map((name) => import.meta.resolve(name).replace(/^.*\\/node_modules\\//, ''));
      console.log(JSON.stringify({ url: server.url, channel: message.channel, resolved }));`;
    const result = JSON.parse(run(process.execPath, ['--input-type=module', '-e', script], app)) as { url: string; channel: string; resolved: string[] };
    expect(result.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(result.channel).toMatch(/^US\/NASDAQ\//);
    expect(result.resolved).toEqual(['edgepush/public/edgepush.min.js', 'edgepush/edgepush.schema.json']);
  });

  it('the types resolve through the exports: createServer and its options, the client', () => {
    writeFileSync(
      join(app, 'check.ts'),
      `import { createServer, type EdgepushServer, type ServerOptions } from 'edgepush';
import { EdgePush, type Message } from 'edgepush/client';
const options: Partial<ServerOptions> = { port: 0, drainTimeout: 5 };
const server: Promise<EdgepushServer> = createServer(options);
// @ts-expect-error: port is a number
void createServer({ port: '8080' });
const client = new EdgePush('http://127.0.0.1:8080');
client.subscribe('jobs/1', (message: Message) => message.channel);
void server;
`,
    );
    writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({ compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', strict: true, noEmit: true, skipLibCheck: true, types: [] }, files: ['check.ts'] }));
    run(process.execPath, [join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], app);
  });
});
