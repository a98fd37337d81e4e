/**
 * A route's path as a polyline in map metres (x east, y south): where a bus is, and which way it
 * faces, once it has gone a given distance along it.
 */
export interface PointOnLine {
  readonly x: number;
  readonly y: number;
  /** Compass bearing of the line's direction there, degrees clockwise from north. */
  readonly bearing: number;
}

export class Polyline {
  /** Distance from the start to each vertex. */
  readonly #along: number[] = [0];

  /** `points` flat: x0, y0, x1, y1, … */
  constructor(readonly points: readonly number[]) {
    if (points.length < 4 || points.length % 2 !== 0) throw new Error('a polyline needs at least two points');
    for (let i = 2; i < points.length; i += 2) {
      this.#along.push((this.#along.at(-1) as number) + Math.hypot(at(points, i) - at(points, i - 2), at(points, i + 1) - at(points, i - 1)));
    }
  }

  get length(): number {
    return this.#along.at(-1) as number;
  }

  /** The point `distance` metres from the start (clamped to the line's ends). */
  at(distance: number): PointOnLine {
    const d = Math.max(0, Math.min(this.length, distance));
    let segment = 1;
    while (segment < this.#along.length - 1 && (this.#along[segment] as number) < d) segment++;
    const from = this.#along[segment - 1] as number;
    const span = (this.#along[segment] as number) - from;
    const t = span > 0 ? (d - from) / span : 0;
    const [x0, y0, x1, y1] = [at(this.points, 2 * segment - 2), at(this.points, 2 * segment - 1), at(this.points, 2 * segment), at(this.points, 2 * segment + 1)];
    const bearing = (Math.atan2(x1 - x0, y0 - y1) * 180) / Math.PI;
    return { x: x0 + (x1 - x0) * t, y: y0 + (y1 - y0) * t, bearing: (bearing + 360) % 360 };
  }
}

function at(points: readonly number[], index: number): number {
  return points[index] as number;
}
