/**
 * Test fixtures for serving: synthetic class-raster tiles on a lon/lat grid (or in UTM), batch view
 * folders written exactly per shared/view/batch-schema.ts through the DuckDB adapter (real DuckDB
 * files, published by renaming CURRENT), and live entries written through LiveView on a real
 * nats-server. The other lanes are not needed to test serving.
 */
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BIGINT, DOUBLE, LIST, listValue, timestampValue } from "@duckdb/node-api";
import { StagingViewStore } from "../../batch/view-store.js";
import { DuckDbDatabase } from "../../shared/adapters/duckdb/index.js";
import { setCurrentBatch } from "../../shared/adapters/archive/index.js";
import type { LiveView } from "../../shared/adapters/nats/index.js";
import {
  BATCH_VIEW_DDL,
  BATCH_VIEW_FILES,
  WGS84,
  pixelArea,
  crsFromEpsg,
  dataPaths,
  encodeClassRaster,
  newestOf,
  transformBounds,
  versionName,
  type BatchManifest,
  type ClassRaster,
  type TileResult,
} from "../../shared/index.js";

/** A tile: its summary and its class raster. */
export interface TileFixture {
  readonly result: TileResult;
  readonly raster: ClassRaster;
}

/** The model classes the fixtures use. */
export const TEST_CLASSES = [
  { id: 1, name: "water", colour: "#1f78b4" },
  { id: 2, name: "forest", colour: "#33a02c" },
  { id: 3, name: "crop", colour: "#ffff99" },
  { id: 4, name: "urban", colour: "#e31a1c" },
] as const;

/** A fresh temporary data directory; remove it with the returned dispose. */
export async function tempDataDir(): Promise<{ dir: string } & AsyncDisposable> {
  const dir = await mkdtemp(join(tmpdir(), "lanemap-serving-"));
  return { dir, [Symbol.asyncDispose]: () => rm(dir, { recursive: true, force: true }) };
}

/** Grid geometry of the lon/lat fixtures: cell (col, row) covers one `size`° square. */
export interface LonLatGrid {
  readonly lon0: number;
  readonly lat0: number;
  /** Cell side in degrees. */
  readonly size: number;
  /** Raster side in pixels. */
  readonly pixels: number;
}

export const DEFAULT_GRID: LonLatGrid = { lon0: 10, lat0: 50, size: 0.04, pixels: 4 };

/** Bounds of cell (col, row): columns go east from lon0, rows go south from lat0. */
export function cellBounds(
  g: LonLatGrid,
  col: number,
  row: number,
): { minX: number; minY: number; maxX: number; maxY: number } {
  return {
    minX: g.lon0 + col * g.size,
    maxX: g.lon0 + (col + 1) * g.size,
    maxY: g.lat0 - row * g.size,
    minY: g.lat0 - (row + 1) * g.size,
  };
}

/** Counts per class of a raster (index 0 = not classified), sized to `classes + 1`. */
export function countsOf(raster: ClassRaster, classes = 4): number[] {
  const counts = new Array<number>(classes + 1).fill(0);
  for (const c of raster.classes) counts[c] = (counts[c] ?? 0) + 1;
  return counts;
}

/**
 * A TileResult whose per-class numbers are computed from its raster; `pixelAreaM2` is one area for
 * every pixel or the area of a pixel of row r (as classSummary sums them, row by row).
 */
export function summarise(
  base: Omit<TileResult, "validPixels" | "counts" | "areasM2" | "dominantClass" | "meanConfidence">,
  raster: ClassRaster,
  pixelAreaM2: number | ((row: number) => number),
): TileResult {
  const counts = countsOf(raster);
  const areasM2 = new Array<number>(counts.length).fill(0);
  for (let i = 0; i < raster.classes.length; i++) {
    const c = raster.classes[i] as number;
    if (c === 0) continue;
    const row = Math.floor(i / raster.width);
    areasM2[c] = (areasM2[c] as number) + (typeof pixelAreaM2 === "number" ? pixelAreaM2 : pixelAreaM2(row));
  }
  // The most frequent classified class (0 only when nothing was classified).
  let dominant = 0;
  let best = 0;
  for (let c = 1; c < counts.length; c++)
    if ((counts[c] ?? 0) > best) {
      best = counts[c] ?? 0;
      dominant = c;
    }
  let votes = 0;
  let valid = 0;
  for (let i = 0; i < raster.classes.length; i++)
    if (raster.classes[i] !== 0) {
      valid++;
      votes += raster.votes[i] ?? 0;
    }
  return {
    ...base,
    validPixels: valid,
    counts,
    areasM2,
    dominantClass: dominant,
    meanConfidence: valid ? votes / valid / raster.k : 0,
  };
}

/** A raster of `pixels`² with classes from `classAt(col, row)` and votes from `votesAt`. */
export function makeRaster(
  pixels: number,
  classAt: (col: number, row: number) => number,
  k = 5,
  votesAt: (col: number, row: number) => number = () => k,
): ClassRaster {
  const classes = new Uint8Array(pixels * pixels);
  const votes = new Uint8Array(pixels * pixels);
  for (let r = 0; r < pixels; r++)
    for (let c = 0; c < pixels; c++) {
      const v = classAt(c, r);
      classes[r * pixels + c] = v;
      votes[r * pixels + c] = v === 0 ? 0 : Math.max(1, Math.min(k, votesAt(c, r)));
    }
  return { width: pixels, height: pixels, classes, votes, k };
}

/** The cell key used by the fixtures (cellKey's format). */
export const fixtureCell = (col: number, row: number): string =>
  `c${String(col).padStart(4, "0")}r${String(row).padStart(4, "0")}`;

/** A lon/lat (EPSG:4326) tile of cell (col, row). */
export function lonLatTile(
  g: LonLatGrid,
  t: {
    col: number;
    row: number;
    tileId: string;
    lane: "batch" | "live";
    acquired: string;
    ingestSeq: number;
    raster: ClassRaster;
    modelVersion?: string;
    processedAt?: string;
  },
): TileFixture {
  const b = cellBounds(g, t.col, t.row);
  const d = g.size / g.pixels;
  const areas = pixelArea({ geoTransform: [b.minX, d, 0, b.maxY, 0, -d], crs: WGS84, height: g.pixels });
  const rowAreas = areas?.kind === "per-row" ? areas.m2 : new Float64Array(g.pixels);
  const result = summarise(
    {
      lane: t.lane,
      tileId: t.tileId,
      cell: fixtureCell(t.col, t.row),
      acquired: t.acquired,
      ingestSeq: t.ingestSeq,
      contentHash: createHash("sha256").update(t.tileId).digest("hex"),
      modelVersion: t.modelVersion ?? "m1",
      width: g.pixels,
      height: g.pixels,
      geoTransform: [b.minX, d, 0, b.maxY, 0, -d],
      epsg: 4326,
      proj4: null,
      boundsWgs84: b,
      processedAt: t.processedAt ?? t.acquired,
    },
    t.raster,
    // The WGS 84 ellipsoid's area of each row's pixels, as the lanes compute it (classSummary).
    (row) => rowAreas[row] as number,
  );
  return { result, raster: t.raster };
}

/** A UTM zone 33N tile of `pixels`² at `pixelM` metres, its corner at (x0, y0). */
export function utmTile(t: {
  x0: number;
  y0: number;
  pixels: number;
  pixelM: number;
  cell: string;
  tileId: string;
  lane: "batch" | "live";
  acquired: string;
  ingestSeq: number;
  raster: ClassRaster;
}): TileFixture {
  const utm = crsFromEpsg(32633);
  const side = t.pixels * t.pixelM;
  const native = { minX: t.x0, minY: t.y0 - side, maxX: t.x0 + side, maxY: t.y0 };
  // Two points per edge: a 2 km UTM edge bends by well under a millimetre in lon/lat.
  const wgs = transformBounds(utm, WGS84, native, 2);
  const result = summarise(
    {
      lane: t.lane,
      tileId: t.tileId,
      cell: t.cell,
      acquired: t.acquired,
      ingestSeq: t.ingestSeq,
      contentHash: createHash("sha256").update(t.tileId).digest("hex"),
      modelVersion: "m1",
      width: t.pixels,
      height: t.pixels,
      geoTransform: [t.x0, t.pixelM, 0, t.y0, 0, -t.pixelM],
      epsg: 32633,
      proj4: null,
      boundsWgs84: wgs,
      processedAt: t.acquired,
    },
    t.raster,
    t.pixelM * t.pixelM,
  );
  return { result, raster: t.raster };
}

/** What to write as one batch view version. */
export interface BatchViewSpec {
  readonly version: number;
  readonly watermark: number;
  readonly modelVersion?: string;
  readonly tiles: readonly TileFixture[];
  readonly classes?: readonly { id: number; name: string; colour: string }[];
  /** The model's feature spec, written into the view's model.json (default: none). */
  readonly features?: unknown;
  readonly finishedAt?: string;
  /** Point CURRENT at it once written (default true). */
  readonly publish?: boolean;
  /** Also store per-pixel composites as a batch run does (batch/view-store.ts; default false). */
  readonly composite?: boolean;
}

async function sha256File(path: string): Promise<{ bytes: number; sha256: string }> {
  const b = await readFile(path);
  return { bytes: b.length, sha256: createHash("sha256").update(b).digest("hex") };
}

const micros = (iso: string): bigint => BigInt(Date.parse(iso)) * 1000n;

/**
 * Writes views/batch/vNNNNNN/ as the batch lane does: tables into view.duckdb (appender), the
 * summary as Parquet, model.json, then manifest.json last, in a staging folder renamed into place;
 * then (unless `publish: false`) swaps CURRENT. Returns the version's name.
 */
export async function writeBatchView(dataDir: string, spec: BatchViewSpec): Promise<string> {
  const paths = dataPaths(dataDir);
  const name = versionName(spec.version);
  const staging = join(paths.batchStaging, `${name}-${process.pid}-${Date.now()}`);
  await mkdir(staging, { recursive: true });
  const db = await DuckDbDatabase.open(join(staging, BATCH_VIEW_FILES.duckdb), { threads: 1 });
  const classes = spec.classes ?? TEST_CLASSES;
  const cells = new Map<string, TileResult>();
  try {
    for (const ddl of BATCH_VIEW_DDL) await db.run(ddl);
    const tiles = await db.appender("tiles");
    for (const { result: r } of spec.tiles) {
      tiles.appendVarchar(r.tileId);
      tiles.appendVarchar(r.cell);
      tiles.appendTimestamp(timestampValue(micros(r.acquired)));
      tiles.appendBigInt(BigInt(r.ingestSeq));
      tiles.appendVarchar(r.contentHash);
      tiles.appendVarchar(r.modelVersion);
      tiles.appendInteger(r.width);
      tiles.appendInteger(r.height);
      tiles.appendList(listValue([...r.geoTransform]), LIST(DOUBLE));
      if (r.epsg === null) tiles.appendNull();
      else tiles.appendInteger(r.epsg);
      if (r.proj4 === null) tiles.appendNull();
      else tiles.appendVarchar(r.proj4);
      const b = r.boundsWgs84;
      for (const v of b ? [b.minX, b.minY, b.maxX, b.maxY] : [null, null, null, null]) {
        if (v === null) tiles.appendNull();
        else tiles.appendDouble(v);
      }
      tiles.appendBigInt(BigInt(r.validPixels));
      tiles.appendList(listValue(r.counts.map((n) => BigInt(n))), LIST(BIGINT));
      tiles.appendList(listValue([...r.areasM2]), LIST(DOUBLE));
      tiles.appendInteger(r.dominantClass);
      tiles.appendDouble(r.meanConfidence);
      tiles.appendTimestamp(timestampValue(micros(r.processedAt)));
      tiles.appendBoolean(false);
      tiles.endRow();
    }
    tiles.flushSync();
    tiles.closeSync();
    const rasters = await db.appender("rasters");
    for (const { result, raster } of spec.tiles) {
      rasters.appendVarchar(result.tileId);
      rasters.appendUTinyInt(raster.k);
      rasters.appendBlob(encodeClassRaster(raster));
      rasters.endRow();
    }
    rasters.flushSync();
    rasters.closeSync();
    const byCell = new Map<string, TileResult[]>();
    for (const { result } of spec.tiles)
      byCell.set(result.cell, [...(byCell.get(result.cell) ?? []), result]);
    for (const [cell, list] of byCell) {
      const w = newestOf(list);
      if (w) cells.set(cell, w);
    }
    for (const [cell, r] of cells) await db.run(`INSERT INTO cells VALUES ($1, $2)`, [cell, r.tileId]);
    for (const c of classes)
      await db.run(`INSERT INTO classes VALUES ($1, $2, $3)`, [c.id, c.name, c.colour]);
    // The path is ours (a temporary folder), quoted; COPY cannot take it as a parameter.
    const parquet = join(staging, BATCH_VIEW_FILES.parquet).replaceAll("'", "''");
    await db.run(`COPY tiles TO '${parquet}' (FORMAT parquet)`);
  } finally {
    db.closeSync();
  }
  if (spec.composite) {
    const store = await StagingViewStore.open(join(staging, BATCH_VIEW_FILES.duckdb), { threads: 1 });
    await store.finalizeComposites(classes.map((c) => ({ ...c })));
    await store.closeCheckpointed();
  }
  const modelVersion = spec.modelVersion ?? "m1";
  await writeFile(
    join(staging, BATCH_VIEW_FILES.model),
    JSON.stringify({
      version: modelVersion,
      classes: classes.map((c) => ({ ...c })),
      ...(spec.features === undefined ? {} : { features: spec.features }),
    }) + "\n",
  );
  const files: Record<string, { bytes: number; sha256: string }> = {};
  for (const f of [BATCH_VIEW_FILES.duckdb, BATCH_VIEW_FILES.parquet, BATCH_VIEW_FILES.model])
    files[f] = await sha256File(join(staging, f));
  const finishedAt = spec.finishedAt ?? new Date().toISOString();
  const manifest: BatchManifest = {
    format: "lanemap.batch-view/1",
    version: spec.version,
    name,
    watermark: spec.watermark,
    modelVersion,
    startedAt: finishedAt,
    finishedAt,
    order: "natural",
    tiles: { total: spec.tiles.length, classified: spec.tiles.length, reused: 0, failed: 0 },
    cells: cells.size,
    failures: [],
    files,
  };
  await writeFile(join(staging, BATCH_VIEW_FILES.manifest), JSON.stringify(manifest, null, 2) + "\n");
  await mkdir(paths.batchViews, { recursive: true });
  await rename(staging, join(paths.batchViews, name));
  if (spec.publish ?? true) await setCurrentBatch(dataDir, name);
  return name;
}

/**
 * Writes batch view number `v` as the batch lane does, in `dataDir`'s views/batch/ (CURRENT
 * untouched): one 4×4 tile `t-v<v>` of class `v % 4`, watermark `v × 100`, model `m-v<v>`, so each
 * version is told apart by its content. Used by the published-views tests of both backends.
 */
export function writeNumberedVersion(dataDir: string, v: number): Promise<string> {
  return writeBatchView(dataDir, {
    version: v,
    watermark: v * 100,
    modelVersion: `m-v${v}`,
    publish: false,
    tiles: [
      lonLatTile(DEFAULT_GRID, {
        col: 0,
        row: 0,
        tileId: `t-v${v}`,
        lane: "batch",
        acquired: "2026-03-01T10:00:00Z",
        ingestSeq: v,
        raster: makeRaster(4, () => v % 4),
      }),
    ],
  });
}

/** Writes live results through LiveView (the speed lane's writer); returns their KV revisions. */
export async function putLive(view: LiveView, tiles: readonly TileFixture[]): Promise<number[]> {
  const out: number[] = [];
  for (const { result, raster } of tiles)
    out.push(
      await view.put({ result: { ...result, lane: "live" }, k: raster.k, raster: encodeClassRaster(raster) }),
    );
  return out;
}
