/**
 * Turning raw tile bytes into a catalogue entry: read the header (no pixels), check the tile is
 * usable (georeferenced, within the pixel budget), hash it, and settle its tile id, map cell and
 * acquisition time. Both lanes register tiles through here, so a tile gets the same entry whether
 * it arrives by bulk load or by stream.
 *
 * Acquisition time, first found wins:
 *   1. the ingest message's Lanemap-Acquired header (speed lane) or an explicit flag;
 *   2. a sidecar JSON next to the file (`<file>.json` or `<stem>.json`) with `acquired`;
 *   3. the TIFF DateTime tag or GDAL metadata (ACQUISITIONDATETIME / DATETIME);
 *   4. the file name: `YYYY-MM-DD[THH:MM:SS]`, `YYYYMMDD[THHMMSS]`, or a Landsat scene id
 *      (`LE70220491999322...`: year 1999, day of year 322).
 * Map cell: header/flag, sidecar `cell`, else the file name's stem (which is the cell key for
 * generated archives). Tile id: header/flag, sidecar `tileId`, else `<cell>-<yyyymmddThhmmssZ>`.
 */
import { boxCentre } from "../lonlat/index.js";
import { PixelBudgetError, TileInvalidError } from "../errors.js";
import { DEFAULT_MAX_PIXELS, type Pam, readGeoTiffInfo } from "../geotiff/index.js";
import { isValidCellKey } from "../grid.js";
import { hilbertIndexOfPoint } from "../hilbert/curve.js";
import { contentHash } from "../adapters/archive/index.js";
import { TILE_ID_PATTERN, type CatalogueEntry } from "../view/types.js";

/** What the caller knows about a tile besides its bytes. */
export interface TileMeta {
  readonly tileId?: string | undefined;
  readonly cell?: string | undefined;
  readonly acquired?: string | undefined;
  /** JetStream stream sequence of the ingest message; 0 for bulk loads. */
  readonly ingestSeq: number;
  readonly source: "bulk" | "stream";
  /** The file name (not a path is needed) the tile came from, for name-based fallbacks. */
  readonly fileName?: string | undefined;
  /** Parsed sidecar JSON, if one was found. */
  readonly sidecar?: { acquired?: unknown; cell?: unknown; tileId?: unknown } | undefined;
  /** The file's GDAL PAM sidecar (`.aux.xml`) band values, recorded in the entry. */
  readonly pam?: Pam | undefined;
}

export interface DescribeOptions {
  readonly maxPixels?: number;
  /**
   * Refuse an acquisition time more than `FUTURE_ACQUISITION_TOLERANCE_MS` after `now` (the speed
   * lane and `lanemap ingest` set it: live tiles cannot come from the future). Default false.
   */
  readonly refuseFutureAcquisition?: boolean;
  /** The present, for that check (default: the system clock). */
  readonly now?: Date;
}

/**
 * How far in the future an acquisition time may lie before a tile is refused: clock skew between the
 * producer and this host. A scene cannot be acquired later than now; a future time makes the tile
 * beat every real newer scene of its cell in the merge rule (issue 13: ageDays -0.004).
 */
export const FUTURE_ACQUISITION_TOLERANCE_MS = 5 * 60 * 1000;

/**
 * Null when `acquired` is not more than `FUTURE_ACQUISITION_TOLERANCE_MS` after `now`, else the
 * reason it is refused (one line, for a usage error, a dead-letter header or a bad-tile record).
 */
export function futureAcquisition(acquired: string, now: Date = new Date()): string | null {
  const ahead = Date.parse(acquired) - now.getTime();
  if (!(ahead > FUTURE_ACQUISITION_TOLERANCE_MS)) return null;
  const minutes = ahead / 60_000;
  const span = minutes < 120 ? `${minutes.toFixed(1)} min` : `${(minutes / 1440).toFixed(2)} days`;
  return (
    `acquisition time ${acquired} is ${span} in the future (now ${iso(now.getTime())}); ` +
    `at most ${FUTURE_ACQUISITION_TOLERANCE_MS / 60_000} min of clock skew is allowed`
  );
}

const WORLD = { minX: -180, minY: -90, maxX: 180, maxY: 90 };

function iso(t: number): string {
  return new Date(t).toISOString().replace(".000Z", "Z");
}

/** Parses an acquisition time out of a file name, or returns null. */
export function acquiredFromFileName(name: string): string | null {
  const landsat = /L[A-Z]\d\d{3}\d{3}(\d{4})(\d{3})/.exec(name);
  if (landsat) {
    const year = Number(landsat[1]);
    const doy = Number(landsat[2]);
    if (year >= 1972 && doy >= 1 && doy <= 366) return iso(Date.UTC(year, 0, doy));
  }
  const m = /(\d{4})-?(\d{2})-?(\d{2})(?:[T_-]?(\d{2}):?(\d{2}):?(\d{2}))?/.exec(name);
  if (m) {
    const [y, mo, d, h, mi, s] = m.slice(1).map((v) => (v === undefined ? 0 : Number(v)));
    if (
      y! >= 1970 &&
      y! < 2200 &&
      mo! >= 1 &&
      mo! <= 12 &&
      d! >= 1 &&
      d! <= 31 &&
      h! < 24 &&
      mi! < 60 &&
      s! < 61
    ) {
      const t = Date.UTC(y!, mo! - 1, d!, h, mi, s);
      if (!Number.isNaN(t)) return iso(t);
    }
  }
  return null;
}

function normaliseTime(value: unknown, what: string): string {
  if (typeof value !== "string" || Number.isNaN(Date.parse(value)))
    throw new TileInvalidError(`${what} is not an ISO 8601 time: ${JSON.stringify(value)}`);
  return iso(Date.parse(value));
}

function stem(fileName: string | undefined): string | undefined {
  if (!fileName) return undefined;
  const base = fileName.split(/[\\/]/).pop() ?? fileName;
  return base.replace(/\.(tiff?|gtiff?)$/i, "");
}

/**
 * Reads a tile's header and returns its catalogue entry. Throws TileDecodeError (not a readable
 * GeoTIFF), PixelBudgetError (too large) or TileInvalidError (not georeferenced, no acquisition
 * time, bad id or cell).
 * @throws TileDecodeError when the bytes are not a readable GeoTIFF.
 * @throws PixelBudgetError when the image is over the pixel budget.
 * @throws TileInvalidError when it is not georeferenced, has no acquisition time (or one more than
 *   `FUTURE_ACQUISITION_TOLERANCE_MS` in the future), or a bad id or cell.
 */
export async function describeTile(
  bytes: Uint8Array,
  meta: TileMeta,
  options: DescribeOptions = {},
): Promise<CatalogueEntry> {
  const info = await readGeoTiffInfo(bytes);
  const pixels = info.width * info.height;
  const budget = options.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (pixels > budget) throw new PixelBudgetError(pixels, budget);
  if (!info.geoTransform || !info.bounds)
    throw new TileInvalidError("tile has no georeferencing (no geotransform)");
  if (!info.crs || (info.crs.epsg === null && info.crs.proj4 === null))
    throw new TileInvalidError("tile has no coordinate reference system");

  let acquired: string;
  let acquiredFrom: CatalogueEntry["acquiredFrom"];
  const fromName = meta.fileName ? acquiredFromFileName(meta.fileName) : null;
  if (meta.acquired !== undefined) {
    acquired = normaliseTime(meta.acquired, "acquisition time");
    acquiredFrom = "header";
  } else if (meta.sidecar?.acquired !== undefined) {
    acquired = normaliseTime(meta.sidecar.acquired, "sidecar acquired");
    acquiredFrom = "sidecar";
  } else if (info.acquired) {
    acquired = normaliseTime(info.acquired, "TIFF DateTime");
    acquiredFrom = "tiff";
  } else if (fromName) {
    acquired = fromName;
    acquiredFrom = "filename";
  } else {
    throw new TileInvalidError(
      "no acquisition time: give one with --acquired (lanemap archive add, lanemap ingest), a sidecar <file>.json with `acquired`, a TIFF DateTime tag, or a date in the file name",
    );
  }
  const future = options.refuseFutureAcquisition === true ? futureAcquisition(acquired, options.now) : null;
  if (future !== null) throw new TileInvalidError(future);

  const sidecarCell = typeof meta.sidecar?.cell === "string" ? meta.sidecar.cell : undefined;
  const cell = meta.cell ?? sidecarCell ?? stem(meta.fileName);
  if (!cell)
    throw new TileInvalidError("no map cell: give one (ingest header or --cell) or a sidecar `cell`");
  if (!isValidCellKey(cell)) throw new TileInvalidError(`cell "${cell}" must match [A-Za-z0-9_-]{1,64}`);

  const sidecarId = typeof meta.sidecar?.tileId === "string" ? meta.sidecar.tileId : undefined;
  const tileId = meta.tileId ?? sidecarId ?? `${cell}-${acquired.replace(/[-:]/g, "").replace(/\.\d+/, "")}`;
  if (!TILE_ID_PATTERN.test(tileId))
    throw new TileInvalidError(`tile id "${tileId}" must match ${TILE_ID_PATTERN.source}`);

  const w = info.boundsWgs84;
  const hilbert = w ? hilbertIndexOfPoint(WORLD, ...boxCentre(w)) : null;
  return {
    tileId,
    cell,
    acquired,
    ingestSeq: meta.ingestSeq,
    contentHash: contentHash(bytes),
    bytes: bytes.length,
    width: info.width,
    height: info.height,
    bandCount: info.bandCount,
    dtype: info.dtype,
    epsg: info.crs.epsg,
    proj4: info.crs.proj4,
    geoTransform: [...info.geoTransform],
    bounds: info.bounds,
    boundsWgs84: info.boundsWgs84,
    hilbert,
    acquiredFrom,
    source: meta.source,
    registeredAt: new Date().toISOString(),
    ...(meta.pam && meta.pam.bands.length > 0 ? { pam: meta.pam } : {}),
  };
}
