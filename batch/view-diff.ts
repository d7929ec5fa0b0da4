/**
 * Two published batch views compared tile by tile and cell by cell: what an operator checks after a
 * fault (a cluster run against a single-process run of the same archive and model, a rerun against
 * the view it replaced). Each tile's class raster and each cell's per-pixel composite are compared
 * decoded (classes, votes, k; a composite's per-pixel source index too), so two deflate encoders'
 * bytes cannot make equal pixels differ; bytes equal short-cut the decode.
 *
 * Both views are read whole (their raster BLOBs, still deflated: a 10,000-tile view of 64² tiles is
 * a few MB) from their view.duckdb, opened read-only.
 */
import { join } from "node:path";
import { readBatchVersion } from "../shared/adapters/archive/index.js";
import { DuckDbDatabase } from "../shared/adapters/duckdb/index.js";
import { batchVersionNamed } from "./publisher.js";
import {
  BATCH_VIEW_FILES,
  LanemapError,
  dataPaths,
  decodeClassRaster,
  decodeSourceIndex,
  type PublishedViews,
} from "../shared/index.js";

/** How one kind of raster (tiles' class rasters, cells' composites) compares between views a and b. */
export interface RasterComparison {
  /** Ids (tile ids, or cells) present in both with the same pixels. */
  readonly equal: number;
  /** Ids present in both whose pixels differ, sorted. */
  readonly differing: readonly string[];
  /** Ids present in one view only, sorted. */
  readonly onlyInA: readonly string[];
  readonly onlyInB: readonly string[];
}

/** What `diffBatchViews` found. */
export interface ViewDiff {
  readonly a: string;
  readonly b: string;
  readonly tiles: RasterComparison;
  readonly composites: RasterComparison;
  /** Every tile and composite of each view is in the other with the same pixels. */
  readonly identical: boolean;
}

interface StoredRaster {
  readonly k: number;
  readonly width: number;
  readonly height: number;
  readonly raster: Uint8Array;
  readonly source?: Uint8Array;
}

const bytesOf = (v: unknown): Uint8Array => {
  if (v instanceof Uint8Array) return v;
  const b = (v as { bytes?: unknown } | null)?.bytes;
  if (b instanceof Uint8Array) return b;
  throw new LanemapError("BATCH_VIEW", "a stored raster is not a BLOB");
};

const sameBytes = (x: Uint8Array, y: Uint8Array): boolean =>
  x.length === y.length && Buffer.compare(Buffer.from(x.buffer, x.byteOffset, x.length), y) === 0;

/** True when two stored rasters hold the same pixels (and the same per-pixel sources). */
function samePixels(x: StoredRaster, y: StoredRaster): boolean {
  if (x.k !== y.k || x.width !== y.width || x.height !== y.height) return false;
  const sources = x.source && y.source ? sameBytes(x.source, y.source) : x.source === y.source;
  if (sameBytes(x.raster, y.raster) && sources) return true;
  const n = x.width * x.height;
  const rx = decodeClassRaster(x.raster, x.width, x.height, x.k);
  const ry = decodeClassRaster(y.raster, y.width, y.height, y.k);
  if (!sameBytes(rx.classes, ry.classes) || !sameBytes(rx.votes, ry.votes)) return false;
  if (x.source && y.source) return sameBytes(decodeSourceIndex(x.source, n), decodeSourceIndex(y.source, n));
  return x.source === y.source;
}

function compare(a: Map<string, StoredRaster>, b: Map<string, StoredRaster>): RasterComparison {
  let equal = 0;
  const differing: string[] = [];
  const onlyInA: string[] = [];
  for (const [id, x] of a) {
    const y = b.get(id);
    if (!y) onlyInA.push(id);
    else if (samePixels(x, y)) equal++;
    else differing.push(id);
  }
  const onlyInB = [...b.keys()].filter((id) => !a.has(id));
  return { equal, differing: differing.sort(), onlyInA: onlyInA.sort(), onlyInB: onlyInB.sort() };
}

async function readRasters(
  file: string,
): Promise<{ tiles: Map<string, StoredRaster>; composites: Map<string, StoredRaster> }> {
  const db = await DuckDbDatabase.open(file, { readOnly: true });
  try {
    const tiles = new Map<string, StoredRaster>();
    for (const r of await db.all<Record<string, unknown>>(
      "SELECT r.tile_id, r.k, r.raster, t.width, t.height FROM rasters r JOIN tiles t USING (tile_id)",
    ))
      tiles.set(String(r["tile_id"]), {
        k: Number(r["k"]),
        width: Number(r["width"]),
        height: Number(r["height"]),
        raster: bytesOf(r["raster"]),
      });
    const composites = new Map<string, StoredRaster>();
    for (const r of await db.all<Record<string, unknown>>(
      "SELECT cell, k, width, height, raster, source FROM composites",
    ))
      composites.set(String(r["cell"]), {
        k: Number(r["k"]),
        width: Number(r["width"]),
        height: Number(r["height"]),
        raster: bytesOf(r["raster"]),
        source: bytesOf(r["source"]),
      });
    return { tiles, composites };
  } finally {
    db.closeSync();
  }
}

/** The local folder of a complete version: the data directory's own, or the shared store's copy. */
async function versionDir(dataDir: string, spec: string, views?: PublishedViews): Promise<[string, string]> {
  const name = batchVersionNamed(spec);
  if (views && views.backend !== "files") return [name, await views.materialize(name)];
  if (!(await readBatchVersion(dataDir, name)))
    throw new LanemapError("VIEW_NOT_FOUND", `batch view ${name} does not exist or is incomplete`);
  return [name, join(dataPaths(dataDir).batchViews, name)];
}

/**
 * Compares two complete published versions ("v000042" or "42"; through `views` when the views are
 * shared, else the data directory's) tile by tile and cell by cell.
 * @throws LanemapError VIEW_NOT_FOUND for a missing or incomplete version; BATCH_VIEW or DUCKDB when
 *   a view cannot be read.
 */
export async function diffBatchViews(
  dataDir: string,
  a: string,
  b: string,
  views?: PublishedViews,
): Promise<ViewDiff> {
  const [nameA, dirA] = await versionDir(dataDir, a, views);
  const [nameB, dirB] = await versionDir(dataDir, b, views);
  const ra = await readRasters(join(dirA, BATCH_VIEW_FILES.duckdb));
  const rb = await readRasters(join(dirB, BATCH_VIEW_FILES.duckdb));
  const tiles = compare(ra.tiles, rb.tiles);
  const composites = compare(ra.composites, rb.composites);
  const clean = (c: RasterComparison) =>
    c.differing.length === 0 && c.onlyInA.length === 0 && c.onlyInB.length === 0;
  return { a: nameA, b: nameB, tiles, composites, identical: clean(tiles) && clean(composites) };
}
