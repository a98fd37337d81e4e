/**
 * Delivery bookkeeping for the load generator: which (subscriber, seq) pairs arrived, how often,
 * and how late. Envelopes are scanned with indexOf rather than JSON.parse: the publisher controls
 * the payload shape ({"seq":N,"sentAt":T,"pad":"xx…"}), and a full parse per delivery would make
 * the client, not the server, the bottleneck on a machine where both share two cores.
 */
import { nowMs } from './ipc.js';

export class Subscriber {
  readonly seen: Uint8Array;
  /** `"channel":"bench/3"`: what every envelope this subscriber receives must carry. */
  readonly channelField: string;
  lastSeq = -1;

  constructor(readonly channel: string, messagesPerChannel: number) {
    this.seen = new Uint8Array(messagesPerChannel);
    this.channelField = `"channel":${JSON.stringify(channel)}`;
  }
}

const CHANNEL_KEY = '"channel":';
const SEQ_KEY = '"seq":';
const SENT_AT_KEY = ',"sentAt":';

export class Tally {
  delivered = 0;
  duplicates = 0;
  outOfOrder = 0;
  unexpected = 0;
  resets = 0;
  disconnects = 0;
  pollRetries = 0;
  pollReplies = 0;
  firstSentAt = Infinity;
  lastReceivedAt = 0;
  /** Latency of each first delivery, in ms; sized for every expected delivery. */
  private readonly latencies: Float64Array;
  /** When each of those was sent (the publisher's stamp), for leaving out a warm-up. */
  private readonly sentAts: Float64Array;
  /** What whenDelivered() waits for: a count, and the call to make when it is reached. */
  #waitFor = Infinity;
  #reached: (() => void) | undefined;

  constructor(readonly expected: number, private readonly messagesPerChannel: number) {
    this.latencies = new Float64Array(expected);
    this.sentAts = new Float64Array(expected);
  }

  /**
   * Records every envelope in `text[from, to)`. Envelopes are found by their `"channel":` key;
   * the payload ("pad" is only 'x's) cannot contain it.
   */
  scan(sub: Subscriber, text: string, from = 0, to = text.length): void {
    const receivedAt = nowMs();
    let i = text.indexOf(CHANNEL_KEY, from);
    while (i !== -1 && i < to) {
      const seqAt = text.indexOf(SEQ_KEY, i);
      const sentAtAt = seqAt === -1 ? -1 : text.indexOf(SENT_AT_KEY, seqAt);
      if (!text.startsWith(sub.channelField, i) || sentAtAt === -1 || sentAtAt >= to) {
        this.unexpected++;
      } else {
        const seq = Number(text.slice(seqAt + SEQ_KEY.length, sentAtAt));
        const end = text.indexOf(',', sentAtAt + SENT_AT_KEY.length);
        const sentAt = Number(text.slice(sentAtAt + SENT_AT_KEY.length, end));
        this.record(sub, seq, sentAt, receivedAt);
      }
      i = text.indexOf(CHANNEL_KEY, i + CHANNEL_KEY.length);
    }
  }

  /**
   * Records one message whose `data` alone is `text[from, to)` (MQTT: the PUBLISH payload is the
   * data as JSON text, with the channel in the topic rather than in an envelope). `onChannel` says
   * whether the message came on the subscriber's channel; seq and sentAt are found as in scan().
   */
  scanData(sub: Subscriber, onChannel: boolean, text: string, from = 0, to = text.length): void {
    const receivedAt = nowMs();
    const seqAt = text.indexOf(SEQ_KEY, from);
    const sentAtAt = seqAt === -1 || seqAt >= to ? -1 : text.indexOf(SENT_AT_KEY, seqAt);
    if (!onChannel || sentAtAt === -1 || sentAtAt >= to) {
      this.unexpected++;
      return;
    }
    const seq = Number(text.slice(seqAt + SEQ_KEY.length, sentAtAt));
    // sentAt ends at the `,` before "pad" (or at the closing brace of a data without one).
    const sentAtFrom = sentAtAt + SENT_AT_KEY.length;
    const comma = text.indexOf(',', sentAtFrom);
    const end = comma !== -1 && comma < to ? comma : text.lastIndexOf('}', to - 1);
    const sentAt = end > sentAtFrom ? Number(text.slice(sentAtFrom, end)) : NaN;
    this.record(sub, seq, sentAt, receivedAt);
  }

  private record(sub: Subscriber, seq: number, sentAt: number, receivedAt: number): void {
    if (!Number.isInteger(seq) || seq < 0 || seq >= this.messagesPerChannel || !Number.isFinite(sentAt)) {
      this.unexpected++;
      return;
    }
    if (sub.seen[seq] === 1) {
      this.duplicates++;
      return;
    }
    sub.seen[seq] = 1;
    if (seq < sub.lastSeq) this.outOfOrder++;
    sub.lastSeq = seq;
    if (sentAt < this.firstSentAt) this.firstSentAt = sentAt;
    this.lastReceivedAt = receivedAt;
    this.sentAts[this.delivered] = sentAt;
    this.latencies[this.delivered++] = receivedAt - sentAt;
    if (this.delivered === this.#waitFor) this.#reached?.();
  }

  /**
   * Resolves true once `count` deliveries have arrived (every expected one, or a warm-up's), false
   * if `timeoutMs` passes first. One wait at a time.
   */
  whenDelivered(count: number, timeoutMs: number): Promise<boolean> {
    if (this.delivered >= count) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#reached = undefined;
        resolve(false);
      }, timeoutMs);
      this.#waitFor = count;
      this.#reached = () => {
        clearTimeout(timer);
        this.#reached = undefined;
        resolve(true);
      };
    });
  }

  /**
   * Percentiles by nearest rank over the first deliveries; with `timedFrom`, only of messages
   * stamped from then on (what came before was a warm-up).
   */
  latencyMs(timedFrom?: number): { p50: number; p99: number; max: number } {
    const all = this.latencies.subarray(0, this.delivered);
    // A copy either way: sorting in place would part each latency from its sentAt.
    const sorted = (timedFrom === undefined ? all.slice() : all.filter((_, i) => (this.sentAts[i] as number) >= timedFrom)).sort();
    const at = (q: number): number => round2(sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? NaN);
    return { p50: at(0.5), p99: at(0.99), max: at(1) };
  }
}

export function round2(value: number): number {
  return Math.round(value * 100) / 100;
}
