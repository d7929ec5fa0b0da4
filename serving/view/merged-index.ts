/**
 * The merged view of one snapshot, computed once per (batch version, live position) pair with the
 * shared merge rule and then only read: cells in key order for paging, lookups by cell and by tile
 * id, and a grid index of the winners' WGS84 bounds for point and area queries.
 */
import {
  MAX_COMPOSITE_SOURCES,
  mergeViews,
  newestOf,
  pixelCandidates,
  unionGrid,
  type MergedCell,
} from "../../shared/index.js";
import { GridIndex } from "./grid-index.js";
import { composeMergedCell, gridOf, type StoredComposites } from "./pixel-composite.js";
import type { ComposedCell } from "./served-result.js";
import type { ServedResult } from "./served-result.js";

/** Which lane's answer a listing shows per cell. */
export type LaneSelector = "merged" | "batch" | "live";

/** The merged view of one snapshot and its lookups; immutable once built. */
export class MergedIndex {
  /** Every cell either lane knows, in key order, with the rule's outcome. */
  readonly cells: readonly MergedCell<ServedResult>[];
  readonly byCell: ReadonlyMap<string, MergedCell<ServedResult>>;
  /** The live results per cell, every one of them (absorbed or not). */
  readonly liveByCell: ReadonlyMap<string, readonly ServedResult[]>;
  /** The batch view's result per cell. */
  readonly batchByCell: ReadonlyMap<string, ServedResult>;
  /** The watermark the rule applied (-1 without a batch view: every live result competes). */
  readonly watermark: number;
  /** Winners by tile id. */
  private readonly tiles: ReadonlyMap<string, ServedResult>;
  private readonly batchTiles: ReadonlyMap<string, ServedResult>;
  private readonly liveTiles: ReadonlyMap<string, ServedResult>;
  private grid: GridIndex<MergedCell<ServedResult>> | undefined;
  private readonly picks = new Map<LaneSelector, readonly ServedResult[]>();
  private readonly picksByCell = new Map<LaneSelector, ReadonlyMap<string, ServedResult>>();
  private readonly laneGrids = new Map<LaneSelector, GridIndex<ServedResult>>();
  private batchTilesByCell: Map<string, ServedResult[]> | undefined;
  private readonly composites: StoredComposites | null;

  /**
   * `batchCells` is the batch view's result per cell and `batchTiles` all of its tiles; `live` the
   * live results per cell; `watermark` the batch view's (or -1 when there is none); `composites`
   * the batch view's stored per-pixel composites. A cell's winner is its per-pixel composite when
   * it needs one (pixel-composite.ts), else the per-cell rule's winner itself.
   */
  constructor(
    batchCells: ReadonlyMap<string, ServedResult>,
    batchTiles: ReadonlyMap<string, ServedResult>,
    live: ReadonlyMap<string, readonly ServedResult[]>,
    watermark: number,
    composites: StoredComposites | null = null,
  ) {
    this.watermark = watermark;
    this.batchByCell = batchCells;
    this.composites = composites;
    this.liveByCell = live;
    this.cells = mergeViews(batchCells, live, watermark).map((c) =>
      composeMergedCell(c, composites, batchTiles, watermark),
    );
    this.byCell = new Map(this.cells.map((c) => [c.cell, c]));
    this.batchTiles = batchTiles;
    const liveTiles = new Map<string, ServedResult>();
    for (const list of live.values()) for (const r of list) liveTiles.set(r.tileId, r);
    this.liveTiles = liveTiles;
    // Only the winners are indexed here; batch and live tiles are looked up in their own maps, so a
    // live change does not copy the batch view's every tile into a new map.
    const winners = new Map<string, ServedResult>();
    // A composite winner's tile id names its newest source, which is what a tile id draws.
    for (const c of this.cells)
      if (c.winner) winners.set(c.winner.tileId, c.winner.composite?.top ?? c.winner);
    this.tiles = winners;
  }

  /**
   * The result with this tile id in either lane: the one the merged view shows when it shows one,
   * else the batch view's, else the live view's.
   */
  tile(tileId: string): ServedResult | undefined {
    return this.tiles.get(tileId) ?? this.batchTiles.get(tileId) ?? this.liveTiles.get(tileId);
  }

  /** The result with this tile id in one lane. */
  tileInLane(tileId: string, lane: "batch" | "live"): ServedResult | undefined {
    return (lane === "batch" ? this.batchTiles : this.liveTiles).get(tileId);
  }

  /**
   * The result a listing shows per cell, in cell order: the merged winner, the batch view's result
   * (its per-pixel composite where it stored one), or the newest live result (the live view on its own, absorbed results included).
   */
  picked(lane: LaneSelector): readonly ServedResult[] {
    const hit = this.picks.get(lane);
    if (hit) return hit;
    const out: ServedResult[] = [];
    for (const c of this.cells) {
      const r =
        lane === "merged"
          ? c.winner
          : lane === "batch"
            ? this.batchView(c.cell)
            : newestOf(this.liveByCell.get(c.cell) ?? []);
      if (r) out.push(r);
    }
    this.picks.set(lane, out);
    return out;
  }

  /**
   * The result one lane shows for a cell, the very one `picked(lane)` lists (so an image drawn from
   * it lies on the grid and bbox the listing gives), or undefined when that lane has none.
   */
  inLane(cell: string, lane: LaneSelector): ServedResult | undefined {
    let byCell = this.picksByCell.get(lane);
    if (!byCell) {
      byCell = new Map(this.picked(lane).map((r) => [r.cell, r]));
      this.picksByCell.set(lane, byCell);
    }
    return byCell.get(cell);
  }

  /**
   * Why the union grid of a cell's every candidate — all of the batch view's tiles of the cell (as
   * the batch run composites them, batch/view-store.ts) and the live results above W — fell back to
   * the covering grid (shared/view `unionGrid`), or null when it did not. Asked of cells a composite
   * does not answer too: a fully valid newest scene shown alone still had its union clipped when an
   * older scene of the cell lies far away, and the batch run logs such a cell. Computed on demand.
   * @throws CrsError when a candidate's CRS has no proj4 definition.
   */
  unionClipped(cell: string): ComposedCell["gridClipped"] {
    if (!this.batchTilesByCell) {
      const byCell = new Map<string, ServedResult[]>();
      for (const r of this.batchTiles.values()) {
        const list = byCell.get(r.cell);
        if (list) list.push(r);
        else byCell.set(r.cell, [r]);
      }
      this.batchTilesByCell = byCell;
    }
    const live = (this.byCell.get(cell)?.candidates ?? []).filter((r) => r.lane === "live");
    const { ordered } = pixelCandidates(this.batchTilesByCell.get(cell) ?? [], live, this.watermark);
    if (ordered.length < 2) return null;
    return unionGrid(ordered.slice(0, MAX_COMPOSITE_SOURCES).map(gridOf))?.clipped ?? null;
  }

  /** The batch view's answer for a cell: its stored per-pixel composite, else its newest tile. */
  private batchView(cell: string): ServedResult | undefined {
    const b = this.batchByCell.get(cell);
    if (!b || !this.composites?.byCell.has(cell)) return b;
    return composeMergedCell(
      { cell, winner: b, candidates: [b], absorbed: [] },
      this.composites,
      this.batchTiles,
      this.watermark,
    ).winner;
  }

  /**
   * One lane's answers (`picked(lane)`) indexed by their own WGS84 boxes, for point queries in that
   * lane. Not the merged winners' boxes: a lane's answer may lie outside its cell's merged footprint
   * (a live tile far from the batch scene whose union was clipped to the covering grid).
   */
  laneResults(lane: "batch" | "live"): GridIndex<ServedResult> {
    let g = this.laneGrids.get(lane);
    if (!g) {
      g = new GridIndex(this.picked(lane), (r) => r.bounds);
      this.laneGrids.set(lane, g);
    }
    return g;
  }

  /** The winners' spatial index (built on first use). */
  winners(): GridIndex<MergedCell<ServedResult>> {
    this.grid ??= new GridIndex(
      this.cells.filter((c) => c.winner),
      (c) => c.winner?.bounds ?? null,
    );
    return this.grid;
  }
}
