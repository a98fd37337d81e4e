/**
 * The resume scenario of the transport conformance suite, across nodes: a backend writes thousands
 * of records straight to Kafka while one client, subscribed to two channels, is cut off at random
 * points (a seeded PRNG, so a failure repeats exactly) and resumes with its cursor on whichever
 * node `pick` names. At the end every message of its channels must have arrived exactly once, in
 * order, with no reset notice.
 */
import { PollTestClient } from './poll-client.js';
import { SseTestClient } from './sse-client.js';
import type { KafkaBackend } from './kafka-backend.js';
import type { TestClient, TransportName } from './test-client.js';
import { WsChannelClient } from './ws-channel-client.js';

/** A deterministic pseudo-random sequence (the conformance suite's LCG). */
export function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

export function openClient(transport: TransportName, url: string, channels: string[], cursor?: string): TestClient {
  const options = cursor === undefined ? {} : { cursor };
  if (transport === 'sse') return new SseTestClient(url, channels, options);
  // Per-channel cursors: its `cursor` is a resume token of its own (see ws-channel-client.ts).
  if (transport === 'ws') return new WsChannelClient(url, channels, cursor);
  return new PollTestClient(url, channels, options, 5);
}

export interface ResumeScenario {
  readonly transport: TransportName;
  readonly backend: KafkaBackend;
  /** The two channels the client subscribes to. */
  readonly channels: readonly [string, string];
  /** Channels written in between that the client must never see. */
  readonly others: readonly string[];
  readonly total: number;
  readonly seed: number;
  /** Names the node (base URL) for the next connection; `random` is the scenario's own PRNG. */
  readonly pick: (random: () => number, connection: number) => string;
  /** Called after each (re)connection with the URL used. */
  readonly onConnect?: (url: string) => void;
  readonly timeoutMs?: number;
}

export interface ResumeOutcome {
  readonly expected: Record<string, number[]>;
  readonly got: Record<string, number[]>;
  readonly ids: Map<number, string>;
  readonly expectedIds: Map<number, string>;
  readonly resets: unknown[];
  readonly reconnects: number;
  readonly urls: string[];
}

export async function runResumeScenario(s: ResumeScenario): Promise<ResumeOutcome> {
  const random = seeded(s.seed);
  const timeout = s.timeoutMs ?? 45_000;
  const [a, b] = s.channels;
  const rotation = [a, s.others[0] ?? a, b, ...s.others.slice(1)];
  const expected: Record<string, number[]> = { [a]: [], [b]: [] };
  const got: Record<string, number[]> = { [a]: [], [b]: [] };
  const ids = new Map<number, string>();
  const expectedIds = new Map<number, string>();
  const resets: unknown[] = [];
  const urls: string[] = [];
  const clients: TestClient[] = [];
  const sequence: { channel: string; data: number }[] = [];
  for (let i = 0; i < s.total; i++) {
    const channel = rotation[i % rotation.length] as string;
    expected[channel]?.push(i);
    sequence.push({ channel, data: i });
  }
  const want = expected[a]!.length + expected[b]!.length;
  // Closing markers, one per channel, written after everything: waiting for them (not for a
  // count) also catches a duplicate that would arrive late.
  const END = -1;

  const gather = (client: TestClient): void => {
    for (const message of client.received) {
      got[message.channel]?.push(message.data as number);
      if ((message.data as number) >= 0) ids.set(message.data as number, message.id);
    }
    resets.push(...client.resets);
  };

  // The backend stays at most `lead` messages (of the client's channels) ahead of what the client
  // has taken, so most resumes happen mid-stream rather than after everything was written.
  const lead = 100;
  let sentToClient = 0;
  let gathered = 0;
  const waiting = new Set<() => void>();
  const progress = (): void => {
    for (const check of [...waiting]) check();
  };
  /** The newest connection (set before it is ready: its backlog counts as soon as it arrives). */
  let latest: TestClient | undefined;
  const caughtUp = (): Promise<void> =>
    new Promise((resolve) => {
      const check = (): void => {
        if (gathered + (latest?.received.length ?? 0) < sentToClient - lead) return;
        waiting.delete(check);
        resolve();
      };
      waiting.add(check);
      check();
    });
  const connect = async (cursor: string | undefined): Promise<TestClient> => {
    const url = s.pick(random, urls.length);
    urls.push(url);
    s.onConnect?.(url);
    const opened = openClient(s.transport, url, [a, b], cursor);
    clients.push(opened);
    latest = opened;
    (opened as unknown as NodeJS.EventEmitter).on('change', progress);
    await opened.ready;
    return opened;
  };

  let client = await connect(undefined);
  const producing = (async () => {
    for (let n = 0; n < sequence.length; n += 50) {
      await caughtUp();
      const batch = sequence.slice(n, n + 50);
      sentToClient += batch.filter((r) => r.channel === a || r.channel === b).length;
      const sent = await s.backend.send(batch);
      batch.forEach((record, i) => {
        if (record.channel === a || record.channel === b) expectedIds.set(record.data, sent[i] as string);
      });
    }
    await s.backend.send([{ channel: a, data: END }, { channel: b, data: END }]);
  })();
  producing.catch(() => {});

  let reconnects = 0;
  // Messages arrive in bursts that can overshoot a round's target, so a run could end after only a
  // few switches; the first rounds never aim at the last message, which guarantees this many.
  const minimumReconnects = 5;
  try {
    for (let round = 0; round < 500; round++) {
      const current = client;
      const cap = round < minimumReconnects ? want - 1 : want;
      const target = Math.min(cap, gathered + current.received.length + 30 + Math.floor(random() * 150));
      const base = gathered;
      await current.waitFor(() => base + current.received.length >= target, `${target}/${want} messages over ${s.transport} (connection ${urls.length} to ${urls.at(-1)})`, timeout).catch((error: Error) => {
        gather(current);
        const summary = [a, b].map((channel) => {
          const list = got[channel] as number[];
          const sent = (expected[channel] as number[]).filter((n) => n < sentToClient * 3);
          const missing = sent.filter((n) => !list.includes(n)).slice(0, 10);
          return `${channel}: ${list.length} received, last ${list.at(-1)}, first missing ${JSON.stringify(missing)}`;
        });
        throw new Error(`${error.message}; ${summary.join('; ')}; resets ${JSON.stringify(resets)}`);
      });
      if (target >= want) break;
      current.drop();
      gathered += current.received.length;
      gather(current);
      progress();
      client = await connect(current.cursor);
      reconnects++;
    }
    await producing;
    // The markers may have reached an earlier connection already (a poll reply can overshoot).
    const last = client;
    const endsBefore = Object.values(got).reduce((n, list) => n + list.filter((d) => d === END).length, 0);
    const ends = (): number => endsBefore + last.received.filter((m) => m.data === END).length;
    await last.waitFor(() => ends() >= 2, `the closing markers over ${s.transport}`, timeout);
    last.drop();
    gather(last);
  } finally {
    for (const c of clients) c.drop();
  }
  for (const channel of [a, b]) {
    const list = got[channel] as number[];
    // The markers are the last message of each channel; strip exactly one each.
    if (list.at(-1) === END) list.pop();
  }
  return { expected, got, ids, expectedIds, resets, reconnects, urls };
}
