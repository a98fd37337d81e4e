/**
 * The vehicle demo in a real Chromium (Debian's package, driven by playwright-core), against a
 * server running `--demo`: the page draws the city the feed publishes on `city/map` (streets, the
 * river, parks, every bus route in its colour with a legend) and the 150 buses gliding along their
 * routes, with what deltas saved. Screenshots are saved for a person to look at.
 */
import type { Page } from 'playwright-core';
import { chromiumAvailable, demoInChromium, noChromium } from '../helpers/chromium.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const available = chromiumAvailable;

describe.skipIf(!available)(`the vehicle map demo page in Chromium${available ? '' : ` (skipped: ${noChromium})`}`, () => {
  const demo = demoInChromium();

  /** Opens the page and waits (in the page: this project's TypeScript has no DOM types) until the map is drawn and most buses have visibly moved. */
  async function openMap(delta: string): Promise<Page> {
    const page = await demo.browser.newPage({ viewport: { width: 1280, height: 860 } });
    await page.goto(`${demo.server.url}/vehicles.html?delta=${delta}`);
    await page.waitForFunction('window.edgepushVehicles?.mapReady && window.edgepushVehicles.moved >= 100', undefined, { timeout: 30_000 });
    return page;
  }

  it('draws the city with its coloured routes and at least 100 buses moving along them, and shows what VCDIFF deltas saved', async () => {
    const page = await openMap('vcdiff');
    try {
      expect(await page.textContent('#state')).toBe('connected');
      expect(await page.textContent('#via')).toBe('ws');
      expect(await page.textContent('#city')).not.toBe('…');
      // A city rather than an empty box: streets and avenues, a river, parks.
      expect(await page.locator('#map .street').count()).toBeGreaterThan(20);
      expect(await page.locator('#map .avenue').count()).toBeGreaterThan(3);
      expect(await page.locator('#map .river').count()).toBe(1);
      expect(await page.locator('#map .park').count()).toBeGreaterThanOrEqual(1);
      // Every route in a colour of its own, each in the legend.
      const routeColours = await page.$$eval('#map .route', (lines) => lines.map((line) => line.getAttribute('stroke')));
      expect(routeColours.length).toBeGreaterThanOrEqual(8);
      expect(new Set(routeColours).size).toBe(routeColours.length);
      expect(await page.locator('#legend li').count()).toBe(routeColours.length);
      // The buses: markers in their route's colour; the legend counts them all.
      const busColours = await page.$$eval('#map .bus path', (markers) => markers.map((marker) => marker.getAttribute('fill')));
      expect(busColours.length).toBeGreaterThanOrEqual(100);
      expect(busColours.every((colour) => routeColours.includes(colour))).toBe(true);
      const perRoute = await page.$$eval('#legend [data-route]', (cells) => cells.map((cell) => Number(cell.textContent)));
      expect(perRoute.reduce((sum, n) => sum + n, 0)).toBeGreaterThanOrEqual(100);
      // Deltas on: fewer bytes arrived than the full messages the page rebuilt, as a share and in bytes.
      await page.waitForFunction("Number.parseInt(document.getElementById('saved')?.textContent) > 0", undefined, { timeout: 10_000 });
      expect(await page.textContent('#saved')).toMatch(/^\d+% \(\d+(\.\d)? (B|KiB|MiB)\)$/);
      // The rate shows '–' until the page has two one-second counts to compare.
      await page.waitForFunction("Number(document.getElementById('rate')?.textContent) > 0", undefined, { timeout: 10_000 });
      await page.screenshot({ path: 'test-results/vehicle-map-vcdiff.png' });
    } finally {
      await page.close();
    }
  });

  it('runs on JSON Patch deltas too', async () => {
    const page = await openMap('json-patch');
    try {
      expect(await page.textContent('#state')).toBe('connected');
      expect(await page.locator('#map .bus').count()).toBeGreaterThanOrEqual(100);
      expect(await page.inputValue('#delta')).toBe('json-patch');
      await page.screenshot({ path: 'test-results/vehicle-map-json-patch.png' });
    } finally {
      await page.close();
    }
  });
});
