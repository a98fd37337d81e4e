/**
 * A copy of public/ with a freshly built client bundle (and any test pages), in a temp folder: the
 * browser tests serve it instead of public/, so they test the current src/client without racing
 * other builds of public/edgepush.js.
 */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildClient } from '../../src/client/build.mjs';

const root = new URL('../..', import.meta.url).pathname;

export interface DemoSite {
  readonly dir: string;
  remove(): void;
}

export async function prepareDemoSite(extraFolders: string[] = []): Promise<DemoSite> {
  const dir = mkdtempSync(join(tmpdir(), 'edgepush-site-'));
  cpSync(join(root, 'public'), dir, { recursive: true, filter: (path) => !/edgepush(\.js|\.js\.map|\.d\.ts|-types)/.test(path) });
  for (const folder of extraFolders) cpSync(join(root, folder), dir, { recursive: true });
  await buildClient({ outdir: dir, declarations: false });
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
