/**
 * Bus routes through the demo city's streets: each runs between two terminals far apart along a
 * cheapest path that prefers avenues and shies away from streets earlier routes already take, so
 * the routes spread over the city as a real network does; stops every few hundred metres.
 */
import { Polyline } from './polyline.js';
import { between, type Random } from './seeded-random.js';

/** Intersections (by any key) at map positions, and the street segments between them. */
export interface StreetGraph {
  readonly nodes: Map<string, readonly [number, number]>;
  readonly edges: { readonly from: string; readonly to: string; readonly avenue: boolean }[];
}

export interface RouteMap {
  /** As vehicles name it in `trip.routeId`. */
  readonly id: string;
  readonly number: string;
  readonly name: string;
  readonly colour: string;
  /** Map metres, flat (x0, y0, x1, y1, …), from the first terminal to the other. */
  readonly points: number[];
  /** Each stop's distance along `points` in metres, the terminals first and last. */
  readonly stops: number[];
}

const COLOURS = ['#d62728', '#1f77b4', '#ff7f0e', '#9467bd', '#2ca02c', '#e377c2', '#8c564b', '#17becf', '#bcbd22', '#525252'];
const TERMINALS = [
  'Harbour', 'Old Town', 'University', 'Riverside', 'North Gate', 'Mill Lane', 'Central Station', 'Hospital', 'Market Square', 'Zoo',
  'Stadium', 'East Docks', 'Westwood', 'Hilltop', 'Lakeside', 'Airport Road', 'Brickworks', 'Cathedral', 'Science Park', 'Garden Village',
];
/** Routes keep this far inside the map, so buses never drive off it. */
const INSET = 250;

export function planRoutes(random: Random, graph: StreetGraph, size: { readonly width: number; readonly height: number }): RouteMap[] {
  const position = (key: string): readonly [number, number] => graph.nodes.get(key) as readonly [number, number];
  const inner = [...graph.nodes].filter(([, [x, y]]) => x > INSET && y > INSET && x < size.width - INSET && y < size.height - INSET).map(([key]) => key);
  const isInner = new Set(inner);
  const adjacency = new Map<string, { to: string; edge: number }[]>();
  graph.edges.forEach(({ from, to }, edge) => {
    if (!isInner.has(from) || !isInner.has(to)) return;
    adjacency.set(from, [...(adjacency.get(from) ?? []), { to, edge }]);
    adjacency.set(to, [...(adjacency.get(to) ?? []), { to: from, edge }]);
  });
  const lengths = graph.edges.map(({ from, to }) => Math.hypot(position(from)[0] - position(to)[0], position(from)[1] - position(to)[1]));
  const used = graph.edges.map(() => 0);
  const names = shuffled(random, TERMINALS);
  const minSpan = 0.45 * Math.hypot(size.width, size.height);

  const routes: RouteMap[] = [];
  COLOURS.forEach((colour, r) => {
    // Each route has its own small preferences among streets, or every route would take the same ones.
    const taste = graph.edges.map(() => between(random, 1, 1.5));
    const cost = (edge: number): number => (lengths[edge] as number) * (graph.edges[edge]?.avenue ? 0.7 : 1) * (1 + 0.8 * (used[edge] as number)) * (taste[edge] as number);
    for (let attempt = 0; attempt < 100; attempt++) {
      const [from, to] = [inner[Math.floor(random() * inner.length)] as string, inner[Math.floor(random() * inner.length)] as string];
      if (Math.hypot(position(from)[0] - position(to)[0], position(from)[1] - position(to)[1]) < minSpan) continue;
      const path = cheapestPath(adjacency, from, to, cost);
      if (!path || path.edges.length < 8) continue;
      for (const edge of path.edges) used[edge] = (used[edge] as number) + 1;
      const points = path.nodes.flatMap((key) => position(key));
      routes.push({ id: `R${r + 1}`, number: String(r + 1), name: `${names[2 * r]} – ${names[2 * r + 1]}`, colour, points, stops: stopsAlong(random, new Polyline(points).length) });
      return;
    }
  });
  return routes;
}

/** Dijkstra's shortest path (a plain scan for the nearest node: a city has a few hundred). */
function cheapestPath(adjacency: ReadonlyMap<string, readonly { to: string; edge: number }[]>, from: string, to: string, cost: (edge: number) => number): { nodes: string[]; edges: number[] } | undefined {
  const best = new Map([[from, 0]]);
  const previous = new Map<string, { node: string; edge: number }>();
  const done = new Set<string>();
  for (;;) {
    let current: string | undefined;
    let currentCost = Infinity;
    for (const [node, c] of best) if (!done.has(node) && c < currentCost) [current, currentCost] = [node, c];
    if (current === undefined) return undefined;
    if (current === to) break;
    done.add(current);
    for (const { to: next, edge } of adjacency.get(current) ?? []) {
      const c = currentCost + cost(edge);
      if (c < (best.get(next) ?? Infinity)) {
        best.set(next, c);
        previous.set(next, { node: current, edge });
      }
    }
  }
  const nodes = [to];
  const edges: number[] = [];
  for (let step = previous.get(to); step; step = previous.get(step.node)) {
    nodes.unshift(step.node);
    edges.unshift(step.edge);
  }
  return { nodes, edges };
}

/** A stop every 300 to 480 metres, at both terminals, none too close to the last. */
function stopsAlong(random: Random, length: number): number[] {
  const stops = [0];
  for (let at = between(random, 300, 480); at < length - 150; at += between(random, 300, 480)) stops.push(Math.round(at));
  stops.push(Math.floor(length));
  return stops;
}

function shuffled<T>(random: Random, items: readonly T[]): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [copy[i], copy[j]] = [copy[j] as T, copy[i] as T];
  }
  return copy;
}
