/**
 * One demo bus driving its route back and forth: it keeps to a pace that drifts with the traffic,
 * slows for the stops it will call at, stands there a while (longer at the terminals, where it
 * turns round) and runs past the others. Its report is a GTFS-realtime-like VehiclePosition.
 */
import { toLatLon, type CityMap, type RouteMap } from './city-map.js';
import type { Polyline } from './polyline.js';
import { between, type Random } from './seeded-random.js';

export interface Bus {
  readonly id: number;
  readonly route: RouteMap;
  readonly path: Polyline;
  /** Metres along the route's path. */
  distance: number;
  /** 1 from the route's first terminal to its last, -1 on the way back. */
  direction: 1 | -1;
  /** Metres per second. */
  speed: number;
  /** The speed the driver aims for between stops. */
  cruise: number;
  /** Index (into route.stops) of the stop ahead, or of the stop the bus stands at. */
  next: number;
  /** Seconds left standing at the stop. */
  dwell: number;
  stopsAtNext: boolean;
}

/** Bus `slot` of `slots` on a route: spread over the round trip, half of them on the way back. */
export function placeBus(random: Random, id: number, route: RouteMap, path: Polyline, slot: number, slots: number): Bus {
  // Anywhere within its slot: a fixed offset would have every bus on the way out meet one on the way back at the same moment.
  const phase = (slot + random()) / slots;
  const outward = phase < 0.5;
  const distance = (outward ? 2 * phase : 2 - 2 * phase) * path.length;
  const next = outward ? route.stops.findIndex((stop) => stop > distance) : route.stops.findLastIndex((stop) => stop < distance);
  const cruise = between(random, 7, 12);
  return { id, route, path, distance, direction: outward ? 1 : -1, speed: cruise, cruise, next: Math.max(0, next), dwell: 0, stopsAtNext: random() < 0.7 };
}

/** Moves the bus on by `seconds` of its time. */
export function drive(bus: Bus, seconds: number, random: Random): void {
  if (bus.dwell > 0) {
    bus.dwell -= seconds;
    if (bus.dwell <= 0) leaveStop(bus, random);
    return;
  }
  const stop = bus.route.stops[bus.next] as number;
  const gap = Math.abs(stop - bus.distance);
  bus.cruise = Math.max(5, Math.min(13, bus.cruise + between(random, -0.6, 0.6)));
  const target = bus.stopsAtNext ? Math.min(bus.cruise, 1.5 + gap / 6) : bus.cruise;
  bus.speed += (target - bus.speed) * 0.5;
  if (bus.speed * seconds < gap) {
    bus.distance += bus.direction * bus.speed * seconds;
    return;
  }
  bus.distance = stop;
  if (!bus.stopsAtNext) return leaveStop(bus, random);
  bus.dwell = isTerminal(bus, bus.next) ? between(random, 20, 45) : between(random, 6, 20);
  bus.speed = 0;
}

function leaveStop(bus: Bus, random: Random): void {
  const last = bus.direction === 1 ? bus.route.stops.length - 1 : 0;
  if (bus.next === last) bus.direction = bus.direction === 1 ? -1 : 1;
  bus.next += bus.direction;
  bus.dwell = 0;
  bus.stopsAtNext = isTerminal(bus, bus.next) || random() < 0.7;
}

function isTerminal(bus: Bus, stop: number): boolean {
  return stop === 0 || stop === bus.route.stops.length - 1;
}

/** What the bus reports: only the position, bearing, speed, status, stop and time change between reports. */
export function positionReport(bus: Bus, city: CityMap): Record<string, unknown> {
  const point = bus.path.at(bus.distance);
  const { latitude, longitude } = toLatLon(city, point.x, point.y);
  return {
    vehicle: { id: String(bus.id), label: `Bus ${bus.id}` },
    trip: { routeId: bus.route.id, directionId: bus.direction === 1 ? 0 : 1 },
    position: {
      latitude: Number(latitude.toFixed(6)),
      longitude: Number(longitude.toFixed(6)),
      bearing: Math.round(bus.direction === 1 ? point.bearing : (point.bearing + 180) % 360) % 360,
      speed: Number(bus.speed.toFixed(1)),
    },
    currentStatus: bus.dwell > 0 ? 'STOPPED_AT' : 'IN_TRANSIT_TO',
    stopId: `${bus.route.id}-${bus.next + 1}`,
    timestamp: Math.floor(Date.now() / 1000),
  };
}
