/**
 * Nodata as GDAL compares it. A nodata value is text in the file (GDAL_NODATA, or a PAM sidecar) and a
 * double in GDAL's API, but GDAL's mask (`GDALNoDataMaskBand`, gcore/gdalnodatamaskband.cpp) compares
 * each pixel in the band's own sample type: the double is first checked against the type's range (out
 * of range: the band has no nodata pixel at all), then cast — truncated toward zero for integer types,
 * rounded to the nearest float32 for Float32 (after `GDALAdjustNoDataCloseToFloatMax`). Comparing the
 * raw double instead makes a float32 nodata of -3.4e38 (what rasterio writes) or 0.1 mask nothing.
 */
import type { DType } from "./types.js";

const FLOAT32_MAX = 3.4028234663852886e38;

const INTEGER_RANGE: Readonly<Record<Exclude<DType, "float32" | "float64">, readonly [number, number]>> = {
  uint8: [0, 255],
  int8: [-128, 127],
  uint16: [0, 65535],
  int16: [-32768, 32767],
  uint32: [0, 4294967295],
  int32: [-2147483648, 2147483647],
};

/**
 * The value a band's samples are compared with to find its nodata pixels, given the nodata as written
 * (a double) and the band's sample type; null when the band has no nodata pixel whatever its samples.
 * NaN stays NaN for float bands ("NaN samples are nodata"); an integer band's NaN masks nothing.
 * Source: GDAL 3.6 `GDALNoDataMaskBand::IsNoDataInRange` and `IRead` (checked against rasterio's
 * `read_masks` in test/integration/nodata-gdal.test.ts).
 */
export function nodataAsCompared(nodata: number | null, dtype: DType): number | null {
  if (nodata === null) return null;
  if (dtype === "float64") return nodata;
  if (dtype === "float32") {
    if (Number.isNaN(nodata)) return NaN;
    // GDAL snaps values within 1e-10 relative of ±FLT_MAX onto it: text like "-3.40282e+38" then masks.
    if (Math.abs(nodata - FLOAT32_MAX) < 1e-10 * FLOAT32_MAX) return FLOAT32_MAX;
    if (Math.abs(nodata + FLOAT32_MAX) < 1e-10 * FLOAT32_MAX) return -FLOAT32_MAX;
    return Math.fround(nodata);
  }
  const [min, max] = INTEGER_RANGE[dtype];
  if (!(nodata >= min && nodata <= max)) return null;
  return Math.trunc(nodata) + 0; // + 0: -0.5 truncates to -0, which must print as 0
}
