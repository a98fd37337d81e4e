/**
 * The demo vehicle feed behind `edgepush --demo` and the map page (public/vehicles.html): 150 buses
 * on channels `vehicles/<id>` driving the routes of a generated city (city-map.ts), each update a
 * GTFS-realtime-like VehiclePosition of which only the position, bearing, speed, status and time
 * move: the shape deltas are for. The city itself is the newest message of `city/map`, which a
 * page reads with `snapshot=latest`, through the same entitlement checks as every other channel.
 */
import { SERVER_IDENTITY } from '../auth/identity.js';
import type { Publisher } from '../publish/publisher.js';
import { placeBus, drive, positionReport } from './bus.js';
import { generateCity } from './city-map.js';
import { Polyline } from './polyline.js';
import { seededRandom } from './seeded-random.js';

export const VEHICLE_COUNT = 150;
export const CITY_MAP_CHANNEL = 'city/map';
/** The city every demo server draws: the same seed, the same streets, on every node and restart. */
export const CITY_SEED = 1;
/** The demo's clock runs this many times faster than real time, so buses visibly move on a city-sized map. */
const TIME_SCALE = 4;
/** Each bus reports every this many ticks (every 2.5 s at the default interval), not all of them at once. */
const REPORT_EVERY = 5;

/** Buses are numbered 1000 to 1149. */
export function vehicleChannel(busId: number): string {
  return `vehicles/${busId}`;
}

export interface VehicleFeedOptions {
  /** Default 500 ms. */
  readonly intervalMs?: number;
  /**
   * How often the map is published again (default every minute): a channel ring forgets messages
   * older than historyTtl, and the map must stay there for `snapshot=latest` to find it.
   */
  readonly mapEveryMs?: number;
}

export interface VehicleFeed {
  stop(): void;
}

/** Publishes the map, then every bus's position; from then on each tick a fifth of the fleet reports. */
export function startVehicleFeed(publisher: Publisher, onError: (error: unknown) => void, options: VehicleFeedOptions = {}): VehicleFeed {
  const intervalMs = options.intervalMs ?? 500;
  const city = generateCity(CITY_SEED);
  const random = seededRandom(CITY_SEED + 1);
  const perRoute = Math.ceil(VEHICLE_COUNT / city.routes.length);
  const buses = Array.from({ length: VEHICLE_COUNT }, (_, index) => {
    const route = city.routes[index % city.routes.length] as (typeof city.routes)[number];
    return placeBus(random, 1000 + index, route, new Polyline(route.points), Math.floor(index / city.routes.length), perRoute);
  });
  const publish = (messages: { channel: string; data: unknown }[]): void => void publisher.publish(SERVER_IDENTITY, messages).catch(onError);
  const report = (due: typeof buses): void => publish(due.map((bus) => ({ channel: vehicleChannel(bus.id), data: positionReport(bus, city) })));

  publish([{ channel: CITY_MAP_CHANNEL, data: city }]);
  report(buses);
  let tick = 0;
  const driving = setInterval(() => {
    tick++;
    for (const bus of buses) drive(bus, (intervalMs / 1000) * TIME_SCALE, random);
    report(buses.filter((bus) => (bus.id + tick) % REPORT_EVERY === 0));
  }, intervalMs);
  const mapping = setInterval(() => publish([{ channel: CITY_MAP_CHANNEL, data: city }]), options.mapEveryMs ?? 60_000);
  return {
    stop: () => {
      clearInterval(driving);
      clearInterval(mapping);
    },
  };
}
