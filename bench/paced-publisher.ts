/**
 * The publisher of bench/peers.ts: one message per HTTP request (Nchan has no batch publish, so
 * neither server gets one), over keep-alive connections, with at most `inFlight` requests out at
 * once, either as fast as that allows or paced to a fixed rate.
 *
 * Message i goes to channel i % C with seq floor(i / C), stamped just before its request is sent.
 * Each channel belongs to one of the `inFlight` lanes, which publishes its channels' messages one
 * request at a time: a channel never has two requests out, so its order is the publishing order.
 */
import http from 'node:http';
import { nowMs } from './ipc.js';
import type { PublishTarget } from './peer-server.js';
import { sleep } from './harness.js';

const REQUEST_TIMEOUT_MS = 10_000;

export interface PublishPlan {
  readonly channels: readonly string[];
  /** Seqs published on each channel: from `firstSeq` (0 when absent), this many. */
  readonly messagesPerChannel: number;
  readonly firstSeq?: number;
  /** Publish requests per second over all channels; undefined: as fast as the server answers. */
  readonly publishesPerSec: number | undefined;
  readonly inFlight: number;
  /** Approximate size of each payload, `{"seq":n,"sentAt":t,"pad":"xx…"}`. */
  readonly payloadBytes: number;
  /** Publishing fails if it is still going after this long. */
  readonly timeoutMs: number;
}

/** Publishes every message of the plan; resolves with the seconds it took. */
export async function publishAll(baseUrl: string, target: PublishTarget, plan: PublishPlan): Promise<number> {
  const { channels, messagesPerChannel, publishesPerSec } = plan;
  const firstSeq = plan.firstSeq ?? 0;
  const lanes = Math.min(plan.inFlight, channels.length);
  const agent = new http.Agent({ keepAlive: true, maxSockets: lanes });
  const pad = 'x'.repeat(Math.max(0, plan.payloadBytes - 48));
  const started = performance.now();
  const deadline = started + plan.timeoutMs;
  /** Set by the first lane that fails, so the others stop too. */
  let failure: Error | undefined;
  const lane = async (first: number): Promise<void> => {
    for (let seq = firstSeq; seq < firstSeq + messagesPerChannel; seq++) {
      for (let c = first; c < channels.length; c += lanes) {
        if (failure) return;
        if (publishesPerSec !== undefined) {
          const due = started + (((seq - firstSeq) * channels.length + c) * 1000) / publishesPerSec;
          const wait = due - performance.now();
          if (wait > 0) await sleep(wait);
        }
        if (performance.now() > deadline) throw new Error(`publishing still going after ${plan.timeoutMs} ms`);
        const { path, body } = target.request(channels[c] as string, `{"seq":${seq},"sentAt":${nowMs()},"pad":"${pad}"}`);
        const reply = await post(`${baseUrl}${path}`, body, agent);
        target.check(reply.status, reply.body);
      }
    }
  };
  try {
    await Promise.all(
      Array.from({ length: lanes }, (_, first) =>
        lane(first).catch((error: unknown) => {
          failure ??= error as Error;
        }),
      ),
    );
  } finally {
    agent.destroy();
  }
  if (failure) throw failure;
  return (performance.now() - started) / 1000;
}

function post(url: string, body: string, agent: http.Agent): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method: 'POST', agent, timeout: REQUEST_TIMEOUT_MS, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no reply to a publish within ${REQUEST_TIMEOUT_MS} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}
