/**
 * Realistic, deterministic data sets for the delta benchmark (bench/delta.ts), generated here so
 * nothing is downloaded: the same seed always gives the same messages, so runs are comparable and
 * a load-generator child can regenerate what was published to check what it decoded.
 *
 * - market ticks: one channel per ticker (`US/NASDAQ/AAPL`), a ~20-field quote record per tick of
 *   which a quote update or a trade changes only a few fields;
 * - vehicle positions: one channel (`feed/city`), each message a GTFS-realtime-like FeedMessage
 *   (protobuf JSON mapping: int64 as strings) with 150 vehicles, of which ~15% move per snapshot.
 */
import { seededRandom } from '../src/demo/seeded-random.js';

export interface DatasetMessage {
  channel: string;
  data: unknown;
}

/** The demo's seeded generator (mulberry32): the same sequence on every platform. */
export const mulberry32 = seededRandom;

const cents = (value: number): number => Math.round(value * 100) / 100;
/** A fixed session start, so timestamps are deterministic too. */
const SESSION_START_MS = Date.UTC(2026, 2, 2, 14, 30, 0);

const TICKERS = [
  { tickerSymbol: 'AAPL', companyName: 'Apple Inc.', countryCode: 'US', exchange: 'NASDAQ', currency: 'USD', isin: 'US0378331005', price: 227.4 },
  { tickerSymbol: 'MSFT', companyName: 'Microsoft Corporation', countryCode: 'US', exchange: 'NASDAQ', currency: 'USD', isin: 'US5949181045', price: 415.1 },
  { tickerSymbol: 'IBM', companyName: 'International Business Machines', countryCode: 'US', exchange: 'NYSE', currency: 'USD', isin: 'US4592001014', price: 231.8 },
  { tickerSymbol: 'VOD', companyName: 'Vodafone Group plc', countryCode: 'GB', exchange: 'LSE', currency: 'GBP', isin: 'GB00BH4HKS39', price: 0.71 },
  { tickerSymbol: 'SAP', companyName: 'SAP SE', countryCode: 'DE', exchange: 'XETRA', currency: 'EUR', isin: 'DE0007164600', price: 242.35 },
  { tickerSymbol: '7203', companyName: 'Toyota Motor Corporation', countryCode: 'JP', exchange: 'TSE', currency: 'JPY', isin: 'JP3633400001', price: 2861 },
] as const;

export const MAX_TICKERS = TICKERS.length;

export function tickerChannel(index: number): string {
  const t = TICKERS[index % TICKERS.length]!;
  return `${t.countryCode}/${t.exchange}/${t.tickerSymbol}`;
}

/**
 * `count` ticks spread at random over the first `tickers` tickers. About 60% are quote updates
 * (bid/ask and their sizes move), the rest trades (last price, size, volume, time, change move);
 * every tick bumps the sequence number and the update time.
 */
export function marketTicks(count: number, options: { tickers?: number; seed?: number } = {}): DatasetMessage[] {
  const rand = mulberry32(options.seed ?? 0x71c4);
  const tickers = Math.min(options.tickers ?? MAX_TICKERS, MAX_TICKERS);
  const quotes = TICKERS.slice(0, tickers).map((t) => {
    const spread = cents(Math.max(0.01, t.price * 0.0004));
    return {
      tickerSymbol: t.tickerSymbol,
      companyName: t.companyName,
      countryCode: t.countryCode,
      exchange: t.exchange,
      currency: t.currency,
      isin: t.isin,
      marketStatus: 'OPEN',
      bidPrice: cents(t.price - spread / 2),
      askPrice: cents(t.price + spread / 2),
      bidSize: 100 * (1 + Math.floor(rand() * 20)),
      askSize: 100 * (1 + Math.floor(rand() * 20)),
      lastPrice: t.price as number,
      lastSize: 100,
      openPrice: cents(t.price * 0.995),
      highPrice: cents(t.price * 1.004),
      lowPrice: cents(t.price * 0.991),
      previousClose: cents(t.price * 0.998),
      change: cents(t.price - t.price * 0.998),
      changePercent: 0.2,
      volume: 1_000_000 + Math.floor(rand() * 9_000_000),
      tradeTime: new Date(SESSION_START_MS).toISOString(),
      updateTime: new Date(SESSION_START_MS).toISOString(),
      sequenceNumber: 1_000 + Math.floor(rand() * 1_000),
    };
  });
  const messages: DatasetMessage[] = [];
  let clock = SESSION_START_MS;
  for (let i = 0; i < count; i++) {
    const index = Math.floor(rand() * tickers);
    const q = quotes[index]!;
    const tick = Math.max(0.01, cents(q.lastPrice * 0.0002));
    clock += 1 + Math.floor(rand() * 40);
    q.sequenceNumber += 1;
    q.updateTime = new Date(clock).toISOString();
    if (rand() < 0.6) {
      const move = Math.round((rand() - 0.5) * 4) * tick;
      q.bidPrice = cents(q.bidPrice + move);
      q.askPrice = cents(Math.max(q.bidPrice + tick, q.askPrice + move));
      q.bidSize = 100 * (1 + Math.floor(rand() * 20));
      q.askSize = 100 * (1 + Math.floor(rand() * 20));
    } else {
      q.lastPrice = rand() < 0.5 ? q.bidPrice : q.askPrice;
      q.lastSize = 100 * (1 + Math.floor(rand() * 10));
      q.volume += q.lastSize;
      q.tradeTime = q.updateTime;
      q.highPrice = Math.max(q.highPrice, q.lastPrice);
      q.lowPrice = Math.min(q.lowPrice, q.lastPrice);
      q.change = cents(q.lastPrice - q.previousClose);
      q.changePercent = Math.round((q.change / q.previousClose) * 10_000) / 100;
    }
    // A copy: the generator keeps mutating its state, the message must not change after the fact.
    messages.push({ channel: tickerChannel(index), data: { ...q } });
  }
  return messages;
}

const STATUSES = ['IN_TRANSIT_TO', 'STOPPED_AT', 'INCOMING_AT'] as const;
const OCCUPANCY = ['MANY_SEATS_AVAILABLE', 'FEW_SEATS_AVAILABLE', 'STANDING_ROOM_ONLY'] as const;

export const VEHICLE_CHANNEL = 'feed/city';

/**
 * `count` full-dataset snapshots of `vehicles` vehicles, 30 s apart. Per snapshot each vehicle
 * moves with probability 0.15 (position, bearing, speed, timestamp; sometimes the next stop);
 * occupancy changes rarely; ids, labels and trips never change.
 */
export function vehicleSnapshots(count: number, options: { vehicles?: number; seed?: number } = {}): DatasetMessage[] {
  const rand = mulberry32(options.seed ?? 0x9e55);
  const startSec = SESSION_START_MS / 1000;
  const entity = Array.from({ length: options.vehicles ?? 150 }, (_, i) => ({
    id: `E${1000 + i}`,
    vehicle: {
      trip: {
        tripId: `${3000 + i * 17}_${1 + (i % 3)}_0815`,
        routeId: `${10 + (i % 23)}`,
        directionId: i % 2,
        startTime: `${String(6 + (i % 12)).padStart(2, '0')}:${String((i * 7) % 60).padStart(2, '0')}:00`,
        startDate: '20260302',
        scheduleRelationship: 'SCHEDULED',
      },
      vehicle: { id: `V${4000 + i}`, label: `Bus ${100 + i}`, licensePlate: `EP-${(1000 + i * 37) % 10000}-K` },
      position: {
        latitude: Math.round((52.33 + rand() * 0.1) * 1e6) / 1e6,
        longitude: Math.round((4.83 + rand() * 0.14) * 1e6) / 1e6,
        bearing: Math.floor(rand() * 360),
        speed: Math.round(rand() * 150) / 10,
      },
      currentStopSequence: 1 + Math.floor(rand() * 30),
      stopId: `S${10_000 + Math.floor(rand() * 5_000)}`,
      currentStatus: STATUSES[Math.floor(rand() * STATUSES.length)] as string,
      timestamp: String(startSec - Math.floor(rand() * 30)),
      congestionLevel: 'RUNNING_SMOOTHLY',
      occupancyStatus: OCCUPANCY[Math.floor(rand() * OCCUPANCY.length)] as string,
    },
  }));
  const messages: DatasetMessage[] = [];
  for (let s = 0; s < count; s++) {
    const now = startSec + 30 * (s + 1);
    for (const e of entity) {
      const v = e.vehicle;
      if (rand() < 0.15) {
        v.position.latitude = Math.round((v.position.latitude + (rand() - 0.5) * 0.004) * 1e6) / 1e6;
        v.position.longitude = Math.round((v.position.longitude + (rand() - 0.5) * 0.006) * 1e6) / 1e6;
        v.position.bearing = Math.floor(rand() * 360);
        v.position.speed = Math.round(rand() * 150) / 10;
        v.timestamp = String(now - Math.floor(rand() * 10));
        if (rand() < 0.3) {
          v.currentStopSequence += 1;
          v.stopId = `S${10_000 + Math.floor(rand() * 5_000)}`;
          v.currentStatus = STATUSES[Math.floor(rand() * STATUSES.length)] as string;
        }
      }
      if (rand() < 0.02) v.occupancyStatus = OCCUPANCY[Math.floor(rand() * OCCUPANCY.length)] as string;
    }
    const snapshot = { header: { gtfsRealtimeVersion: '2.0', incrementality: 'FULL_DATASET', timestamp: String(now) }, entity };
    // A deep copy for the same reason as the ticks: the state object keeps changing.
    messages.push({ channel: VEHICLE_CHANNEL, data: JSON.parse(JSON.stringify(snapshot)) as unknown });
  }
  return messages;
}

export interface Dataset {
  readonly name: string;
  readonly messages: DatasetMessage[];
  readonly channels: string[];
}

/** The two data sets of the wire-bytes and CPU measurements, `count` messages each. */
export function datasets(count: number): Dataset[] {
  return [
    { name: 'market-ticks', messages: marketTicks(count), channels: Array.from({ length: MAX_TICKERS }, (_, i) => tickerChannel(i)) },
    { name: 'vehicle-positions', messages: vehicleSnapshots(count), channels: [VEHICLE_CHANNEL] },
  ];
}
