/**
 * The job-progress use case, end to end: a backend that knows only Kafka writes progress records
 * keyed `jobs/<id>` to the topic `jobs`; two edgepush nodes read it behind nginx as a plain
 * round-robin load balancer (no stickiness); a page in Chromium follows the job with a bare
 * EventSource. The test kills one node, then the other (bringing the first back), so the browser's
 * stream is cut at least once and EventSource reconnects through the proxy to the other node with
 * its Last-Event-ID. The page must show every progress record once, in order.
 */
import type { Browser, Page } from 'playwright-core';
import { chromiumAvailable, noChromium, launchChromium } from '../helpers/chromium.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kafkaAvailability, startKafka, type KafkaBroker } from '../kafka/broker.mjs';
import { EdgepushProcess, ensureBuilt } from '../helpers/edgepush-process.js';
import { KafkaBackend, createTopic } from '../helpers/kafka-backend.js';
import { NGINX, nginxAvailable, type NginxProcess } from '../helpers/nginx.js';
import { startRoundRobinProxy } from '../helpers/round-robin-proxy.js';

const kafka = kafkaAvailability();
const missing = [
  chromiumAvailable ? undefined : noChromium,
  nginxAvailable ? undefined : `no nginx at ${NGINX} (.ci/setup-system.sh installs it)`,
  kafka.ok ? undefined : kafka.reason,
].filter((reason): reason is string => reason !== undefined);

const JOB = 'jobs/42';

// Runs in the page (a string: this project's TypeScript has no DOM types). Takes a cursor first so
// that nothing written after it can be missed, then follows the job with a bare EventSource.
const FOLLOW_JOB = `(async () => {
  const state = (window.__job = { progress: [], ids: [], resets: [], opens: 0, errors: 0 });
  const channel = encodeURIComponent(${JSON.stringify(JOB)});
  const start = await (await fetch('/v1/poll?channel=' + channel + '&timeout=0')).json();
  const source = new EventSource('/v1/sse?channel=' + channel + '&lastEventId=' + encodeURIComponent(start.cursor));
  source.onopen = () => state.opens++;
  source.onerror = () => state.errors++;
  source.onmessage = (event) => {
    const message = JSON.parse(event.data);
    state.progress.push(message.data.progress);
    state.ids.push(message.id);
  };
  source.addEventListener('reset', (event) => state.resets.push(JSON.parse(event.data)));
  window.__source = source;
})()`;

describe.skipIf(missing.length > 0)(`job progress from Kafka to a browser behind a round-robin proxy${missing.length ? ` (skipped: ${missing.join('; ')})` : ''}`, () => {
  let broker: KafkaBroker;
  let backend: KafkaBackend;
  let nodes: EdgepushProcess[] = [];
  let proxy: NginxProcess;
  let browser: Browser;

  beforeAll(async () => {
    const [started] = await Promise.all([startKafka({ version: 'latest' }), ensureBuilt()]);
    broker = started;
    await createTopic(broker.bootstrap, 'jobs', 3);
    backend = await KafkaBackend.connect(broker.bootstrap, 'jobs', 3);
    // A short reconnect delay only makes the test quicker; what it checks does not depend on it.
    const config = { reconnectDelay: 0.2, kafka: { brokers: [broker.bootstrap], topics: [{ topic: 'jobs' }], readBack: 1000 } };
    nodes = await Promise.all([EdgepushProcess.start({ config }), EdgepushProcess.start({ config })]);
    proxy = await startRoundRobinProxy(nodes.map((node) => node.url));
    browser = await launchChromium();
  }, 10 * 60_000);

  afterAll(async () => {
    await browser?.close();
    await proxy?.stop();
    await Promise.allSettled(nodes.map((node) => node.stop()));
    await backend?.disconnect().catch(() => {});
    await broker?.stop();
  }, 60_000);

  async function progressOf(page: Page, count: number): Promise<void> {
    await page.waitForFunction(`window.__job && window.__job.progress.length >= ${count}`, undefined, { timeout: 45_000 });
  }

  it('shows all 100 progress records of a job once, in order, while nodes die under it', async () => {
    const [one, two] = nodes as [EdgepushProcess, EdgepushProcess];
    let written = 0;
    const ids: string[] = [];
    // Progress of job 42, with another job's records in between (same topic, other keys).
    const write = async (upTo: number): Promise<void> => {
      for (; written < upTo; written += 10) {
        const records = [];
        for (let p = written + 1; p <= written + 10; p++) {
          records.push({ channel: JOB, data: { job: 42, progress: p, state: p === 100 ? 'done' : 'running' } });
          records.push({ channel: 'jobs/7', data: { job: 7, progress: p } });
        }
        const sent = await backend.send(records);
        ids.push(...sent.filter((_, i) => i % 2 === 0));
      }
    };

    const page = await browser.newPage();
    try {
      // Any page of the proxy's origin will do; the script talks to the same origin.
      await page.goto(`${proxy.url}/healthz`);
      await page.evaluate(FOLLOW_JOB);
      await page.waitForFunction('window.__job && window.__job.opens >= 1', undefined, { timeout: 30_000 });

      await write(30);
      await progressOf(page, 30);

      // Node one dies: if the browser was on it, EventSource reconnects through nginx to two.
      await one.kill('SIGKILL');
      await write(60);
      await progressOf(page, 60);

      // One comes back (re-reading the topic), two dies: the browser is on two, so it must move.
      await one.start();
      await two.kill('SIGKILL');
      await write(100);
      await progressOf(page, 100);

      const job = (await page.evaluate('window.__job')) as { progress: number[]; ids: string[]; resets: unknown[]; opens: number; errors: number };
      expect(job.progress).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
      expect(job.ids).toEqual(ids);
      expect(job.resets).toEqual([]);
      expect(job.errors).toBeGreaterThanOrEqual(1);
      expect(job.opens).toBeGreaterThanOrEqual(2);
      // By construction both nodes served the page: at 60 only two was alive, after that only one.
    } finally {
      await page.close();
    }
  }, 180_000);
});
