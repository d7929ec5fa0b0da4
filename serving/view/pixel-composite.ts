/**
 * Serving's per-pixel merge: per cell, the batch view's stored composite (its sources up to W) and
 * the live results above W, newest first; each pixel from the first source in which it is valid
 * (shared/view/composite.ts). The per-cell outcome (merge.ts) decides which cells need this at all:
 *
 * - the newest candidate is fully valid, or the cell has one candidate: it is the answer, exactly as
 *   before compositing, and nothing more is read (the short-circuit that keeps clear cells cheap);
 * - only batch sources: the batch view's stored composite, counts known without reading a raster;
 * - live above W over batch (or several live results): composed on first use from the stored
 *   composite and the live rasters with `overlayComposite`, memoised in the winner.
 *
 * A cell's `candidates` stay the per-cell rule's (batch cell result and live above W); the composite's
 * own sources are `winner.composite.sources`.
 *
 * The composite is on the cell's union grid (shared/view/resample.ts `unionGrid`: the lattice of the
 * candidate covering the most ground — the newest when all share one extent, then its very grid —
 * extended to every candidate's footprint) and keeps the newest candidate's identity; a source on
 * another grid (resolution, CRS, footprint) is sampled at each of its pixel centres by nearest
 * neighbour (shared/view/resample.ts), the same rule the batch lane's composite follows, so the
 * batch view alone gives the same composite after the next run (it stores the grid; a view written
 * before it did lies on the covering tile's grid). Votes are shown against the newest source's k.
 */
import {
  NO_SOURCE,
  compositeTally,
  gridBoundsWgs84,
  overlayComposite,
  pixelCandidates,
  resampleLayer,
  sameLayerGrid,
  samplingIndex,
  coveringGridIndex,
  singleLayerComposite,
  unionGrid,
  MAX_COMPOSITE_SOURCES,
  type Bounds,
  type CellComposite,
  type Crs,
  type ClassRaster,
  type MergedCell,
  type LayerGrid,
  type PixelComposite,
  type PixelLayer,
  type TileResult,
} from "../../shared/index.js";
import {
  placeableBounds,
  resolveCrs,
  type ComposedCell,
  type ServedComposite,
  type ServedResult,
} from "./served-result.js";

/** What the batch view offers the per-pixel merge. */
export interface StoredComposites {
  readonly byCell: ReadonlyMap<string, CellComposite>;
  raster(cell: string): Promise<ClassRaster & { readonly source: Uint8Array }>;
}

/** A result's pixel grid as shared/view/resample.ts reads it. */
export function gridOf(r: ServedResult): LayerGrid {
  const s = r.summary;
  return { width: s.width, height: s.height, geoTransform: s.geoTransform, crs: r.crs };
}

/** A source's class raster on `grid` (the composite's): itself, or sampled at its pixel centres. */
async function onGridOf(grid: LayerGrid, r: ServedResult): Promise<PixelLayer> {
  const raster = await r.raster();
  if (sameLayerGrid(gridOf(r), grid)) return raster;
  return resampleLayer(raster, samplingIndex(grid, gridOf(r)));
}

/** Where a composite lies: its grid and what a winner's summary and the spatial index take from it. */
interface Placement {
  readonly grid: LayerGrid;
  readonly summary: Pick<TileResult, "width" | "height" | "geoTransform" | "epsg" | "proj4" | "boundsWgs84">;
  readonly crs: Crs | null;
  readonly bounds: Bounds | null;
}

/** A candidate's own grid as a placement: exactly its summary's fields, as before union grids. */
function placementOf(r: ServedResult): Placement {
  return { grid: gridOf(r), summary: r.summary, crs: r.crs, bounds: r.bounds };
}

/**
 * `grid` (a union grid on `covering`'s lattice, or a stored composite's grid with its CRS as
 * `epsg`/`proj4`) as a placement: `covering`'s own when it is that very grid, else the grid with its
 * own lon/lat footprint (shared/view `gridBoundsWgs84`).
 */
function placementOn(
  covering: ServedResult,
  grid: LayerGrid,
  crs: { readonly epsg: number | null; readonly proj4: string | null } = covering.summary,
): Placement {
  if (sameLayerGrid(grid, gridOf(covering))) return placementOf(covering);
  const b = gridBoundsWgs84(grid);
  const bounds = placeableBounds(b);
  return {
    grid,
    summary: {
      width: grid.width,
      height: grid.height,
      geoTransform: [...grid.geoTransform],
      epsg: crs.epsg,
      proj4: crs.proj4,
      boundsWgs84: b,
    },
    crs: grid.crs,
    bounds,
  };
}

/**
 * The grid the batch view's composite of a cell lies on: the one it stores, or, in a view written
 * before it stored one, the grid of the source covering the cell (as the batch lane then chose it).
 */
function storedPlacement(c: CellComposite, batchSources: readonly ServedResult[]): Placement | undefined {
  const covering = batchSources[coveringGridIndex(batchSources.map(gridOf))];
  if (!covering) return undefined;
  if (c.geoTransform === null) return placementOf(covering);
  const crs = resolveCrs(c.epsg, c.proj4);
  return placementOn(covering, { width: c.width, height: c.height, geoTransform: c.geoTransform, crs }, c);
}

/** `top`'s summary placed on `on`: size, geotransform, CRS and bounds. */
function onGridSummary(top: TileResult, on: Placement): TileResult {
  if (top === on.summary) return top;
  return {
    ...top,
    width: on.summary.width,
    height: on.summary.height,
    geoTransform: on.summary.geoTransform,
    epsg: on.summary.epsg,
    proj4: on.summary.proj4,
    boundsWgs84: on.summary.boundsWgs84,
  };
}

/** The tally as a summary: counts, areas, valid pixels and the dominant class of the composite. */
function talliedSummary(
  top: TileResult,
  t: {
    validPixels: number;
    counts: readonly number[];
    areasM2: readonly number[];
    meanConfidence: number | null;
  },
): TileResult {
  let dominant = 0;
  let most = 0;
  for (let c = 1; c < t.counts.length; c++)
    if ((t.counts[c] ?? 0) > most) {
      most = t.counts[c] ?? 0;
      dominant = c;
    }
  return {
    ...top,
    validPixels: t.validPixels,
    counts: [...t.counts],
    areasM2: [...t.areasM2],
    // A view written before composites stored it: the newest tile's own (the pre-fix figure).
    meanConfidence: t.meanConfidence ?? top.meanConfidence,
    dominantClass: dominant,
  };
}

/**
 * A winner that is a composite: the newest source's identity on `on` (the cell's union grid,
 * shared/view/resample.ts `unionGrid`), the composite's raster and tally.
 */
function compositeWinner(
  top: ServedResult,
  on: Placement,
  sources: readonly ServedResult[],
  compose: () => Promise<ComposedCell>,
  known: TileResult | null,
): ServedResult {
  let composed: Promise<ComposedCell> | undefined;
  let tallied: TileResult | null = known;
  const composite: ServedComposite = {
    top,
    sources,
    compose() {
      composed ??= compose().then((c) => {
        tallied ??= talliedSummary(onGridSummary(top.summary, on), c);
        return c;
      });
      // A failed load is not memoised: the next request tries again.
      composed.catch(() => (composed = undefined));
      return composed;
    },
  };
  return {
    lane: top.lane,
    tileId: top.tileId,
    cell: top.cell,
    acquired: top.acquired,
    ingestSeq: top.ingestSeq,
    acquiredMs: top.acquiredMs,
    crs: on.crs,
    bounds: on.bounds,
    batchVersion: top.batchVersion,
    revision: top.revision,
    // The composite's counts once known (at once for a stored composite; after composing otherwise).
    get summary() {
      return tallied ?? onGridSummary(top.summary, on);
    },
    raster: () => composite.compose().then((c) => c.raster),
    composite,
  };
}

/**
 * The per-pixel outcome of one cell, from its per-cell outcome `merged` (whose candidates are the
 * batch view's cell result and the live results above W). Returns `merged` itself when the cell
 * needs no composite.
 */
export function composeMergedCell(
  merged: MergedCell<ServedResult>,
  stored: StoredComposites | null,
  batchTiles: ReadonlyMap<string, ServedResult>,
  watermark: number,
): MergedCell<ServedResult> {
  const cell = merged.cell;
  const storedCell = stored?.byCell.get(cell);
  const live = merged.candidates.filter((r) => r.lane === "live");
  if (!storedCell && live.length === 0) return merged;
  const top = merged.winner;
  if (!top) return merged;
  const batchCell = merged.candidates.find((r) => r.lane === "batch");
  const batchSources: ServedResult[] = [];
  if (storedCell)
    for (const s of storedCell.sources) {
      const r = batchTiles.get(s.tileId);
      if (r) batchSources.push(r);
    }
  else if (batchCell) batchSources.push(batchCell);
  const { ordered } = pixelCandidates(batchSources, live, watermark);
  // Every candidate takes part, whatever its grid (the newest up to the source index's limit).
  const sources = ordered.slice(0, MAX_COMPOSITE_SOURCES);
  if (sources.length < 2) return merged;
  // The composite's grid: the union of the candidates' footprints on the lattice of the one covering
  // the most ground (the newest's very grid when every footprint lies inside it).
  const union = unionGrid(sources.map(gridOf));
  if (!union) return merged;
  // The short-circuit: a fully valid newest candidate that is the composite's grid is the answer, as before.
  if (
    sameLayerGrid(union.grid, gridOf(top)) &&
    top.summary.validPixels >= top.summary.width * top.summary.height
  )
    return merged;
  // The detail's candidates stay the per-cell rule's; the composite's sources are listed apart.
  const candidates = merged.candidates;
  const slots = Math.max(...sources.map((r) => r.summary.counts.length));
  const storedOn = storedCell ? storedPlacement(storedCell, batchSources) : undefined;

  if (storedCell && storedOn && live.length === 0 && sources.length === storedCell.sources.length && stored) {
    // Batch alone: the stored composite as it is, on its stored grid, its tally from the view.
    const on = storedOn;
    const known = talliedSummary(onGridSummary(top.summary, on), storedCell);
    const winner = compositeWinner(
      top,
      on,
      sources,
      async () => {
        const r = await stored.raster(cell);
        return {
          raster: r,
          grid: on.grid,
          gridClipped: union.clipped,
          source: r.source,
          sources,
          contributions: storedCell.sources.map((s) => s.pixels),
          validPixels: storedCell.validPixels,
          counts: storedCell.counts,
          areasM2: storedCell.areasM2,
          meanConfidence: storedCell.meanConfidence,
        };
      },
      known,
    );
    return { cell, winner, candidates, absorbed: merged.absorbed };
  }

  const on = placementOn(sources[union.covering] ?? top, union.grid);
  const n = on.grid.width * on.grid.height;
  const rank = new Map(sources.map((r, i) => [r, i]));
  const winner = compositeWinner(
    top,
    on,
    sources,
    async () => {
      // The base: the stored composite when all its sources take part and it lies on the composite's
      // grid; otherwise every source is a layer of its own (sampled onto that grid where it is not on it).
      let base: PixelComposite | undefined;
      let baseRanks: number[] = [];
      const storedRanks = storedCell?.sources.map((s) => {
        const r = batchTiles.get(s.tileId);
        return r ? (rank.get(r) ?? -1) : -1;
      });
      if (
        storedCell &&
        stored &&
        storedRanks &&
        storedRanks.every((r) => r >= 0) &&
        storedOn &&
        storedOn.grid.width * storedOn.grid.height === storedCell.width * storedCell.height &&
        sameLayerGrid(storedOn.grid, on.grid)
      ) {
        const r = await stored.raster(cell);
        base = { ...r, contributions: storedCell.sources.map((s) => s.pixels) };
        baseRanks = storedRanks;
      }
      const inBase = new Set(baseRanks);
      const layers = sources.filter((_, i) => !inBase.has(i));
      const rasters = await Promise.all(layers.map((r) => onGridOf(on.grid, r)));
      const c = overlayComposite(
        base,
        baseRanks,
        rasters,
        layers.map((r) => rank.get(r) as number),
        n,
      );
      const { k } = await top.raster();
      const tally = compositeTally(c, on.grid, slots, k);
      return {
        raster: {
          width: on.grid.width,
          height: on.grid.height,
          k,
          classes: c.classes,
          votes: c.votes,
        },
        grid: on.grid,
        gridClipped: union.clipped,
        source: c.source,
        sources,
        contributions: c.contributions,
        ...tally,
      };
    },
    null,
  );
  return { cell, winner, candidates, absorbed: merged.absorbed };
}

/**
 * The per-pixel sources of any winner: a composite's, or for a plain result itself on its valid
 * pixels and nothing elsewhere.
 */
export async function pixelSources(r: ServedResult): Promise<ComposedCell> {
  if (r.composite) return r.composite.compose();
  const raster = await r.raster();
  const c = singleLayerComposite(raster);
  const s = r.summary;
  return {
    raster,
    grid: gridOf(r),
    gridClipped: null,
    source: c.source,
    sources: [r],
    contributions: c.contributions,
    validPixels: s.validPixels,
    counts: s.counts,
    areasM2: s.areasM2,
    meanConfidence: s.meanConfidence,
  };
}

/** The source of pixel `i` of a composed cell, or null where no source is valid. */
export function sourceAt(c: ComposedCell, i: number): ServedResult | null {
  const s = c.source[i] ?? NO_SOURCE;
  return s === NO_SOURCE ? null : (c.sources[s] ?? null);
}
