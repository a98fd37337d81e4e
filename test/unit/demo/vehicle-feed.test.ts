/**
 * The demo city and its buses: the same map on every start, routes that follow its streets, a map
 * message the default limits accept, and buses that drive their routes, stop and turn round,
 * reporting positions on the route they name.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { defaultOptions } from '../../../src/config.js';
import { drive, placeBus, positionReport } from '../../../src/demo/bus.js';
import { generateCity, type CityMap } from '../../../src/demo/city-map.js';
import { Polyline } from '../../../src/demo/polyline.js';
import { seededRandom } from '../../../src/demo/seeded-random.js';
import { CITY_MAP_CHANNEL, CITY_SEED, VEHICLE_COUNT, startVehicleFeed } from '../../../src/demo/vehicle-feed.js';
import type { Publisher } from '../../../src/publish/publisher.js';

const city = generateCity(CITY_SEED);

/** The map point a report's latitude and longitude stand for. */
function mapPoint(map: CityMap, position: { latitude: number; longitude: number }): [number, number] {
  const { north, south, west, east } = map.bounds;
  return [((position.longitude - west) / (east - west)) * map.width, ((north - position.latitude) / (north - south)) * map.height];
}

/** How far a point lies from a polyline, in metres. */
function offLine(points: readonly number[], [x, y]: [number, number]): number {
  let nearest = Infinity;
  for (let i = 2; i < points.length; i += 2) {
    const [x0, y0, x1, y1] = points.slice(i - 2, i + 2) as [number, number, number, number];
    const span = (x1 - x0) ** 2 + (y1 - y0) ** 2;
    const t = span ? Math.min(1, Math.max(0, ((x - x0) * (x1 - x0) + (y - y0) * (y1 - y0)) / span)) : 0;
    nearest = Math.min(nearest, Math.hypot(x0 + t * (x1 - x0) - x, y0 + t * (y1 - y0) - y));
  }
  return nearest;
}

describe('the demo city', () => {
  it('is the same city for the same seed (every node and restart draws the same map), another for another seed', () => {
    expect(JSON.stringify(generateCity(CITY_SEED))).toBe(JSON.stringify(city));
    expect(JSON.stringify(generateCity(CITY_SEED + 1))).not.toBe(JSON.stringify(city));
  });

  it('has streets and avenues, a river, parks, and 8 to 12 routes each with a colour, a name and stops at both ends', () => {
    expect(city.streets.filter((street) => street.kind === 'avenue').length).toBeGreaterThan(3);
    expect(city.streets.filter((street) => street.kind === 'street').length).toBeGreaterThan(20);
    expect(city.river.points.length).toBeGreaterThan(10);
    expect(city.parks.length).toBeGreaterThanOrEqual(1);
    expect(city.routes.length).toBeGreaterThanOrEqual(8);
    expect(city.routes.length).toBeLessThanOrEqual(12);
    expect(new Set(city.routes.map((route) => route.colour)).size).toBe(city.routes.length);
    for (const route of city.routes) {
      expect(route.name).toMatch(/^.+ – .+$/);
      expect(route.stops[0]).toBe(0);
      expect(route.stops.at(-1)).toBe(Math.floor(new Polyline(route.points).length));
      expect(route.stops.length).toBeGreaterThan(4);
    }
  });

  it('runs every route along its streets, inside the map', () => {
    // Every street segment, both ways round, as "x0,y0,x1,y1".
    const segments = new Set<string>();
    for (const { points } of city.streets) {
      for (let i = 0; i + 3 < points.length; i += 2) {
        segments.add(points.slice(i, i + 4).join());
        segments.add([...points.slice(i + 2, i + 4), ...points.slice(i, i + 2)].join());
      }
    }
    for (const route of city.routes) {
      for (let i = 0; i + 3 < route.points.length; i += 2) expect(segments.has(route.points.slice(i, i + 4).join()), `${route.id} at point ${i / 2}`).toBe(true);
      expect(route.points.every((value, i) => value > 0 && value < (i % 2 === 0 ? city.width : city.height))).toBe(true);
    }
  });

  it('fits in one message under the default maxMessageBytes', () => {
    expect(Buffer.byteLength(JSON.stringify(city))).toBeLessThan(defaultOptions().maxMessageBytes);
  });
});

describe('a demo bus', () => {
  it('reports positions on the route it names, moves along it, stops (speed 0) and turns round at the terminals', () => {
    const random = seededRandom(7);
    const route = city.routes[0] as CityMap['routes'][number];
    const bus = placeBus(random, 1000, route, new Polyline(route.points), 0, 1);
    const reports = Array.from({ length: 2000 }, () => {
      drive(bus, 2, random);
      return positionReport(bus, city) as { trip: { routeId: string; directionId: number }; position: { latitude: number; longitude: number; speed: number }; currentStatus: string };
    });
    for (const report of reports) {
      expect(report.trip.routeId).toBe(route.id);
      expect(offLine(route.points, mapPoint(city, report.position))).toBeLessThan(1);
      if (report.currentStatus === 'STOPPED_AT') expect(report.position.speed).toBe(0);
    }
    expect(new Set(reports.map((report) => `${report.position.latitude},${report.position.longitude}`)).size).toBeGreaterThan(500);
    expect(reports.filter((report) => report.currentStatus === 'STOPPED_AT').length).toBeGreaterThan(50);
    expect(reports.filter((report, i) => i > 0 && report.trip.directionId !== reports[i - 1]?.trip.directionId).length).toBeGreaterThanOrEqual(2);
  });
});

describe('the vehicle feed', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('publishes the map and every bus at once, a fifth of the fleet each tick, and the map again before rings forget it', () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const published: { channel: string; data: unknown }[][] = [];
    const publisher = { publish: async (_identity: unknown, messages: { channel: string; data: unknown }[]) => (published.push(messages), []) } as unknown as Publisher;
    const feed = startVehicleFeed(publisher, (error) => { throw error; }, { intervalMs: 500, mapEveryMs: 10_000 });
    try {
      expect(published.map((batch) => batch.length)).toEqual([1, VEHICLE_COUNT]);
      expect(published[0]?.[0]).toEqual({ channel: CITY_MAP_CHANNEL, data: city });
      expect(new Set(published[1]?.map((message) => message.channel))).toEqual(new Set(Array.from({ length: VEHICLE_COUNT }, (_, i) => `vehicles/${1000 + i}`)));
      vi.advanceTimersByTime(500);
      expect(published[2]?.length).toBe(VEHICLE_COUNT / 5);
      vi.advanceTimersByTime(10_000);
      expect(published.filter((batch) => batch[0]?.channel === CITY_MAP_CHANNEL).length).toBe(2);
    } finally {
      feed.stop();
    }
  });
});
