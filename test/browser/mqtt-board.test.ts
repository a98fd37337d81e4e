/**
 * An unmodified MQTT.js (its browser bundle, served by this test) in a real Chromium: it connects
 * to /mqtt over WebSocket with a token, subscribes to a pattern, and renders the demo feed's live
 * prices, starting with the retained newest price of each ticker. A screenshot is saved.
 */
import { copyFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { chromiumAvailable, demoInChromium } from '../helpers/chromium.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SECRET, userToken } from '../helpers/security-kit.js';

const available = chromiumAvailable;

describe.skipIf(!available)('MQTT.js in Chromium', () => {
  const demo = demoInChromium({ jwtSecret: SECRET }, ['test/browser/fixtures'], (dir) => {
    // MQTT.js's own browser bundle, as an application would load it.
    const require = createRequire(import.meta.url);
    copyFileSync(join(require.resolve('mqtt/package.json'), '..', 'dist', 'mqtt.min.js'), join(dir, 'mqtt.min.js'));
  });

  for (const version of [4, 5]) {
    it(`subscribes to US/+/+ with a token (MQTT ${version}) and renders retained then live prices`, async () => {
      const token = await userToken('browser', [{ match: 'US/#', allow: ['sub'] }]);
      const page = await demo.browser.newPage({ viewport: { width: 900, height: 520 } });
      try {
        await page.goto(`${demo.server.url}/mqtt-board.html?filter=${encodeURIComponent('US/+/+')}&version=${version}&token=${encodeURIComponent(token)}`);
        // Seven US tickers in the demo feed: retained ones at once, then live ticks on top.
        await page.waitForFunction('window.mqttBoard?.topics.size === 7 && window.mqttBoard.count > window.mqttBoard.retained', undefined, { timeout: 30_000 });
        const topics = await page.$$eval('#board tr td:first-child', (cells) => cells.map((cell) => cell.textContent).sort());
        expect(topics).toEqual(['US/NASDAQ/AAPL', 'US/NASDAQ/AMZN', 'US/NASDAQ/MSFT', 'US/NASDAQ/NVDA', 'US/NYSE/IBM', 'US/NYSE/JPM', 'US/NYSE/KO']);
        expect(await page.textContent('#state')).toBe('connected');
        // Retained: the newest price of each ticker the feed had moved before the subscribe.
        expect(Number(await page.textContent('#retained'))).toBeGreaterThan(0);
        expect(Number(await page.textContent('#retained'))).toBeLessThanOrEqual(7);
        await page.screenshot({ path: `test-results/mqtt-board-v${version}.png` });
      } finally {
        await page.close();
      }
    });
  }
});
