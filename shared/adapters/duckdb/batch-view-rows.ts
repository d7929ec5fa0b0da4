/**
 * The one mapping between a TileResult and a row of the batch view's `tiles` table
 * (shared/view/batch-schema.ts `BATCH_VIEW_DDL`), both ways: the batch writer appends
 * `tileRowValues`, serving and ops read with `TILE_ROW_SELECT` and `tileResultFromRow`. DuckDB's value
 * classes stay in this adapter; a caller sees TileResults and plain JS.
 */
import { blobValue, listValue, timestampValue, type DuckDBValue } from "@duckdb/node-api";
import { LanemapError } from "../../errors.js";
import {
  cellCompositeSchema,
  tileResultSchema,
  type CellComposite,
  type TileResult,
} from "../../view/types.js";

/** A TIMESTAMP value (microseconds since the epoch, UTC) from an ISO 8601 instant. */
function micros(iso: string): DuckDBValue {
  return timestampValue(BigInt(Date.parse(iso)) * 1000n);
}

/**
 * The values of one `tiles` row, in BATCH_VIEW_DDL's column order: times as TIMESTAMP (UTC,
 * millisecond precision), counts and sequences as BIGINT, `reused` = copied from a previous version.
 */
export function tileRowValues(r: TileResult, reused: boolean): DuckDBValue[] {
  const b = r.boundsWgs84;
  return [
    r.tileId,
    r.cell,
    micros(r.acquired),
    BigInt(r.ingestSeq),
    r.contentHash,
    r.modelVersion,
    r.width,
    r.height,
    listValue([...r.geoTransform]),
    r.epsg,
    r.proj4,
    b ? b.minX : null,
    b ? b.minY : null,
    b ? b.maxX : null,
    b ? b.maxY : null,
    BigInt(r.validPixels),
    listValue(r.counts.map((c) => BigInt(c))),
    listValue([...r.areasM2]),
    r.dominantClass,
    r.meanConfidence,
    micros(r.processedAt),
    reused,
  ];
}

/** The values of one `rasters` row: tile id, k, the deflated class raster (raster-codec.ts). */
export function rasterRowValues(tileId: string, k: number, raster: Uint8Array): DuckDBValue[] {
  return [tileId, k, blobValue(raster)];
}

/** The SELECT list that reads a `tiles` row for `tileResultFromRow` (times as epoch milliseconds). */
export const TILE_ROW_SELECT = `tile_id, cell, epoch_ms(acquired) AS acquired_ms, ingest_seq, content_hash,
  model_version, width, height, geo_transform, epsg, proj4, min_lon, min_lat, max_lon, max_lat, valid_pixels,
  counts, areas_m2, dominant_class, mean_confidence, epoch_ms(processed_at) AS processed_ms`;

/** A `tiles` row as `DuckDbDatabase.allJS` returns TILE_ROW_SELECT (BIGINTs may stay bigint). */
export interface TileRow {
  tile_id: string;
  cell: string;
  acquired_ms: bigint | number;
  ingest_seq: bigint | number;
  content_hash: string;
  model_version: string;
  width: number;
  height: number;
  geo_transform: number[];
  epsg: number | null;
  proj4: string | null;
  min_lon: number | null;
  min_lat: number | null;
  max_lon: number | null;
  max_lat: number | null;
  valid_pixels: bigint | number;
  counts: (bigint | number)[];
  areas_m2: number[];
  dominant_class: number;
  mean_confidence: number;
  processed_ms: bigint | number;
}

/**
 * The TileResult of a `tiles` row read with TILE_ROW_SELECT, checked against the view contract.
 * @throws LanemapError BATCH_VIEW when the row breaks the contract (naming the first bad field).
 */
export function tileResultFromRow(row: TileRow): TileResult {
  const bounds =
    row.min_lon === null || row.min_lat === null || row.max_lon === null || row.max_lat === null
      ? null
      : { minX: row.min_lon, minY: row.min_lat, maxX: row.max_lon, maxY: row.max_lat };
  const parsed = tileResultSchema.safeParse({
    lane: "batch",
    tileId: row.tile_id,
    cell: row.cell,
    acquired: new Date(Number(row.acquired_ms)).toISOString(),
    ingestSeq: Number(row.ingest_seq),
    contentHash: row.content_hash,
    modelVersion: row.model_version,
    width: row.width,
    height: row.height,
    geoTransform: row.geo_transform.map(Number),
    epsg: row.epsg,
    proj4: row.proj4,
    boundsWgs84: bounds,
    validPixels: Number(row.valid_pixels),
    counts: row.counts.map(Number),
    areasM2: row.areas_m2.map(Number),
    dominantClass: row.dominant_class,
    meanConfidence: row.mean_confidence,
    processedAt: new Date(Number(row.processed_ms)).toISOString(),
  });
  if (!parsed.success)
    throw new LanemapError(
      "BATCH_VIEW",
      `tile ${row.tile_id} breaks the view contract: ${parsed.error.issues[0]?.message ?? "invalid"} at ${parsed.error.issues[0]?.path.join(".") ?? "?"}`,
    );
  return parsed.data;
}

/**
 * The rows of one cell's composite: its `composites` row (summary + the deflated class raster and
 * source index) and one `composite_sources` row per source, newest first.
 */
export function compositeRowValues(
  c: CellComposite,
  raster: Uint8Array,
  source: Uint8Array,
): { composite: DuckDBValue[]; sources: DuckDBValue[][] } {
  return {
    composite: [
      c.cell,
      c.k,
      c.width,
      c.height,
      BigInt(c.validPixels),
      listValue(c.counts.map((n) => BigInt(n))),
      listValue([...c.areasM2]),
      blobValue(raster),
      blobValue(source),
      c.meanConfidence,
      c.geoTransform === null ? null : listValue([...c.geoTransform]),
      c.epsg,
      c.proj4,
    ],
    sources: c.sources.map((s, idx) => [c.cell, idx, s.tileId, BigInt(s.pixels)]),
  };
}

/**
 * The SELECT that reads every composite summary with its sources (no BLOBs), one row per cell. A
 * view written before `composites.mean_confidence` existed reads it as NULL (`meanConfidence`
 * false); one written before the grid columns (`grid` false) reads them as NULL.
 */
export function compositeRowSelect(has: {
  readonly meanConfidence: boolean;
  readonly grid: boolean;
}): string {
  const mean = has.meanConfidence ? "c.mean_confidence" : "CAST(NULL AS DOUBLE)";
  const grid = has.grid
    ? "c.geo_transform, c.epsg, c.proj4"
    : "CAST(NULL AS DOUBLE[]) AS geo_transform, CAST(NULL AS INTEGER) AS epsg, CAST(NULL AS VARCHAR) AS proj4";
  return `SELECT c.cell, c.k, c.width, c.height, c.valid_pixels, c.counts, c.areas_m2,
  ${mean} AS mean_confidence, ${grid},
  list(s.tile_id ORDER BY s.idx) AS tile_ids, list(s.pixels ORDER BY s.idx) AS pixels
  FROM composites c JOIN composite_sources s ON s.cell = c.cell
  GROUP BY ALL`;
}

/** A row of compositeRowSelect as `allJS` returns it. */
export interface CompositeRow {
  cell: string;
  k: number;
  width: number;
  height: number;
  valid_pixels: bigint | number;
  counts: (bigint | number)[];
  areas_m2: number[];
  mean_confidence: number | null;
  geo_transform: number[] | null;
  epsg: number | null;
  proj4: string | null;
  tile_ids: string[];
  pixels: (bigint | number)[];
}

/**
 * The CellComposite of a compositeRowSelect row, checked against the view contract.
 * @throws LanemapError BATCH_VIEW when the row breaks the contract.
 */
export function compositeFromRow(row: CompositeRow): CellComposite {
  const parsed = cellCompositeSchema.safeParse({
    cell: row.cell,
    k: Number(row.k),
    width: row.width,
    height: row.height,
    validPixels: Number(row.valid_pixels),
    counts: row.counts.map(Number),
    areasM2: row.areas_m2.map(Number),
    meanConfidence: row.mean_confidence === null ? null : Number(row.mean_confidence),
    geoTransform: row.geo_transform === null ? null : [...row.geo_transform].map(Number),
    epsg: row.epsg === null ? null : Number(row.epsg),
    proj4: row.proj4,
    sources: row.tile_ids.map((tileId, i) => ({ tileId, pixels: Number(row.pixels[i] ?? 0) })),
  });
  if (!parsed.success)
    throw new LanemapError(
      "BATCH_VIEW",
      `composite of cell ${row.cell} breaks the view contract: ${parsed.error.issues[0]?.message ?? "invalid"}`,
    );
  return parsed.data;
}
