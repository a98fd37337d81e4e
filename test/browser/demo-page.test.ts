/**
 * The demo page in a real Chromium (Debian's package, driven by playwright-core): it loads, shows
 * live prices over each transport, and a screenshot is saved for a person to look at.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/start.js';
import { startTestServer } from '../helpers/server.js';

const CHROMIUM = process.env['EDGEPUSH_CHROMIUM'] ?? '/usr/bin/chromium';
const available = existsSync(CHROMIUM);

describe.skipIf(!available)(`demo page in Chromium${available ? '' : ` (skipped: no browser at ${CHROMIUM}; .ci/setup installs Debian's chromium)`}`, () => {
  let server: RunningServer;
  let browser: Browser;

  beforeAll(async () => {
    // The real public/ folder, as `edgepush --demo` serves it.
    server = await startTestServer({ demo: true }, { publicDir: new URL('../../public', import.meta.url).pathname });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it.each(['ws', 'sse', 'poll'])('shows live prices over %s', async (transport) => {
    const page = await browser.newPage({ viewport: { width: 1100, height: 720 } });
    try {
      await page.goto(`${server.url}/?transport=${transport}`);
      // A string predicate: it runs in the page, and this project's TypeScript has no DOM types.
      await page.waitForFunction("Number(document.getElementById('count')?.textContent) >= 5", undefined, { timeout: 30_000 });
      expect(await page.textContent('#state')).toBe('live');
      const prices = await page.$$eval('#board tr td:nth-child(3)', (cells) => cells.map((c) => c.textContent));
      expect(prices.filter((p) => p !== '–').length).toBeGreaterThan(6);
      expect(await page.textContent('#cursor')).toMatch(/^[0-9a-z]+\./);
      mkdirSync('test-results', { recursive: true });
      await page.screenshot({ path: `test-results/demo-${transport}.png` });
    } finally {
      await page.close();
    }
  });
});
