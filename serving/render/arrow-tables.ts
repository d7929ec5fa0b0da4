/**
 * The Arrow forms of the tabular answers: the tiles listing (one row per cell, provenance
 * flattened into columns) and the statistics (one row per class). What is true of the whole answer
 * — the snapshot, the paging cursor, the area — travels as schema metadata.
 */
import { arrowColumn, encodeArrowStream } from "../../shared/adapters/arrow/index.js";
import type { StatsBody, StatsClassBody, TileListBody, TileSummaryBody } from "../api/schemas.js";

/** Columns of the tiles listing; names match the JSON item fields (provenance fields un-nested). */
export const TILE_COLUMNS = [
  arrowColumn("cell", "utf8", (t: TileSummaryBody) => t.cell),
  arrowColumn("tileId", "utf8", (t: TileSummaryBody) => t.tileId),
  arrowColumn("lane", "utf8", (t: TileSummaryBody) => t.lane),
  arrowColumn("acquired", "timestamp-ms", (t: TileSummaryBody) => t.acquired),
  arrowColumn("ingestSeq", "int64", (t: TileSummaryBody) => t.ingestSeq),
  arrowColumn("processedAt", "timestamp-ms", (t: TileSummaryBody) => t.processedAt),
  arrowColumn("modelVersion", "utf8", (t: TileSummaryBody) => t.modelVersion),
  arrowColumn("contentHash", "utf8", (t: TileSummaryBody) => t.contentHash),
  arrowColumn("width", "int32", (t: TileSummaryBody) => t.width),
  arrowColumn("height", "int32", (t: TileSummaryBody) => t.height),
  arrowColumn("epsg", "int32", (t: TileSummaryBody) => t.epsg),
  arrowColumn("minLon", "float64", (t: TileSummaryBody) => t.bbox?.[0] ?? null),
  arrowColumn("minLat", "float64", (t: TileSummaryBody) => t.bbox?.[1] ?? null),
  arrowColumn("maxLon", "float64", (t: TileSummaryBody) => t.bbox?.[2] ?? null),
  arrowColumn("maxLat", "float64", (t: TileSummaryBody) => t.bbox?.[3] ?? null),
  arrowColumn("validPixels", "int64", (t: TileSummaryBody) => t.validPixels),
  arrowColumn("counts", "int64-list", (t: TileSummaryBody) => t.counts),
  arrowColumn("areasM2", "float64-list", (t: TileSummaryBody) => t.areasM2),
  arrowColumn("dominantClass", "int32", (t: TileSummaryBody) => t.dominantClass),
  arrowColumn("dominantClassName", "utf8", (t: TileSummaryBody) => t.dominantClassName),
  arrowColumn("meanConfidence", "float64", (t: TileSummaryBody) => t.meanConfidence),
  arrowColumn("batchVersion", "int32", (t: TileSummaryBody) => t.provenance.batchVersion),
  arrowColumn("watermark", "int64", (t: TileSummaryBody) => t.provenance.watermark),
  arrowColumn("livePosition", "int64", (t: TileSummaryBody) => t.provenance.livePosition),
  arrowColumn("sinceAcquiredS", "float64", (t: TileSummaryBody) => t.provenance.staleness.sinceAcquiredS),
  arrowColumn("viewAgeS", "float64", (t: TileSummaryBody) => t.provenance.staleness.viewAgeS),
];

/** Columns of the statistics, one row per class. */
export const STATS_COLUMNS = [
  arrowColumn("id", "int32", (c: StatsClassBody) => c.id),
  arrowColumn("name", "utf8", (c: StatsClassBody) => c.name),
  arrowColumn("colour", "utf8", (c: StatsClassBody) => c.colour),
  arrowColumn("pixels", "int64", (c: StatsClassBody) => c.pixels),
  arrowColumn("areaM2", "float64", (c: StatsClassBody) => c.areaM2),
];

/** The tiles listing as an Arrow IPC stream. */
export function tilesArrow(body: TileListBody): Uint8Array {
  return encodeArrowStream(body.items, TILE_COLUMNS, {
    "lanemap:snapshot": JSON.stringify(body.snapshot),
    "lanemap:cursor": body.cursor ?? "",
    "lanemap:next": body.next ?? "",
  });
}

/** The statistics as an Arrow IPC stream. */
export function statsArrow(body: StatsBody): Uint8Array {
  return encodeArrowStream(body.classes, STATS_COLUMNS, {
    "lanemap:snapshot": JSON.stringify(body.snapshot),
    "lanemap:area": JSON.stringify(body.area),
    "lanemap:cells": JSON.stringify(body.cells),
    "lanemap:pixels": String(body.pixels),
    "lanemap:provenance": JSON.stringify(body.provenance),
  });
}
