/**
 * Putting catalogue entries on a grid so that shared/hilbert's `orderTiles` can order them.
 *
 * - Every cell of the generated grid's form (`c0001r0002`): its column and row, as they are.
 * - Otherwise (real scenes named after their files): each tile's WGS84 centroid, from its Hilbert
 *   index (order 16 over the world) or its bounds, is mapped onto a grid spanning the archive's
 *   extent with about one grid cell per tile, so the orderings keep their meaning. Tiles with no
 *   known location go last, by id.
 *
 * A point of interest (`--around`) is a tile id, a cell key, or `lon,lat`; a point is placed on the
 * tile that contains it, else the tile whose centroid is nearest.
 */
import {
  LanemapError,
  MAX_HILBERT_ORDER,
  boxCentre,
  boxContains,
  hilbertPoint,
  orderTiles,
  parseCellKey,
  type CatalogueEntry,
  type GridPoint,
  type Ordering,
} from "../shared/index.js";

/** The orderings a run can use (the names of `Config.batch.order`). */
export const ORDER_KINDS = ["hilbert", "natural", "random", "distance", "hilbert-around"] as const;
/** One of ORDER_KINDS. */
export type OrderKind = (typeof ORDER_KINDS)[number];

/** A catalogue entry with its grid position. */
export interface PlacedEntry {
  readonly id: string;
  readonly col: number;
  readonly row: number;
  readonly entry: CatalogueEntry;
}

/** Entries on a grid, and those with no known location. */
export interface Placement {
  readonly placed: PlacedEntry[];
  readonly unplaced: CatalogueEntry[];
  /** "cells" when every cell key gave the position, "centroids" when centroids did. */
  readonly basis: "cells" | "centroids";
}

/** The WGS84 centroid of a tile, or null when it has no known location. */
export function centroidOf(e: CatalogueEntry): { lon: number; lat: number } | null {
  if (e.boundsWgs84) {
    const [lon, lat] = boxCentre(e.boundsWgs84); // across 180° too
    return { lon, lat };
  }
  if (e.hilbert !== null) {
    // The catalogue's index is over the whole world at the maximum order (shared/pipeline).
    const n = 2 ** MAX_HILBERT_ORDER;
    const p = hilbertPoint(MAX_HILBERT_ORDER, e.hilbert);
    return { lon: -180 + ((p.x + 0.5) / n) * 360, lat: -90 + ((p.y + 0.5) / n) * 180 };
  }
  return null;
}

/** Places entries on a grid (see the module comment). */
export function placeEntries(entries: readonly CatalogueEntry[]): Placement {
  const cells = entries.map((e) => parseCellKey(e.cell));
  if (cells.every((c) => c !== null)) {
    return {
      placed: entries.map((entry, i) => ({
        id: entry.tileId,
        col: cells[i]!.col,
        row: cells[i]!.row,
        entry,
      })),
      unplaced: [],
      basis: "cells",
    };
  }
  const located: { entry: CatalogueEntry; lon: number; lat: number }[] = [];
  const unplaced: CatalogueEntry[] = [];
  for (const entry of entries) {
    const c = centroidOf(entry);
    if (c) located.push({ entry, ...c });
    else unplaced.push(entry);
  }
  const side = Math.max(1, Math.ceil(Math.sqrt(located.length)));
  // Loops, not Math.min(...xs): spreading a large archive would overflow the call stack.
  let minLon = Infinity;
  let maxLon = -Infinity;
  let minLat = Infinity;
  let maxLat = -Infinity;
  for (const l of located) {
    minLon = Math.min(minLon, l.lon);
    maxLon = Math.max(maxLon, l.lon);
    minLat = Math.min(minLat, l.lat);
    maxLat = Math.max(maxLat, l.lat);
  }
  const scale = (v: number, min: number, max: number) =>
    max > min ? Math.min(side - 1, Math.floor(((v - min) / (max - min)) * side)) : 0;
  const placed = located.map(({ entry, lon, lat }) => ({
    id: entry.tileId,
    col: scale(lon, minLon, maxLon),
    // Rows count from the north, as in a raster.
    row: side - 1 - scale(lat, minLat, maxLat),
    entry,
  }));
  unplaced.sort((a, b) => (a.tileId < b.tileId ? -1 : a.tileId > b.tileId ? 1 : 0));
  return { placed, unplaced, basis: "centroids" };
}

/**
 * The grid point of `--around`: a tile id, a cell key or "lon,lat". Throws a LanemapError (code
 * ORDERING) when it names nothing in the run.
 */
export function resolveAround(text: string, placement: Placement): GridPoint {
  const spec = text.trim();
  const centre = (p: PlacedEntry): GridPoint => ({ x: p.col + 0.5, y: p.row + 0.5 });
  const byId = placement.placed.find((p) => p.id === spec);
  if (byId) return centre(byId);
  const byCell = placement.placed.filter((p) => p.entry.cell === spec);
  if (byCell.length > 0) return centre(byCell[0]!);
  const m = /^(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)$/.exec(spec);
  if (!m)
    throw new LanemapError(
      "ORDERING",
      `--around "${text}" is neither a tile id nor a cell of this run, nor "lon,lat"`,
    );
  const lon = Number(m[1]);
  const lat = Number(m[2]);
  if (Math.abs(lon) > 180 || Math.abs(lat) > 90)
    throw new LanemapError("ORDERING", `--around ${lon},${lat} is not a WGS84 longitude,latitude`);
  let best: PlacedEntry | undefined;
  let bestD = Infinity;
  for (const p of placement.placed) {
    const b = p.entry.boundsWgs84;
    if (b && boxContains(b, lon, lat)) return centre(p);
    const c = centroidOf(p.entry);
    if (!c) continue;
    const d = (c.lon - lon) ** 2 + (c.lat - lat) ** 2;
    if (d < bestD) {
      bestD = d;
      best = p;
    }
  }
  if (!best) throw new LanemapError("ORDERING", `--around ${lon},${lat}: no tile of this run has a location`);
  return centre(best);
}

/** The ordering to use: `--around` alone means hilbert-around; distance orders need a point. */
export function chooseOrdering(
  kind: OrderKind | undefined,
  around: GridPoint | undefined,
  fallback: OrderKind,
  seed: string,
): Ordering {
  const k: OrderKind = kind ?? (around ? "hilbert-around" : fallback);
  switch (k) {
    case "natural":
      return { kind: "natural" };
    case "hilbert":
      return { kind: "hilbert" };
    case "random":
      return { kind: "random", seed };
    case "distance":
    case "hilbert-around":
      if (!around)
        throw new LanemapError("ORDERING", `order "${k}" needs a point of interest (--around TILE|lon,lat)`);
      return { kind: k, around };
  }
}

/** The entries in processing order: ordered placed tiles, then unplaced ones. */
export function orderEntries(placement: Placement, ordering: Ordering): CatalogueEntry[] {
  return [...orderTiles(placement.placed, ordering).map((p) => p.entry), ...placement.unplaced];
}
