/**
 * VCDIFF encoder throughput on synthetic but realistic push payloads.
 *
 * Run: npm run build:bench && node dist/bench/vcdiff-throughput.js
 * Prints one JSON object per dataset and line. mbPerSec counts target bytes
 * (10^6 bytes per MB), since that is what a server pushes through the encoder.
 * Every delta pair is checked once against @ably/vcdiff-decoder before timing.
 */
import { decode } from '@ably/vcdiff-decoder';
import { encodeVcdiff } from '../src/delta/vcdiff-encoder.js';
// Seeded, so runs are comparable across machines and commits.
import { mulberry32 } from './delta-datasets.js';

const TIME_BUDGET_MS = 1000;
const MAX_ENCODES = 200_000;
const WARMUP_MS = 200;

interface Pair {
  source: Uint8Array;
  target: Uint8Array;
}

const utf8 = new TextEncoder();

function pairsOf(snapshots: Uint8Array[]): Pair[] {
  const pairs: Pair[] = [];
  for (let i = 1; i < snapshots.length; i++) pairs.push({ source: snapshots[i - 1]!, target: snapshots[i]! });
  return pairs;
}

function marketData(rand: () => number, ticks: number): Pair[] {
  const symbols = ['AAPL', 'MSFT', 'GOOG', 'AMZN', 'NVDA', 'META', 'TSLA', 'ORCL'];
  const quote: Record<string, string | number | boolean> = {
    symbol: 'EURUSD',
    venue: 'LMAX',
    currency: 'USD',
    status: 'open',
    halted: false,
    lotSize: 1000,
    tickSize: 0.00001,
  };
  const priceFields: string[] = [];
  for (let i = 0; priceFields.length < 33; i++) {
    const s = symbols[i % symbols.length]!;
    for (const f of ['bid', 'ask', 'last', 'vwap']) {
      if (priceFields.length >= 33) break;
      const key = `${s.toLowerCase()}${f[0]!.toUpperCase()}${f.slice(1)}${i >= symbols.length ? i : ''}`;
      priceFields.push(key);
      quote[key] = Math.round((50 + rand() * 400) * 100) / 100;
    }
  }
  const snapshots: Uint8Array[] = [];
  for (let tick = 0; tick < ticks; tick++) {
    const changes = 2 + Math.floor(rand() * 4);
    for (let c = 0; c < changes; c++) {
      const key = priceFields[Math.floor(rand() * priceFields.length)]!;
      const v = quote[key] as number;
      quote[key] = Math.round(v * (1 + (rand() - 0.5) * 0.002) * 100) / 100;
    }
    quote['seq'] = 1_000_000 + tick;
    quote['ts'] = 1_732_000_000_000 + tick * 137;
    snapshots.push(utf8.encode(JSON.stringify(quote)));
  }
  return pairsOf(snapshots);
}

function vehicleFeed(rand: () => number, snapshotsCount: number): Pair[] {
  const vehicles = Array.from({ length: 150 }, (_, i) => ({
    id: `veh-${(10_000 + i * 7).toString(36)}`,
    label: `Bus ${100 + i}`,
    route: `R${1 + (i % 23)}`,
    trip: `trip-${2024_0000 + i * 13}`,
    lat: Math.round((51.45 + rand() * 0.1) * 1e6) / 1e6,
    long: Math.round((-0.2 + rand() * 0.2) * 1e6) / 1e6,
    bearing: Math.floor(rand() * 360),
    speed: Math.round(rand() * 150) / 10,
    occupancy: 'MANY_SEATS_AVAILABLE',
    timestamp: 1_732_000_000 + Math.floor(rand() * 60),
  }));
  const snapshots: Uint8Array[] = [];
  for (let s = 0; s < snapshotsCount; s++) {
    for (const v of vehicles) {
      if (rand() >= 0.2) continue;
      v.lat = Math.round((v.lat + (rand() - 0.5) * 0.002) * 1e6) / 1e6;
      v.long = Math.round((v.long + (rand() - 0.5) * 0.002) * 1e6) / 1e6;
      v.bearing = Math.floor(rand() * 360);
      v.speed = Math.round(rand() * 150) / 10;
      v.timestamp += 15 + Math.floor(rand() * 15);
    }
    snapshots.push(utf8.encode(JSON.stringify({ feed: 'vehicle-positions', generatedAt: 1_732_000_000 + s * 30, vehicles })));
  }
  return pairsOf(snapshots);
}

function orderBook(rand: () => number, ticks: number): Pair[] {
  const level = (price: number) => ({
    price: Math.round(price * 100) / 100,
    size: Math.floor(rand() * 5000) / 10,
    orders: 1 + Math.floor(rand() * 40),
  });
  const book = {
    type: 'book.snapshot',
    instrument: 'BTC-USD-PERP',
    exchange: 'example',
    sequence: 88_000_000,
    bids: Array.from({ length: 50 }, (_, i) => level(64_000 - i * 0.5)),
    asks: Array.from({ length: 50 }, (_, i) => level(64_000.5 + i * 0.5)),
  };
  const snapshots: Uint8Array[] = [];
  for (let tick = 0; tick < ticks; tick++) {
    book.sequence += 1 + Math.floor(rand() * 3);
    const changes = 1 + Math.floor(rand() * 6);
    for (let c = 0; c < changes; c++) {
      const side = rand() < 0.5 ? book.bids : book.asks;
      const lvl = side[Math.floor(rand() * 10)]!;
      lvl.size = Math.floor(rand() * 5000) / 10;
      lvl.orders = 1 + Math.floor(rand() * 40);
    }
    snapshots.push(utf8.encode(JSON.stringify(book, null, 1)));
  }
  return pairsOf(snapshots);
}

function binaryEdits(rand: () => number, versions: number): Pair[] {
  let cur = new Uint8Array(64 * 1024);
  for (let i = 0; i < cur.length; i++) cur[i] = Math.floor(rand() * 256);
  const snapshots: Uint8Array[] = [cur];
  for (let v = 1; v < versions; v++) {
    const next = cur.slice();
    for (let k = 0; k < 8; k++) next[Math.floor(rand() * next.length)] = Math.floor(rand() * 256);
    // One insertion and one deletion keep the length stable but shift alignment.
    const ins = Math.floor(rand() * next.length);
    const del = Math.floor(rand() * (next.length - 64));
    const inserted = new Uint8Array(32).map(() => Math.floor(rand() * 256));
    const withIns = new Uint8Array(next.length + 32);
    withIns.set(next.subarray(0, ins));
    withIns.set(inserted, ins);
    withIns.set(next.subarray(ins), ins + 32);
    const edited = new Uint8Array(next.length);
    edited.set(withIns.subarray(0, del));
    edited.set(withIns.subarray(del + 32), del);
    snapshots.push(edited);
    cur = edited;
  }
  return pairsOf(snapshots);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function run(dataset: string, pairs: Pair[]): void {
  let targetBytes = 0;
  let deltaBytes = 0;
  for (const { source, target } of pairs) {
    const delta = encodeVcdiff(source, target);
    if (!sameBytes(decode(delta, source), target)) {
      throw new Error(`${dataset}: delta does not decode to the target`);
    }
    targetBytes += target.length;
    deltaBytes += delta.length;
  }

  const warmEnd = performance.now() + WARMUP_MS;
  for (let i = 0; performance.now() < warmEnd; i++) {
    const p = pairs[i % pairs.length]!;
    encodeVcdiff(p.source, p.target);
  }

  let encodes = 0;
  let encodedBytes = 0;
  let sink = 0; // keeps the encoder's result observable so it is not optimised away
  const start = performance.now();
  let elapsed = 0;
  while (encodes < MAX_ENCODES) {
    // Checking the clock every 16 encodes keeps timer overhead out of small payloads.
    for (let k = 0; k < 16; k++) {
      const p = pairs[encodes % pairs.length]!;
      sink += encodeVcdiff(p.source, p.target).length;
      encodedBytes += p.target.length;
      encodes++;
    }
    elapsed = performance.now() - start;
    if (elapsed >= TIME_BUDGET_MS) break;
  }
  if (sink < 0) console.error(sink);

  const seconds = elapsed / 1000;
  console.log(
    JSON.stringify({
      dataset,
      targetBytes: Math.round(targetBytes / pairs.length),
      deltaBytes: Math.round(deltaBytes / pairs.length),
      ratio: Number((deltaBytes / targetBytes).toFixed(4)),
      encodesPerSec: Math.round(encodes / seconds),
      mbPerSec: Number((encodedBytes / seconds / 1e6).toFixed(1)),
    }),
  );
}

const rand = mulberry32(0xed9e);
run('market-data-json', marketData(rand, 64));
run('order-book-json', orderBook(rand, 64));
run('vehicle-feed-json', vehicleFeed(rand, 32));
run('binary-64k-edits', binaryEdits(rand, 16));
