import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import type { Command } from "commander";
import {
  CrsError,
  acquiredFromFileName,
  readCrsWithProj,
  readGeoTiffInfo,
  readSidecar,
  resolveCrs,
  toWgs84,
  type DType,
  type GdalCrsReading,
  type RasterInfo,
  type ResolvedCrs,
} from "../../../shared/index.js";
import { parseDateTime } from "../../../shared/internal.js";
import { UsageError } from "../usage.js";
import { commandSummary } from "./index.js";

interface InfoFlags {
  json?: boolean;
}

/** GDAL's data type names (`gdalinfo -json` bands[].type). */
const GDAL_TYPE: Readonly<Record<DType, string>> = {
  uint8: "Byte",
  int8: "Int8",
  uint16: "UInt16",
  int16: "Int16",
  uint32: "UInt32",
  int32: "Int32",
  float32: "Float32",
  float64: "Float64",
};

/** A number as JSON, with GDAL's spelling of the non-finite ones. */
function gdalNumber(v: number): number | string {
  if (Number.isNaN(v)) return "nan";
  if (v === Infinity) return "inf";
  if (v === -Infinity) return "-inf";
  return v;
}

/** Where the acquisition time comes from, in describeTile's order (ingest flags aside). */
async function acquisition(
  path: string,
  info: RasterInfo,
): Promise<{ time: string | null; source: "sidecar" | "tiff" | "filename" | null }> {
  const sidecar = await readSidecar(path);
  const fromSidecar = typeof sidecar?.acquired === "string" ? parseDateTime(sidecar.acquired) : null;
  if (fromSidecar !== null) return { time: fromSidecar, source: "sidecar" };
  if (info.acquired !== null) return { time: info.acquired, source: "tiff" };
  const fromName = acquiredFromFileName(basename(path));
  if (fromName !== null) return { time: fromName, source: "filename" };
  return { time: null, source: null };
}

type Point = [number, number];

/** What `lanemap info` prints: gdalinfo -json's field names where one exists. */
export async function tileInfo(path: string): Promise<Record<string, unknown>> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(path));
  } catch (err) {
    throw new UsageError(`cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  // The GeoKeys as parsed, then PROJ's reading of them (the same resolver every loader uses).
  const info = await readGeoTiffInfo(bytes, { crs: "keys" });
  let resolved: ResolvedCrs | null = null;
  let refused: { reading: GdalCrsReading | null; reason: string } | null = null;
  if (info.geoTags) {
    try {
      resolved = await resolveCrs(info.geoTags, info.bounds);
    } catch (err) {
      if (!(err instanceof CrsError)) throw err;
      // Shown, not thrown: `info` is where a user sees why lanemap refuses a tile's CRS.
      refused = { reading: await readCrsWithProj(info.geoTags).catch(() => null), reason: err.message };
    }
  }
  const gt = info.geoTransform;
  const at = (col: number, row: number): Point | null =>
    gt === null ? null : [gt[0] + col * gt[1] + row * gt[2], gt[3] + col * gt[4] + row * gt[5]];
  const corners = {
    upperLeft: at(0, 0),
    lowerLeft: at(0, info.height),
    lowerRight: at(info.width, info.height),
    upperRight: at(info.width, 0),
    center: at(info.width / 2, info.height / 2),
  };
  let wgs84Extent: unknown = null;
  if (resolved !== null && gt !== null) {
    const crs = resolved.crs;
    const ring = [corners.upperLeft, corners.lowerLeft, corners.lowerRight, corners.upperRight].map((p) =>
      toWgs84(crs, (p as Point)[0], (p as Point)[1]),
    );
    wgs84Extent = { type: "Polygon", coordinates: [[...ring, ring[0]]] };
  }
  return {
    description: path,
    driverShortName: "GTiff",
    size: [info.width, info.height],
    coordinateSystem:
      resolved !== null
        ? {
            wkt: resolved.reading.wkt,
            projjson: resolved.reading.projjson,
            epsg: resolved.reading.epsg,
            name: resolved.reading.name,
            proj4: resolved.crs.proj4,
            // Worst distance between proj4js (lanemap's hot paths) and PROJ at the tile's check points.
            proj4AgreementM: resolved.proj4AgreementM,
            warnings: resolved.reading.warnings,
          }
        : refused !== null
          ? {
              wkt: refused.reading?.wkt ?? null,
              projjson: refused.reading?.projjson ?? null,
              epsg: refused.reading?.epsg ?? null,
              name: refused.reading?.name ?? null,
              proj4: null,
              refused: refused.reason,
            }
          : null,
    geoTransform: gt === null ? null : [...gt],
    cornerCoordinates: gt === null ? null : corners,
    wgs84Extent,
    bounds: info.bounds,
    boundsWgs84: resolved?.boundsWgs84 ?? null,
    bands: Array.from({ length: info.bandCount }, (_, b) => {
      const nodata = info.nodata[b] ?? null;
      return {
        band: b + 1,
        type: GDAL_TYPE[info.dtype],
        // As lanemap compares it with the band's samples.
        noDataValue: nodata === null ? null : gdalNumber(nodata),
        scale: info.scale[b] ?? 1,
        offset: info.offset[b] ?? 0,
      };
    }),
    acquired: await acquisition(path, info),
    compression: info.compression,
    tiled: info.tiled,
  };
}

function text(r: Record<string, unknown>): string {
  const lines: string[] = [];
  const size = r["size"] as number[];
  lines.push(
    `${r["description"]}: ${size[0]} x ${size[1]} px, ${r["compression"]}, ${r["tiled"] ? "tiled" : "stripped"}`,
  );
  const cs = r["coordinateSystem"] as {
    epsg: number | null;
    name: string | null;
    proj4: string | null;
    refused?: string;
    warnings?: string[];
  } | null;
  lines.push(
    cs === null
      ? "CRS: none"
      : `CRS: ${cs.epsg !== null ? `EPSG:${cs.epsg} ` : ""}${cs.name ?? "(unnamed)"}\n  proj4: ${cs.proj4 ?? "none"}` +
          (cs.refused !== undefined ? `\n  refused: ${cs.refused}` : "") +
          (cs.warnings ?? []).map((w) => `\n  GDAL: ${w}`).join(""),
  );
  if (r["geoTransform"] !== null) lines.push(`geotransform: ${(r["geoTransform"] as number[]).join(", ")}`);
  const corners = r["cornerCoordinates"] as Record<string, Point> | null;
  const ext = r["wgs84Extent"] as { coordinates: Point[][] } | null;
  if (corners !== null) {
    const names = ["upperLeft", "lowerLeft", "lowerRight", "upperRight"];
    names.forEach((n, i) => {
      const ll = ext?.coordinates[0]?.[i];
      const p = corners[n] as Point;
      lines.push(
        `  ${n.padEnd(10)} (${p[0]}, ${p[1]})${ll ? ` -> lon ${ll[0].toFixed(7)}, lat ${ll[1].toFixed(7)}` : ""}`,
      );
    });
  }
  for (const b of r["bands"] as {
    band: number;
    type: string;
    noDataValue: unknown;
    scale: number;
    offset: number;
  }[])
    lines.push(
      `band ${b.band}: ${b.type}, nodata ${b.noDataValue === null ? "none" : String(b.noDataValue)}, scale ${b.scale}, offset ${b.offset}`,
    );
  const acq = r["acquired"] as { time: string | null; source: string | null };
  lines.push(`acquired: ${acq.time ?? "unknown"}${acq.source ? ` (from ${acq.source})` : ""}`);
  return lines.join("\n");
}

/** `lanemap info`: what lanemap reads from a tile, to compare with `gdalinfo`. */
export function registerInfo(program: Command): void {
  program
    .command("info")
    .description(commandSummary("info"))
    .argument("<tile>", "GeoTIFF file")
    .option("--json", "print JSON")
    .action(async (tile: string, flags: InfoFlags) => {
      const r = await tileInfo(tile);
      console.log(flags.json ? JSON.stringify(r, null, 2) : text(r));
    });
}
