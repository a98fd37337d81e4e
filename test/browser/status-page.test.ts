/**
 * The status page in a real Chromium, on a closed server under a modest, bounded load: SSE,
 * WebSocket and MQTT subscribers, a backend publishing price ticks and news through the server
 * API, long-polls resuming from their cursors, and one SSE client that stopped reading (its outbox
 * fills). The page is opened with the
 * metrics token as ?token=, as an operator would; once its charts show deliveries, the busiest
 * channel and the stalled consumer, a screenshot is saved for a person to look at.
 */
import { mkdirSync } from 'node:fs';
import { get, type ClientRequest } from 'node:http';
import { setTimeout as pause } from 'node:timers/promises';
import type { Browser, Page } from 'playwright-core';
import { chromiumAvailable, noChromium, launchChromium } from '../helpers/chromium.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/start.js';
import { CountingMqtt, CountingSse, CountingWs, type CountingClient } from '../helpers/counting-clients.js';
import { publishAs, SECRET, userToken } from '../helpers/security-kit.js';
import { startTestServer } from '../helpers/server.js';

const available = chromiumAvailable;
const API_KEY = 'status-page-api-key-0123456789';
const METRICS_TOKEN = 'status-page-metrics-token-0123456789';

/** What the page must show before the screenshot: live deliveries, the busiest channel, the stalled client, some history. */
const LOADED = `(() => {
  const deliveries = Number(document.querySelector('#deliveries .now')?.dataset.value);
  const busiest = document.querySelector('#channels tbody tr td')?.textContent;
  const slow = document.querySelector('#consumers tbody tr td')?.textContent;
  const points = document.querySelector('#deliveries polyline')?.getAttribute('points')?.split(' ').length ?? 0;
  return deliveries > 0 && busiest === 'load/prices' && slow === 'sse' && points >= 15;
})()`;

/**
 * Resolves once `expression` holds in the page, asking every 250 ms. (waitForFunction evaluates its
 * predicate with eval, which the page's Content-Security-Policy rightly forbids; page.evaluate is
 * the browser's own and is not subject to it.)
 */
async function untilPage(page: Page, expression: string, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await page.evaluate(expression))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for the page to show ${what}`);
    await pause(250);
  }
}

describe.skipIf(!available)(`the status page in Chromium${available ? '' : ` (skipped: ${noChromium})`}`, () => {
  let server: RunningServer;
  let browser: Browser;
  const clients: CountingClient[] = [];
  let stalled: ClientRequest | undefined;

  beforeAll(async () => {
    server = await startTestServer({ jwtSecret: SECRET, apiKeys: API_KEY, metricsToken: METRICS_TOKEN });
    browser = await launchChromium();
    mkdirSync('test-results', { recursive: true });
  });
  afterAll(async () => {
    for (const client of clients) client.close();
    stalled?.destroy();
    await browser?.close();
    await server?.close();
  });

  it('charts connections, deliveries, ingest and resumes, and lists the busiest channel and the slowest consumer', async () => {
    const token = await userToken('viewer', [{ match: 'load/#', allow: ['sub'] }]);
    const query = (channel: string): string => `channel=${channel}&token=${encodeURIComponent(token)}`;
    clients.push(
      new CountingSse(server.url, query('load/prices')),
      new CountingSse(server.url, query('load/prices')),
      new CountingSse(server.url, query('load/prices')),
      new CountingSse(server.url, query('load/news')),
      new CountingWs(server.url, ['load/prices'], {}, token),
      new CountingWs(server.url, ['load/prices', 'load/news'], { delta: 'json-patch' }, token),
      new CountingMqtt(server.url, ['load/#'], token),
    );
    await Promise.all(clients.map((client) => client.ready));
    // A client that stops reading: its outbox fills once the sockets' buffers are full; it asked to
    // be conflated rather than cut off, so it stays, the slowest consumer.
    await new Promise<void>((resolve) => {
      stalled = get(`${server.url}/v1/sse?${query('load/bulk')}&onSlow=conflate`, (response) => {
        response.pause();
        resolve();
      });
    });

    // The load: bounded in count and time, paced, stopped as soon as the page shows what it must.
    let stop = false;
    const load = (async () => {
      const bulk = 'b'.repeat(48_000);
      let cursor = '';
      for (let tick = 0; tick < 1500 && !stop; tick++) {
        // Now and then a long-poll that resumes from its cursor: the resumes chart has something to show.
        if (tick % 10 === 0) {
          const polled = await fetch(`${server.url}/v1/poll?${query('load/news')}&timeout=0${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
          cursor = ((await polled.json()) as { cursor: string }).cursor;
        }
        const prices = Array.from({ length: 5 }, (_, i) => ({ channel: 'load/prices', data: { ticker: `T${i}`, price: 100 + Math.sin(tick / 10 + i) * 5, tick } }));
        const news = tick % 5 === 0 ? [{ channel: 'load/news', data: { headline: `update ${tick}` } }] : [];
        // Enough bulk to fill the stalled client's socket buffers (a few MB), then no more.
        const more = tick < 400 ? [{ channel: 'load/bulk', data: { tick, bulk } }] : [];
        const answer = await publishAs(server.url, API_KEY, { messages: [...prices, ...news, ...more] }, {}, '/v1/server/publish');
        expect(answer.status).toBe(201);
        await pause(40);
      }
    })();

    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    try {
      await page.goto(`${server.url}/status?token=${METRICS_TOKEN}`);
      await untilPage(page, LOADED, 'deliveries, load/prices as the busiest channel, the stalled SSE client and 15 samples', 60_000);
      expect(await page.textContent('#state')).toBe('live');
      expect(await page.textContent('#source')).toBe('embedded log');
      expect(await page.textContent('#lag')).toContain('Embedded log');
      // The connections legend: every transport with its count (four SSE streams and the stalled one).
      const legend = await page.$$eval('#connections .legend span', (keys) => keys.map((key) => key.textContent));
      expect(legend).toEqual(['ws 2', 'sse 5', 'poll 0', 'mqtt 1']);
      const busiest = await page.$$eval('#channels tbody tr', (rows) => rows.map((row) => [...row.querySelectorAll('td')].map((cell) => cell.textContent)));
      expect(busiest[0]?.[0]).toBe('load/prices');
      expect(busiest[0]?.[2]).toBe('5');
      expect(busiest.map((row) => row[0])).toEqual(expect.arrayContaining(['load/prices', 'load/news']));
      await page.screenshot({ path: 'test-results/status-page.png', fullPage: true });
    } finally {
      stop = true;
      await load;
      await page.close();
    }
  });
});
