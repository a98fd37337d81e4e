/**
 * The client library in Chromium behind restrictive proxies (real nginx processes): one that
 * refuses WebSocket upgrades (the client must end up on SSE), one that also holds streamed
 * responses back (the client must end up on long-poll). On each, and directly, a page receives a
 * numbered sequence: every number once, in order, across going offline, a proxy restart and a reload.
 * Thresholds are short through the page's options: configuration, not timing assertions.
 */
import { mkdirSync } from 'node:fs';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { chromiumAvailable, launchChromium, noChromium } from '../helpers/chromium.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/start.js';
import { prepareDemoSite, type DemoSite } from '../helpers/demo-site.js';
import { NGINX, nginxAvailable, startRestrictiveProxy, type NginxProcess } from '../helpers/nginx.js';
import { publish, startTestServer } from '../helpers/server.js';

const missing = [chromiumAvailable ? '' : `no browser (${noChromium})`, nginxAvailable ? '' : `no nginx at ${NGINX}`].filter(Boolean).join(', ');
const title = `client library in Chromium behind nginx${missing ? ` (skipped: ${missing}; .ci/setup-system.sh installs chromium and nginx-light)` : ''}`;

/** Server heartbeat 0.5 s; the page's client is told so, and its thresholds follow. */
const PAGE_OPTIONS = 'heartbeat=500&firstEvent=1500&batchWindow=3000&wsOpen=3000&backoff=100&backoffMax=500';

describe.skipIf(missing !== '')(title, () => {
  let server: RunningServer;
  let site: DemoSite;
  let browser: Browser;
  const proxies: Record<string, NginxProcess> = {};
  let next = 0;

  beforeAll(async () => {
    site = await prepareDemoSite(['test/browser/fixtures']);
    server = await startTestServer({ heartbeatInterval: 0.5, reconnectDelay: 0.05, historySize: 1000 }, { publicDir: site.dir });
    proxies['no-websocket'] = await startRestrictiveProxy(server.url, 'no-websocket');
    proxies['buffering'] = await startRestrictiveProxy(server.url, 'buffering');
    browser = await launchChromium();
    mkdirSync('test-results', { recursive: true });
  });
  afterAll(async () => {
    await browser?.close();
    for (const proxy of Object.values(proxies)) await proxy.stop();
    await server?.close();
    site?.remove();
  });

  const origins = (): [string, string, string][] => [
    ['direct', server.url, 'ws'],
    ['no-websocket', proxies['no-websocket']!.url, 'sse'],
    ['buffering', proxies['buffering']!.url, 'poll'],
  ];

  /** Publishes the next `count` numbers of a channel's sequence (directly to the server). */
  async function publishNumbers(channel: string, from: number, count: number): Promise<number> {
    await publish(server.url, Array.from({ length: count }, (_, i) => ({ channel, data: from + i })));
    return from + count;
  }

  async function openSequencePage(context: BrowserContext, origin: string, channel: string): Promise<Page> {
    const page = await context.newPage();
    await page.goto(`${origin}/sequence.html?channel=${encodeURIComponent(channel)}&${PAGE_OPTIONS}`);
    await page.waitForFunction("window.sequence?.state === 'connected'", undefined, { timeout: 30_000 });
    return page;
  }

  const receivedCount = (count: number): string => `window.sequence?.received.length >= ${count}`;
  const received = (page: Page): Promise<unknown[]> => page.evaluate('window.sequence.received') as Promise<unknown[]>;
  const sequence = (count: number): number[] => Array.from({ length: count }, (_, i) => i);

  it.each([0, 1, 2])('ends on the expected transport and receives every message once (setup %i)', async (index) => {
    const [name, origin, transport] = origins()[index]!;
    const context = await browser.newContext();
    try {
      const channel = `browser/${name}/${++next}`;
      const page = await openSequencePage(context, origin, channel);
      expect(await page.evaluate('window.sequence.transport')).toBe(transport);
      let sent = 0;
      for (let round = 0; round < 5; round++) {
        sent = await publishNumbers(channel, sent, 20);
        await page.waitForFunction(receivedCount(sent), undefined, { timeout: 30_000 });
      }
      expect(await received(page)).toEqual(sequence(sent));
      expect(await page.evaluate('window.sequence.connected')).toEqual([transport]);
      await page.screenshot({ path: `test-results/client-${name}.png` });
    } finally {
      await context.close();
    }
  });

  it.each([0, 1, 2])('resumes with nothing lost after going offline for a while (setup %i)', async (index) => {
    const [name, origin, transport] = origins()[index]!;
    const context = await browser.newContext();
    try {
      const channel = `offline/${name}/${++next}`;
      const page = await openSequencePage(context, origin, channel);
      let sent = await publishNumbers(channel, 0, 10);
      await page.waitForFunction(receivedCount(sent), undefined, { timeout: 30_000 });
      await context.setOffline(true);
      await page.waitForFunction("window.sequence.state !== 'connected'", undefined, { timeout: 30_000 });
      sent = await publishNumbers(channel, sent, 15);
      await context.setOffline(false);
      sent = await publishNumbers(channel, sent, 5);
      await page.waitForFunction(receivedCount(sent), undefined, { timeout: 30_000 });
      expect(await received(page)).toEqual(sequence(sent));
      expect(await page.evaluate('window.sequence.transport')).toBe(transport);
    } finally {
      await context.close();
    }
  });

  it('resumes with nothing lost when the proxy itself goes away and comes back', async () => {
    const proxy = proxies['no-websocket']!;
    const context = await browser.newContext();
    try {
      const channel = `proxy-restart/${++next}`;
      const page = await openSequencePage(context, proxy.url, channel);
      let sent = await publishNumbers(channel, 0, 10);
      await page.waitForFunction(receivedCount(sent), undefined, { timeout: 30_000 });
      await proxy.kill();
      await page.waitForFunction("window.sequence.state !== 'connected'", undefined, { timeout: 30_000 });
      sent = await publishNumbers(channel, sent, 15);
      await proxy.resume();
      await page.waitForFunction(receivedCount(sent), undefined, { timeout: 30_000 });
      expect(await received(page)).toEqual(sequence(sent));
      expect(await page.evaluate('window.sequence.transport')).toBe('sse');
    } finally {
      await context.close();
    }
  });

  it.each([0, 1, 2])('a reload resumes from the persisted cursor, nothing lost or repeated (setup %i)', async (index) => {
    const [name, origin, transport] = origins()[index]!;
    const context = await browser.newContext();
    try {
      const channel = `reload/${name}/${++next}`;
      const page = await openSequencePage(context, origin, channel);
      let sent = await publishNumbers(channel, 0, 10);
      await page.waitForFunction(receivedCount(sent), undefined, { timeout: 30_000 });
      // Published around the reload: some arrive before it, the rest must come after it.
      sent = await publishNumbers(channel, sent, 10);
      await page.reload();
      sent = await publishNumbers(channel, sent, 10);
      await page.waitForFunction(`window.sequence?.reloads === 1 && window.sequence.state === 'connected'`, undefined, { timeout: 30_000 });
      sent = await publishNumbers(channel, sent, 5);
      await page.waitForFunction(receivedCount(sent), undefined, { timeout: 30_000 });
      expect(await received(page)).toEqual(sequence(sent));
      // The transport that worked was remembered: the reloaded page went straight to it.
      expect(await page.evaluate('window.sequence.connected')).toEqual([transport]);
      expect(await page.evaluate('window.sequence.resets')).toEqual([]);
    } finally {
      await context.close();
    }
  });
});
