/**
 * A result as serving handles it: the lane's TileResult plus what queries need at hand (parsed
 * acquisition time, resolved CRS, WGS84 bounds) and a way to get its decoded class raster. Both
 * lanes' results take this one shape, so the merge rule and every use case treat them alike.
 */
import {
  crsFromEpsg,
  type Bounds,
  type ClassRaster,
  type Crs,
  type Lane,
  type LayerGrid,
  type MergeCandidate,
  type TileResult,
  utcTimestamp,
} from "../../shared/index.js";

/** One lane's result for one tile, ready for queries. */
export interface ServedResult extends MergeCandidate {
  readonly lane: Lane;
  readonly tileId: string;
  readonly cell: string;
  readonly acquired: string;
  readonly ingestSeq: number;
  readonly summary: TileResult;
  /** `acquired` as epoch milliseconds (datetime filters compare numbers). */
  readonly acquiredMs: number;
  /** The tile's CRS, or null when it has none usable (such a tile answers no point or area query). */
  readonly crs: Crs | null;
  /** WGS84 lon/lat bounds, or null when the tile could not be placed on the globe. */
  readonly bounds: Bounds | null;
  /** Batch lane: the version whose view holds this result; live lane: null. */
  readonly batchVersion: number | null;
  /** Live lane: the KV revision of the entry; batch lane: null. */
  readonly revision: number | null;
  /** The decoded class raster (cached by the view that holds the result). */
  raster(): Promise<ClassRaster>;
  /**
   * Present when this result is a cell's per-pixel composite (pixel-composite.ts): the fields above
   * are then the newest source's, `raster()` gives the composite and `summary`'s counts are the
   * composite's when they are known without reading rasters.
   */
  readonly composite?: ServedComposite;
}

/** A cell's per-pixel composite as a winner carries it (built by pixel-composite.ts). */
export interface ServedComposite {
  /** The newest source itself (what the per-cell rule would show; what its tile id names). */
  readonly top: ServedResult;
  /** Every candidate of the per-pixel rule, newest first (source indices point here). */
  readonly sources: readonly ServedResult[];
  /** The composite raster, its per-pixel source index and each source's pixel count (memoised). */
  compose(): Promise<ComposedCell>;
}

/** A composed cell: classes and votes per pixel, which source gave each, and the tally. */
export interface ComposedCell {
  readonly raster: ClassRaster;
  /** The pixel grid of `raster` and `source`; a source on another grid is sampled onto it. */
  readonly grid: LayerGrid;
  /**
   * Why `grid` is the covering candidate's although a source reaches beyond it (shared/view
   * `unionGrid`: the union over its bound, or a covering grid that cannot be extended); null when
   * `grid` holds every source's footprint.
   */
  readonly gridClipped: "too-large" | "not-placeable" | null;
  /** Per pixel, an index into `sources`; NO_SOURCE (255) where no source is valid. */
  readonly source: Uint8Array;
  readonly sources: readonly ServedResult[];
  /** Pixels each source gives, by index. */
  readonly contributions: readonly number[];
  readonly validPixels: number;
  readonly counts: readonly number[];
  readonly areasM2: readonly number[];
  /** Mean over the valid pixels of votes / k; null for a stored composite of an older view. */
  readonly meanConfidence: number | null;
}

const crsCache = new Map<string, Crs | null>();

/**
 * The CRS a result names: its EPSG code when the index knows it, else its proj4 definition, else
 * null. Memoised, since every result of a view typically shares one or two CRSs.
 */
export function resolveCrs(epsg: number | null, proj4: string | null): Crs | null {
  const key = `${epsg ?? ""}|${proj4 ?? ""}`;
  const hit = crsCache.get(key);
  if (hit !== undefined) return hit;
  let crs: Crs | null = null;
  if (epsg !== null) {
    try {
      crs = crsFromEpsg(epsg);
    } catch {
      crs = proj4 ? { epsg, proj4, name: null } : null;
    }
  } else if (proj4) crs = { epsg: null, proj4, name: null };
  // Keys come from views we wrote, but bound the memo anyway.
  if (crsCache.size > 1024) crsCache.clear();
  crsCache.set(key, crs);
  return crs;
}

/**
 * A lon/lat box the spatial index can place: finite, longitudes within ±180°, south ≤ north; null
 * otherwise. minX > maxX is a box across the antimeridian (RFC 7946 §5.2), not a bad one.
 */
export function placeableBounds(b: Bounds | null | undefined): Bounds | null {
  return b &&
    [b.minX, b.minY, b.maxX, b.maxY].every(Number.isFinite) &&
    b.minX >= -180 &&
    b.maxX <= 180 &&
    b.minY <= b.maxY
    ? b
    : null;
}

/** Builds a ServedResult around a lane's TileResult. */
export function servedResult(
  given: TileResult,
  extra: { batchVersion: number | null; revision: number | null; raster: () => Promise<ClassRaster> },
): ServedResult {
  // Answers carry RFC 3339 UTC with Z; a record written with an offset is rewritten once, here.
  const acquired = utcTimestamp(given.acquired);
  const processedAt = utcTimestamp(given.processedAt);
  const summary =
    acquired === given.acquired && processedAt === given.processedAt
      ? given
      : { ...given, acquired, processedAt };
  const bounds = placeableBounds(summary.boundsWgs84);
  return {
    lane: summary.lane,
    tileId: summary.tileId,
    cell: summary.cell,
    acquired: summary.acquired,
    ingestSeq: summary.ingestSeq,
    summary,
    acquiredMs: Date.parse(summary.acquired),
    crs: resolveCrs(summary.epsg, summary.proj4),
    bounds,
    batchVersion: extra.batchVersion,
    revision: extra.revision,
    raster: extra.raster,
  };
}
