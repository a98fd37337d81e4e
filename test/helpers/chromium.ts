/**
 * Debian's Chromium for the browser tests, driven by playwright-core: where it is, whether it is
 * there (the tests skip with the reason when not), one way to launch it, and the demo site served
 * to it.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll } from 'vitest';
import type { ServerOptions } from '../../src/config.js';
import type { RunningServer } from '../../src/start.js';
import { prepareDemoSite, type DemoSite } from './demo-site.js';
import { startTestServer } from './server.js';

export const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
export const chromiumAvailable = existsSync(CHROMIUM);
/** What a skipped browser test says. */
export const noChromium = `no browser at ${CHROMIUM} (.ci/setup-system.sh installs Debian's chromium)`;

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

/** What {@link demoInChromium} sets up: valid inside the tests of the describe that called it. */
export interface DemoInChromium {
  readonly server: RunningServer;
  readonly browser: Browser;
}

/**
 * Call inside a describe: before its tests, the demo site (public/ with the current client bundle,
 * plus `extraFolders`), a server with the demo feeds serving it, and Chromium; after them, all gone.
 * `addFiles` puts more files into the site before the server starts.
 */
export function demoInChromium(serverOptions: Partial<ServerOptions> = {}, extraFolders: string[] = [], addFiles?: (dir: string) => void): DemoInChromium {
  let site: DemoSite | undefined;
  let server: RunningServer | undefined;
  let browser: Browser | undefined;
  beforeAll(async () => {
    site = await prepareDemoSite(extraFolders);
    addFiles?.(site.dir);
    server = await startTestServer({ demo: true, ...serverOptions }, { publicDir: site.dir });
    browser = await launchChromium();
    mkdirSync('test-results', { recursive: true });
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    site?.remove();
  });
  return {
    get server() {
      return server as RunningServer;
    },
    get browser() {
      return browser as Browser;
    },
  };
}
