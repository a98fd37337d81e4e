/**
 * A demo vehicle feed for the delta-compression page: ~150 buses on channels `vehicles/<id>`, each
 * update a GTFS-realtime-like VehiclePosition. Most fields stay the same between updates (vehicle,
 * trip, route, stop), only the position, bearing, speed and time move: the shape deltas are for.
 */
import { SERVER_IDENTITY } from '../auth/identity.js';
import type { Publisher } from '../publish/publisher.js';

export const VEHICLE_COUNT = 150;

export const VEHICLE_CHANNELS: readonly string[] = Array.from({ length: VEHICLE_COUNT }, (_, i) => vehicleChannel(i));

export function vehicleChannel(index: number): string {
  return `vehicles/${1000 + index}`;
}

export interface VehicleFeed {
  stop(): void;
}

interface Vehicle {
  readonly index: number;
  latitude: number;
  longitude: number;
  bearing: number;
  speed: number;
  stopSequence: number;
}

/** Around Amsterdam Centraal. */
const CENTER = { latitude: 52.3731, longitude: 4.8922 };

/** Every `intervalMs`, about a fifth of the vehicles report a new position. */
export function startVehicleFeed(publisher: Publisher, onError: (error: unknown) => void, intervalMs = 500): VehicleFeed {
  const vehicles: Vehicle[] = Array.from({ length: VEHICLE_COUNT }, (_, index) => ({
    index,
    latitude: CENTER.latitude + (Math.random() - 0.5) * 0.08,
    longitude: CENTER.longitude + (Math.random() - 0.5) * 0.14,
    bearing: Math.floor(Math.random() * 360),
    speed: 5 + Math.random() * 8,
    stopSequence: 1 + Math.floor(Math.random() * 20),
  }));
  const timer = setInterval(() => {
    const moved = vehicles.filter(() => Math.random() < 0.2);
    if (moved.length === 0) return;
    publisher.publish(SERVER_IDENTITY, moved.map((vehicle) => ({ channel: vehicleChannel(vehicle.index), data: move(vehicle) }))).catch(onError);
  }, intervalMs);
  return { stop: () => clearInterval(timer) };
}

function move(vehicle: Vehicle): Record<string, unknown> {
  vehicle.bearing = (vehicle.bearing + Math.round((Math.random() - 0.5) * 30) + 360) % 360;
  vehicle.speed = Math.max(0, Math.min(16, vehicle.speed + (Math.random() - 0.5) * 2));
  const radians = (vehicle.bearing * Math.PI) / 180;
  const metres = vehicle.speed * 0.5;
  vehicle.latitude += (Math.cos(radians) * metres) / 111_320;
  vehicle.longitude += (Math.sin(radians) * metres) / (111_320 * Math.cos((vehicle.latitude * Math.PI) / 180));
  // Stay within the city: turn back towards the centre when wandering off.
  if (Math.abs(vehicle.latitude - CENTER.latitude) > 0.05 || Math.abs(vehicle.longitude - CENTER.longitude) > 0.08) vehicle.bearing = (vehicle.bearing + 180) % 360;
  if (Math.random() < 0.02) vehicle.stopSequence++;
  const route = vehicle.index % 12;
  const id = 1000 + vehicle.index;
  return {
    id: `veh-${id}`,
    vehicle: { id: String(id), label: `Bus ${id}`, licensePlate: `EP-${id}-X` },
    trip: { tripId: `T${route}-${id}-0815`, routeId: `R${route + 1}`, directionId: vehicle.index % 2, startTime: '08:15:00', startDate: '20261121', scheduleRelationship: 'SCHEDULED' },
    position: {
      latitude: Number(vehicle.latitude.toFixed(6)),
      longitude: Number(vehicle.longitude.toFixed(6)),
      bearing: vehicle.bearing,
      speed: Number(vehicle.speed.toFixed(1)),
    },
    currentStopSequence: vehicle.stopSequence,
    stopId: `S${route * 100 + vehicle.stopSequence}`,
    currentStatus: 'IN_TRANSIT_TO',
    congestionLevel: 'RUNNING_SMOOTHLY',
    occupancyStatus: vehicle.index % 3 === 0 ? 'FEW_SEATS_AVAILABLE' : 'MANY_SEATS_AVAILABLE',
    timestamp: Math.floor(Date.now() / 1000),
  };
}
