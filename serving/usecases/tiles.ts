/**
 * Tiles: the merged (or one lane's) per-cell listing with filters and cursor paging, one cell's
 * detail with both lanes' candidates, and resolving an id (cell key or tile id) to the result a
 * renderer draws.
 */
import {
  CELL_KEY_PATTERN,
  boxesIntersect,
  type Bounds,
  type MergedCell,
  type ModelClass,
} from "../../shared/index.js";
import { InvalidParamsError, NotFoundError } from "../errors.js";
import type { TimeInterval } from "../api/params.js";
import { areaMeetsBox, type Area } from "../geo/area.js";
import type { TileDetailBody } from "../api/schemas.js";
import type { LaneSelector } from "../view/merged-index.js";
import type { ServedResult } from "../view/served-result.js";
import type { SnapshotLease, SnapshotManager } from "../view/snapshot.js";
import { encodeCursor, queryDigest, resolveCursor } from "./cursor.js";
import { snapshotInfo, tileSummary } from "./present.js";

/** Filters of a listing. */
export interface TileQuery {
  readonly bbox?: Bounds | undefined;
  readonly datetime?: TimeInterval | undefined;
  /** Class id or name, matched against the dominant class. */
  readonly class?: string | undefined;
  /** A (Multi)Polygon the result's bounds must meet (STAC `intersects`). */
  readonly intersects?: Area | undefined;
  /** Tile ids the result must be one of (STAC `ids`). */
  readonly ids?: readonly string[] | undefined;
  readonly lane: LaneSelector;
  readonly limit: number;
  readonly cursor?: string | undefined;
}

/** A page of results read from one snapshot (the caller releases the lease). */
export interface TilePage {
  readonly lease: SnapshotLease;
  readonly items: readonly ServedResult[];
  readonly cursor: string | null;
}

/** Resolves a `class` parameter (id or case-insensitive name) against the snapshot's model. */
export function resolveClass(value: string, classes: readonly ModelClass[], name = "class"): number {
  if (/^\d+$/.test(value)) {
    const id = Number(value);
    if (id > 255) throw new InvalidParamsError([{ name, reason: "class ids lie in 0..255" }]);
    return id;
  }
  const lower = value.toLowerCase();
  if (lower === "not classified") return 0;
  const hit = classes.find((c) => c.name.toLowerCase() === lower);
  if (!hit)
    throw new InvalidParamsError([
      {
        name,
        reason: `names no class of the model (known: ${classes.map((c) => c.name).join(", ") || "none"})`,
      },
    ]);
  return hit.id;
}

/** True when a result passes the filters. */
function matches(
  r: ServedResult,
  q: TileQuery,
  classId: number | null,
  ids: ReadonlySet<string> | null,
): boolean {
  if (ids && !ids.has(r.tileId)) return false;
  if (q.bbox) {
    // Either box may cross the antimeridian (west > east).
    if (!r.bounds || !boxesIntersect(r.bounds, q.bbox)) return false;
  }
  if (q.intersects) {
    if (!r.bounds || !areaMeetsBox(q.intersects, r.bounds)) return false;
  }
  if (q.datetime) {
    if (q.datetime.start !== null && r.acquiredMs < q.datetime.start) return false;
    if (q.datetime.end !== null && r.acquiredMs > q.datetime.end) return false;
  }
  if (classId !== null && r.summary.dominantClass !== classId) return false;
  return true;
}

/** First index whose cell sorts after `after` (results are in cell order). */
function firstAfter(items: readonly ServedResult[], after: string): number {
  let lo = 0;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((items[mid] as ServedResult).cell <= after) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * One page of the listing: one result per cell (merged winner, batch or live), filtered, in cell
 * order. The first page takes the current snapshot; later pages read the cursor's snapshot.
 * `endpoint` separates cursors of different listings (tiles, STAC search).
 */
export function listTiles(
  snapshots: SnapshotManager,
  q: TileQuery,
  endpoint: string,
  cursorName = "cursor",
): TilePage {
  const digest = queryDigest({
    endpoint,
    bbox: q.bbox ?? null,
    datetime: q.datetime ?? null,
    class: q.class ?? null,
    lane: q.lane,
    intersects: q.intersects?.polygons ?? null,
    ids: q.ids ?? null,
  });
  let lease: SnapshotLease;
  let after = "";
  if (q.cursor) ({ lease, after } = resolveCursor(snapshots, q.cursor, digest, cursorName));
  else lease = snapshots.acquire();
  try {
    const classId = q.class === undefined ? null : resolveClass(q.class, lease.snapshot.classes);
    const picked = lease.snapshot.index.picked(q.lane);
    const ids = q.ids ? new Set(q.ids) : null;
    const items: ServedResult[] = [];
    let more = false;
    for (let i = after ? firstAfter(picked, after) : 0; i < picked.length; i++) {
      const r = picked[i] as ServedResult;
      if (!matches(r, q, classId, ids)) continue;
      if (items.length === q.limit) {
        more = true;
        break;
      }
      items.push(r);
    }
    const last = items[items.length - 1];
    let cursor: string | null = null;
    if (more && last) {
      cursor = encodeCursor(lease, last.cell, digest);
      snapshots.keep(lease.snapshot);
    }
    return { lease, items, cursor };
  } catch (err) {
    lease.release();
    throw err;
  }
}

/** What an id path segment names in a snapshot: a cell (with the rule's outcome) and maybe a tile. */
export interface TileTarget {
  readonly merged: MergedCell<ServedResult>;
  /** The tile the id named, or undefined when it named a cell. */
  readonly tile: ServedResult | undefined;
  /** What renderers draw: the named tile, else the cell's winner. */
  readonly drawn: ServedResult | undefined;
}

/**
 * The result a tile or cell id draws (the named tile, else the cell's winner). With `lane`, the
 * answer that lane's listing (`/v1/tiles?lane=`) gives for the cell the id names: the batch view's
 * (its stored per-pixel composite, on the grid the listing gives) or the newest live result; so a
 * lane's image lies on exactly the grid and bbox its listing item gives.
 * @throws NotFoundError (404 tile-not-found) for an unknown id, a cell whose every live result was
 *   absorbed, or a cell `lane` has no result for.
 */
export function drawnTarget(lease: SnapshotLease, id: string, lane?: LaneSelector): ServedResult {
  const t = resolveTarget(lease, id);
  if (lane !== undefined && lane !== "merged") {
    const r = lease.snapshot.index.inLane(t.merged.cell, lane);
    if (!r) throw new NotFoundError(`cell ${t.merged.cell} has no ${lane} result`, "tile-not-found");
    return r;
  }
  if (!t.drawn)
    throw new NotFoundError(
      `cell ${t.merged.cell} has no result to draw (every live result was absorbed)`,
      "tile-not-found",
    );
  return t.drawn;
}

/**
 * Resolves an id: a cell key first (the cell's merged answer), then a tile id of either lane
 * (that very tile, even when another result now wins its cell). 404 when it names nothing.
 */
export function resolveTarget(lease: SnapshotLease, id: string): TileTarget {
  const index = lease.snapshot.index;
  if (CELL_KEY_PATTERN.test(id)) {
    const merged = index.byCell.get(id);
    if (merged) return { merged, tile: undefined, drawn: merged.winner };
  }
  const tile = index.tile(id);
  const merged = tile ? index.byCell.get(tile.cell) : undefined;
  if (!tile || !merged)
    throw new NotFoundError(
      `"${id}" is neither a cell nor a tile of the current view snapshot`,
      "tile-not-found",
    );
  return { merged, tile, drawn: tile };
}

/** One cell's detail: the batch result, the candidates newest first, the winner, the absorbed. */
export function tileDetail(lease: SnapshotLease, id: string, base: string): TileDetailBody {
  const t = resolveTarget(lease, id);
  const m = t.merged;
  const batch = lease.snapshot.index.batchByCell.get(m.cell);
  const drawnId = t.tile ? t.tile.tileId : m.cell;
  const path = `${base}/v1/tiles/${encodeURIComponent(drawnId)}`;
  return {
    cell: m.cell,
    requestedTileId: t.tile?.tileId ?? null,
    watermark: lease.snapshot.index.watermark,
    // The newest tile's own summary, never the composite's tally (that is `composite`): the same
    // answer whether or not a listing has composed the cell already.
    winner: m.winner ? tileSummary(m.winner.composite?.top ?? m.winner, lease) : null,
    batch: batch ? tileSummary(batch, lease) : null,
    candidates: m.candidates.map((r) => tileSummary(r, lease)),
    absorbed: m.absorbed.map((r) => tileSummary(r, lease)),
    links: t.drawn
      ? {
          classesPng: `${path}/classes.png`,
          classesTif: `${path}/classes.tif`,
          sourceTif: `${path}/source.tif`,
          sourcePng: `${path}/source.png`,
          confidencePng: `${path}/confidence.png`,
        }
      : null,
    // Needs the decoded raster: the (async) route fills it in.
    confidence: null,
    snapshot: snapshotInfo(lease),
  };
}
