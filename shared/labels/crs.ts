/**
 * The CRS of submitted label coordinates: the GeoJSON's legacy `crs` member read as `lanemap train`
 * reads it (`geoJsonCrs`), resolved through PROJ (so labels are reprojected by the engine that read
 * the tiles), WGS 84 when there is none (RFC 7946).
 */
import { LabelInvalidError, TrainingDataError } from "../errors.js";
import { geoJsonCrs } from "../classifier/training.js";
import { resolveEpsgCrs } from "../geotiff/crs-resolve.js";
import type { Crs } from "../raster/types.js";

/**
 * The CRS named by `input`'s `crs` member, resolved; null when it names none (WGS 84).
 * @throws LabelInvalidError (field `crs`) for a member lanemap cannot read or PROJ cannot use.
 */
export async function labelInputCrs(input: unknown): Promise<Crs | null> {
  let named: Crs | null;
  try {
    named = geoJsonCrs(input);
  } catch (err) {
    if (err instanceof TrainingDataError)
      throw new LabelInvalidError("crs", err.message.replace(/^the GeoJSON /, ""), { cause: err });
    throw err;
  }
  if (named === null || named.epsg === null || named.epsg === 4326) return named;
  try {
    return await resolveEpsgCrs(named.epsg, null);
  } catch (err) {
    throw new LabelInvalidError(
      "crs",
      `names EPSG:${named.epsg}, which PROJ cannot use: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}
