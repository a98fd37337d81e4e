/**
 * The demo city the vehicle feed's buses drive through, generated once from a seed: a grid of
 * blocks of varying sizes, gently warped, with two diagonal avenues, a river crossed by a few
 * bridges, parks and a ragged edge where the city gives way to fields, plus bus routes along its
 * streets (city-routes.ts). It is published as JSON on a channel and the page draws it as SVG: no
 * tile server, so the demo works offline.
 */
import { planRoutes, type RouteMap, type StreetGraph } from './city-routes.js';
import { between, seededRandom, type Random } from './seeded-random.js';

export type { RouteMap } from './city-routes.js';

/** Everything the page needs to draw the city. Lengths in metres, x east and y south from the north-west corner. */
export interface CityMap {
  readonly name: string;
  readonly width: number;
  readonly height: number;
  /** Where the map lies on Earth: latitude and longitude vary linearly with y and x across it. */
  readonly bounds: { readonly north: number; readonly south: number; readonly west: number; readonly east: number };
  readonly river: { readonly name: string; readonly width: number; readonly points: number[] };
  readonly parks: { readonly name: string; readonly points: number[] }[];
  readonly streets: { readonly kind: 'avenue' | 'street'; readonly points: number[] }[];
  readonly routes: RouteMap[];
}

const WIDTH = 4800;
const HEIGHT = 3600;
/** Around Amsterdam Centraal. */
const CENTER = { latitude: 52.3731, longitude: 4.8922 };
const METRES_PER_DEGREE = 111_320;
/** Streets run past the map's edges, so the map looks like part of a larger city. */
const OVERHANG = 100;
const RIVER_WIDTH = 120;
/** Extra room between the two rows of blocks the river runs between. */
const RIVER_GAP = 260;
const PARKS = [
  { name: 'Kings Park', columns: 3, rows: 2 },
  { name: 'Mill Green', columns: 2, rows: 2 },
];

/** A street line through grid intersections (i = column, j = row), before holes are cut into it. */
interface Line {
  readonly kind: 'avenue' | 'street';
  readonly diagonal: boolean;
  readonly nodes: readonly (readonly [number, number])[];
}

interface Block {
  readonly i: number;
  readonly j: number;
  readonly columns: number;
  readonly rows: number;
}

export function generateCity(seed: number): CityMap {
  const random = seededRandom(seed);
  const columns = spacedOut(random, -OVERHANG, WIDTH + OVERHANG, 170, 330);
  const rows = spacedOut(random, -OVERHANG, HEIGHT + OVERHANG, 150, 290);
  // The river runs between two rows a little below the middle, in a gap wider than a block.
  const riverRow = closestIndex(rows, HEIGHT * 0.58);
  for (let j = riverRow + 1; j < rows.length; j++) rows[j] = (rows[j] as number) + RIVER_GAP;
  while ((rows.at(-1) as number) > HEIGHT + OVERHANG) rows.pop();

  const warp = warpOf(random);
  const edge = cityEdgeOf(random);
  const node = new Map<string, [number, number]>();
  for (let i = 0; i < columns.length; i++) {
    for (let j = 0; j < rows.length; j++) {
      const [x, y] = warp(columns[i] as number, rows[j] as number);
      if (edge(x, y)) node.set(`${i},${j}`, [Math.round(x + between(random, -15, 15)), Math.round(y + between(random, -15, 15))]);
    }
  }

  const lines = gridLines(random, columns.length, rows.length);
  const parks = placeParks(random, columns.length, rows.length, riverRow, node, lines);
  for (const park of parks) {
    for (let i = park.i + 1; i < park.i + park.columns; i++) for (let j = park.j + 1; j < park.j + park.rows; j++) node.delete(`${i},${j}`);
  }
  const { streets, graph } = layStreets(random, lines, node, riverRow, parks);
  const river = riverBetween(random, warp, rows[riverRow] as number, rows[riverRow + 1] as number);

  return {
    name: 'Edgeport',
    width: WIDTH,
    height: HEIGHT,
    bounds: boundsAround(CENTER, WIDTH, HEIGHT),
    river: { name: 'River Wend', width: RIVER_WIDTH, points: river },
    parks: parks.map((park) => ({ name: park.name, points: outline(park, node) })),
    streets,
    routes: planRoutes(random, graph, { width: WIDTH, height: HEIGHT }),
  };
}

/**
 * The streets along the grid lines, cut where an intersection is missing (beyond the city's edge, in
 * a park), where the river has no bridge, and here and there at random; and the graph the bus routes
 * are planned on, made of exactly those street segments.
 */
function layStreets(random: Random, lines: readonly Line[], node: ReadonlyMap<string, readonly [number, number]>, riverRow: number, parks: readonly Block[]): { streets: CityMap['streets']; graph: StreetGraph } {
  const streets: { kind: 'avenue' | 'street'; points: number[] }[] = [];
  const graph: StreetGraph = { nodes: new Map(), edges: [] };
  for (const line of lines) {
    let run: number[] = [];
    const endRun = (): void => {
      if (run.length >= 4) streets.push({ kind: line.kind, points: run });
      run = [];
    };
    for (let n = 1; n < line.nodes.length; n++) {
      const [[i0, j0], [i1, j1]] = [line.nodes[n - 1] as [number, number], line.nodes[n] as [number, number]];
      const from = node.get(`${i0},${j0}`);
      const to = node.get(`${i1},${j1}`);
      const crossesRiver = Math.min(j0, j1) <= riverRow && Math.max(j0, j1) > riverRow;
      const open =
        from !== undefined &&
        to !== undefined &&
        // Every avenue crosses the river on a bridge; a quarter of the streets do.
        (!crossesRiver || line.kind === 'avenue' || random() < 0.25) &&
        !parks.some((park) => inside(park, (i0 + i1) / 2, (j0 + j1) / 2)) &&
        // A few missing street segments: dead ends and detours, as in any real city.
        (line.kind === 'avenue' || crossesRiver || random() >= 0.05);
      if (!open) {
        endRun();
        continue;
      }
      if (run.length === 0) run.push(...from);
      run.push(...to);
      graph.edges.push({ from: `${i0},${j0}`, to: `${i1},${j1}`, avenue: line.kind === 'avenue' });
      graph.nodes.set(`${i0},${j0}`, from);
      graph.nodes.set(`${i1},${j1}`, to);
    }
    endRun();
  }
  return { streets, graph };
}

/** The river's centre line, meandering across the whole map in the gap between two rows of blocks. */
function riverBetween(random: Random, warp: (x: number, y: number) => [number, number], above: number, below: number): number[] {
  // The meander stays clear of both rows' intersections, even once they are jittered.
  const room = below - above - RIVER_WIDTH;
  const [phase, ripple] = [between(random, 0, 2 * Math.PI), between(random, 0, 2 * Math.PI)];
  const points: number[] = [];
  for (let x = -2 * OVERHANG; x <= WIDTH + 2 * OVERHANG; x += 100) {
    const [wx, wy] = warp(x, (above + below) / 2 + room * (0.22 * Math.sin(x / 700 + phase) + 0.1 * Math.sin(x / 260 + ripple)));
    points.push(Math.round(wx), Math.round(wy));
  }
  return points;
}

/** Latitude and longitude of a map point (the linear projection `bounds` describes). */
export function toLatLon(city: Pick<CityMap, 'bounds' | 'width' | 'height'>, x: number, y: number): { latitude: number; longitude: number } {
  const { north, south, west, east } = city.bounds;
  return { latitude: north - (y / city.height) * (north - south), longitude: west + (x / city.width) * (east - west) };
}

function boundsAround(center: { latitude: number; longitude: number }, width: number, height: number): CityMap['bounds'] {
  const halfLatitude = height / 2 / METRES_PER_DEGREE;
  const halfLongitude = width / 2 / (METRES_PER_DEGREE * Math.cos((center.latitude * Math.PI) / 180));
  const round = (n: number): number => Number(n.toFixed(6));
  return {
    north: round(center.latitude + halfLatitude),
    south: round(center.latitude - halfLatitude),
    west: round(center.longitude - halfLongitude),
    east: round(center.longitude + halfLongitude),
  };
}

/** Positions from `from` to `to`, each a random step of `low` to `high` metres after the last. */
function spacedOut(random: Random, from: number, to: number, low: number, high: number): number[] {
  const at: number[] = [];
  for (let position = from; position <= to; position += between(random, low, high)) at.push(Math.round(position));
  return at;
}

function closestIndex(values: readonly number[], target: number): number {
  return values.reduce((best, value, index) => (Math.abs(value - target) < Math.abs((values[best] as number) - target) ? index : best), 0);
}

/** A smooth bend of the whole plan, so streets curve a little instead of ruling straight lines. */
function warpOf(random: Random): (x: number, y: number) => [number, number] {
  const [a, b, c] = [between(random, 0, 2 * Math.PI), between(random, 0, 2 * Math.PI), between(random, 0, 2 * Math.PI)];
  return (x, y) => [x + 45 * Math.sin(y / 830 + a), y + 80 * Math.sin(x / 1100 + b) + 25 * Math.sin(x / 370 + c)];
}

/** Whether a point lies within the city: a rough oval a little larger than the map, so only the corners turn to fields. */
function cityEdgeOf(random: Random): (x: number, y: number) => boolean {
  const [a, b] = [between(random, 0, 2 * Math.PI), between(random, 0, 2 * Math.PI)];
  return (x, y) => {
    const [dx, dy] = [(x - WIDTH / 2) / (0.62 * WIDTH), (y - HEIGHT / 2) / (0.62 * HEIGHT)];
    const angle = Math.atan2(dy, dx);
    return Math.hypot(dx, dy) <= 1 + 0.1 * Math.sin(3 * angle + a) + 0.06 * Math.sin(7 * angle + b);
  };
}

/** Every row and column (one in four an avenue), and two diagonal avenues that cross the grid. */
function gridLines(random: Random, columns: number, rows: number): Line[] {
  const lines: Line[] = [];
  const [avenueRow, avenueColumn] = [Math.floor(random() * 4), Math.floor(random() * 4)];
  for (let j = 0; j < rows; j++) {
    lines.push({ kind: j % 4 === avenueRow ? 'avenue' : 'street', diagonal: false, nodes: Array.from({ length: columns }, (_, i) => [i, j] as const) });
  }
  for (let i = 0; i < columns; i++) {
    lines.push({ kind: i % 4 === avenueColumn ? 'avenue' : 'street', diagonal: false, nodes: Array.from({ length: rows }, (_, j) => [i, j] as const) });
  }
  const diagonal = (i: number, j: number, di: number): Line => {
    const nodes: [number, number][] = [];
    for (; i >= 0 && i < columns && j < rows; i += di, j++) nodes.push([i, j]);
    return { kind: 'avenue', diagonal: true, nodes };
  };
  lines.push(diagonal(Math.floor(columns * between(random, 0.05, 0.2)), 0, 1));
  lines.push(diagonal(columns - 1, Math.floor(rows * between(random, 0.1, 0.3)), -1));
  return lines;
}

/** Parks over whole blocks, clear of the river, each other and the diagonal avenues. */
function placeParks(random: Random, columns: number, rows: number, riverRow: number, node: ReadonlyMap<string, readonly [number, number]>, lines: readonly Line[]): (Block & { name: string })[] {
  const diagonalMidpoints = lines.filter((line) => line.diagonal).flatMap((line) => line.nodes.slice(1).map(([i, j], n) => [(i + (line.nodes[n] as readonly [number, number])[0]) / 2, (j + (line.nodes[n] as readonly [number, number])[1]) / 2] as const));
  const placed: (Block & { name: string })[] = [];
  for (const park of PARKS) {
    for (let attempt = 0; attempt < 200; attempt++) {
      const block = { name: park.name, columns: park.columns, rows: park.rows, i: 1 + Math.floor(random() * (columns - park.columns - 2)), j: 1 + Math.floor(random() * (rows - park.rows - 2)) };
      const around = outline(block, node);
      const onMap = around.length === 4 * (block.columns + block.rows) && around.every((value, n) => value > 0 && value < (n % 2 === 0 ? WIDTH : HEIGHT));
      const acrossRiver = block.j <= riverRow && block.j + block.rows > riverRow;
      const crowded = placed.some((other) => block.i <= other.i + other.columns + 1 && other.i <= block.i + block.columns + 1 && block.j <= other.j + other.rows + 1 && other.j <= block.j + block.rows + 1);
      if (onMap && !acrossRiver && !crowded && !diagonalMidpoints.some(([i, j]) => inside(block, i, j))) {
        placed.push(block);
        break;
      }
    }
  }
  return placed;
}

/** Strictly inside a block of the grid (its edge streets are not). */
function inside(block: Block, i: number, j: number): boolean {
  return i > block.i && i < block.i + block.columns && j > block.j && j < block.j + block.rows;
}

/** The block's outline through the intersections around it. */
function outline(block: Block, node: ReadonlyMap<string, readonly [number, number]>): number[] {
  const around: [number, number][] = [];
  for (let i = block.i; i < block.i + block.columns; i++) around.push([i, block.j]);
  for (let j = block.j; j < block.j + block.rows; j++) around.push([block.i + block.columns, j]);
  for (let i = block.i + block.columns; i > block.i; i--) around.push([i, block.j + block.rows]);
  for (let j = block.j + block.rows; j > block.j; j--) around.push([block.i, j]);
  return around.flatMap(([i, j]) => node.get(`${i},${j}`) ?? []);
}
