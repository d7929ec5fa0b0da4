/**
 * GDAL PAM sidecars (`<file>.aux.xml`, "Persistent Auxiliary Metadata"): what GDAL, rasterio and QGIS
 * read beside a GeoTIFF and apply to its bands. A TIFF holds one nodata value for all bands, so GDAL
 * writes a band's own nodata (and scale/offset set on a read-only file) to the sidecar; ignoring it
 * gives a different valid-pixel mask from every GIS tool.
 *
 * Precedence, as GDAL 3.6's GTiff driver applies it (`GTiffDataset::LoadGeoreferencingAndPamIfNeeded`,
 * checked against rasterio in test/integration/nodata-gdal.test.ts): a band's PAM `<NoDataValue>` wins
 * over the TIFF's GDAL_NODATA tag; PAM `<Scale>`/`<Offset>` apply only where the TIFF's own
 * GDAL_METADATA gives none (here: where the file's scale is 1 and offset 0).
 *
 * A `Pam` is plain data so it can travel with a tile whose bytes travel without the sidecar: the
 * catalogue entry's `pam` (archive add, speed-lane registration) and the ingest message's
 * `Lanemap-Pam` header carry it, and every reader applies it with `applyPam` after decoding.
 */
import { XMLParser, XMLValidator } from "fast-xml-parser";
import { z } from "zod";
import { TileInvalidError } from "../errors.js";
import { nodataAsCompared } from "../raster/nodata.js";
import type { RasterInfo } from "../raster/types.js";
import { parseNodata } from "./metadata.js";

/** Largest sidecar read: GDAL's own hold a few kB (more with histograms); anything beyond is refused. */
export const MAX_PAM_BYTES = 1024 * 1024;

/** What a sidecar says about one band (1-based `band`, as in `<PAMRasterBand band="N">`). */
export const pamBandSchema = z.object({
  band: z.number().int().min(1),
  /** `<NoDataValue>` in GDAL's text ("nan", "-3.4e+38", ...): JSON has no NaN or infinity. */
  nodata: z.string().optional(),
  scale: z.number().optional(),
  offset: z.number().optional(),
});

/** The band-level values of a PAM sidecar that change pixel values or masks. */
export const pamSchema = z.object({ bands: z.array(pamBandSchema).max(65535) });
export type Pam = z.infer<typeof pamSchema>;

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: "@",
  parseTagValue: false,
  parseAttributeValue: false,
  isArray: (name) => name === "PAMRasterBand",
  processEntities: true,
});

function text(v: unknown): string | undefined {
  if (typeof v === "string") return v.trim();
  if (v !== null && typeof v === "object" && "#text" in v)
    return String((v as { "#text": unknown })["#text"]).trim();
  return undefined;
}

/** The exact double GDAL wrote as `le_hex_equiv` (16 hex digits, little-endian bytes), or undefined. */
function hexDouble(v: unknown): number | undefined {
  const hex =
    v !== null && typeof v === "object" ? (v as Record<string, unknown>)["@le_hex_equiv"] : undefined;
  if (typeof hex !== "string" || !/^[0-9a-fA-F]{16}$/.test(hex)) return undefined;
  const bytes = new Uint8Array(8);
  for (let i = 0; i < 8; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return new DataView(bytes.buffer).getFloat64(0, true);
}

function finite(v: unknown, what: string): number | undefined {
  const t = text(v);
  if (t === undefined || t === "") return undefined;
  const n = Number(t);
  if (!Number.isFinite(n))
    throw new TileInvalidError(`the .aux.xml sidecar's ${what} "${t}" is not a number`);
  return n;
}

/**
 * Parses a PAM sidecar's band values: per `<PAMRasterBand band="N">`, `<NoDataValue>` (its
 * `le_hex_equiv` when present, as GDAL reads it), `<Scale>` and `<Offset>`. Everything else (statistics,
 * histograms, metadata, the dataset's SRS) is left out: it changes no pixel value and no mask.
 * @throws TileInvalidError when the text is larger than MAX_PAM_BYTES, is not well-formed XML or not a
 *   `<PAMDataset>`, or a value is not a number.
 */
export function parsePam(xml: string): Pam {
  if (xml.length > MAX_PAM_BYTES)
    throw new TileInvalidError(`the .aux.xml sidecar is ${xml.length} bytes, over the ${MAX_PAM_BYTES} read`);
  const valid = XMLValidator.validate(xml);
  if (valid !== true)
    throw new TileInvalidError(
      `the .aux.xml sidecar is not well-formed XML: ${valid.err.msg} (line ${valid.err.line})`,
    );
  const doc = parser.parse(xml) as { PAMDataset?: unknown };
  const root = doc.PAMDataset;
  if (root === undefined) throw new TileInvalidError("the .aux.xml sidecar has no <PAMDataset> root");
  const bands: Pam["bands"][number][] = [];
  const list =
    root !== null && typeof root === "object"
      ? (root as { PAMRasterBand?: unknown[] }).PAMRasterBand
      : undefined;
  for (const b of list ?? []) {
    if (b === null || typeof b !== "object") continue;
    const rec = b as Record<string, unknown>;
    const n = Number(rec["@band"]);
    if (!Number.isInteger(n) || n < 1) continue;
    const exact = hexDouble(rec["NoDataValue"]);
    const nodataText = exact !== undefined ? String(exact) : text(rec["NoDataValue"]);
    const scale = finite(rec["Scale"], `band ${n} <Scale>`);
    const offset = finite(rec["Offset"], `band ${n} <Offset>`);
    if (nodataText !== undefined && parseNodata(nodataText) === null)
      throw new TileInvalidError(
        `the .aux.xml sidecar's band ${n} <NoDataValue> "${nodataText}" is not a number`,
      );
    if (nodataText === undefined && scale === undefined && offset === undefined) continue;
    bands.push({
      band: n,
      ...(nodataText !== undefined ? { nodata: nodataText } : {}),
      ...(scale !== undefined ? { scale } : {}),
      ...(offset !== undefined ? { offset } : {}),
    });
  }
  return { bands };
}

/**
 * A raster (or its header) with a PAM sidecar's band values applied with GDAL's precedence (see the
 * module header): per band, the sidecar's nodata (compared in the band's sample type) replaces the
 * file's; its scale/offset apply where the file has none. Bands the raster lacks are ignored.
 */
export function applyPam<T extends RasterInfo>(info: T, pam: Pam | null | undefined): T {
  if (!pam || pam.bands.length === 0) return info;
  const nodata = [...info.nodata];
  const scale = [...info.scale];
  const offset = [...info.offset];
  for (const b of pam.bands) {
    const i = b.band - 1;
    if (i >= info.bandCount) continue;
    if (b.nodata !== undefined) nodata[i] = nodataAsCompared(parseNodata(b.nodata), info.dtype);
    const fileHasNone = (scale[i] ?? 1) === 1 && (offset[i] ?? 0) === 0;
    if (fileHasNone) {
      if (b.scale !== undefined) scale[i] = b.scale;
      if (b.offset !== undefined) offset[i] = b.offset;
    }
  }
  return { ...info, nodata, scale, offset };
}
