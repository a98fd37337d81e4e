/**
 * The market board in a real Chromium (Debian's package, driven by playwright-core): live prices
 * over each transport (and automatic choice), through patterns, elided, and on MQTT.js; screenshots
 * are saved for a person to look at. The vehicle map has its own test (vehicle-map.test.ts).
 */
import { chromiumAvailable, demoInChromium, noChromium } from '../helpers/chromium.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const available = chromiumAvailable;

describe.skipIf(!available)(`the market board demo page in Chromium${available ? '' : ` (skipped: ${noChromium})`}`, () => {
  const demo = demoInChromium();

  it.each([
    ['auto', 'ws'],
    ['ws', 'ws'],
    ['sse', 'sse'],
    ['poll', 'poll'],
  ])('shows live prices (transport option %s, on %s)', async (option, expected) => {
    const page = await demo.browser.newPage({ viewport: { width: 1100, height: 720 } });
    try {
      await page.goto(`${demo.server.url}/?transport=${option}`);
      // A string predicate: it runs in the page, and this project's TypeScript has no DOM types.
      // The demo feed moves a random few tickers each tick: wait until most of the board shows prices
      // (what the assertions below check), not merely until some messages came.
      await page.waitForFunction(
        "Number(document.getElementById('count')?.textContent) >= 5 && [...document.querySelectorAll('#board tr td:nth-child(3)')].filter((c) => c.textContent !== '–').length > 6",
        undefined,
        { timeout: 30_000 },
      );
      expect(await page.textContent('#state')).toBe('connected');
      expect(await page.textContent('#via')).toBe(expected);
      const prices = await page.$$eval('#board tr td:nth-child(3)', (cells) => cells.map((c) => c.textContent));
      expect(prices.filter((p) => p !== '–').length).toBeGreaterThan(6);
      expect(await page.textContent('#cursor')).toMatch(/^[0-9a-z]+\./);
      expect(await page.textContent('#bytes')).toMatch(/\d+(\.\d)? (B|KiB|MiB)/);
      await page.screenshot({ path: `test-results/demo-${option}.png` });
    } finally {
      await page.close();
    }
  });

  it.each(['ws', 'sse', 'poll'])('shows one market through a pattern, at most one update per second per ticker, and what eliding saved (%s)', async (transport) => {
    const page = await demo.browser.newPage({ viewport: { width: 1100, height: 720 } });
    try {
      await page.goto(`${demo.server.url}/?transport=${transport}&market=${encodeURIComponent('US/NASDAQ/+')}&rate=1000`);
      // The snapshot fills the four NASDAQ rows at once; the feed ticks faster than once a second.
      await page.waitForFunction('window.edgepushBoard?.rows === 4 && window.edgepushBoard.saved > 0', undefined, { timeout: 30_000 });
      const channels = await page.$$eval('#board tr', (rows) => rows.map((row) => (row as unknown as { dataset: { channel: string } }).dataset.channel));
      expect(channels).toEqual(['US/NASDAQ/AAPL', 'US/NASDAQ/AMZN', 'US/NASDAQ/MSFT', 'US/NASDAQ/NVDA']);
      expect(Number(await page.textContent('#saved'))).toBeGreaterThan(0);
      expect(await page.textContent('#state')).toBe('connected');
      expect(await page.inputValue('#market')).toBe('US/NASDAQ/+');
      await page.screenshot({ path: `test-results/demo-nasdaq-${transport}.png` });
    } finally {
      await page.close();
    }
  });

  it('runs the same board on an unmodified MQTT.js over /mqtt', async () => {
    const page = await demo.browser.newPage({ viewport: { width: 1100, height: 720 } });
    try {
      await page.goto(`${demo.server.url}/?transport=mqtt`);
      await page.waitForFunction(
        "document.getElementById('via')?.textContent === 'mqtt' && [...document.querySelectorAll('#board tr td:nth-child(3)')].filter((c) => c.textContent !== '–').length > 6",
        undefined,
        { timeout: 30_000 },
      );
      expect(await page.textContent('#state')).toBe('connected');
      expect(await page.inputValue('#transport')).toBe('mqtt');
      await page.screenshot({ path: 'test-results/demo-mqtt.png' });
    } finally {
      await page.close();
    }
  });
});
