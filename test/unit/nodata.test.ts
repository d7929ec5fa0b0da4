import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { nodataAsCompared, type DType } from "../../shared/index.js";

// What GDAL 3.6 masks, as rasterio's read_masks reported it for each case (the same cases run against
// GDAL itself in test/integration/nodata-gdal.test.ts when GDAL is installed).
const CASES: [DType, number | null, number | null, string][] = [
  ["float32", -3.4e38, Math.fround(-3.4e38), "rasterio's float32 nodata is rounded to float32"],
  ["float32", 0.1, Math.fround(0.1), "0.1 as float32 (0.10000000149011612), as GDAL reports it"],
  ["float32", -3.40282346638529e38, -3.4028234663852886e38, "-FLT_MAX as text (15 digits) snaps onto it"],
  ["float32", 1e40, Infinity, "beyond float32 rounds to infinity: masks no finite value"],
  ["float64", 0.1, 0.1, "float64 compares the double itself"],
  ["uint8", 1.5, 1, "integer bands truncate toward zero"],
  ["int16", -2.7, -2, "negative fractions truncate toward zero"],
  ["uint8", 256, null, "above the type's range: no pixel is nodata"],
  ["uint16", -1, null, "below the type's range: no pixel is nodata"],
  ["int32", NaN, null, "NaN on an integer band masks nothing"],
  ["int8", -128, -128, "the range's ends are in range"],
  ["uint32", null, null, "no nodata"],
];

describe("nodata in the band's sample type", () => {
  for (const [dtype, nodata, expected, why] of CASES)
    test(`${dtype} nodata ${String(nodata)}: ${why}`, () => {
      assert.equal(nodataAsCompared(nodata, dtype), expected);
    });

  test("a float band's NaN nodata stays NaN (NaN samples are nodata)", () => {
    assert.ok(Number.isNaN(nodataAsCompared(NaN, "float32")));
    assert.ok(Number.isNaN(nodataAsCompared(NaN, "float64")));
  });

  test("a float32 sample written as float32(nodata) equals the compared value", () => {
    const band = Float32Array.of(-3.4e38, 0.1, 1);
    assert.equal(band[0], nodataAsCompared(-3.4e38, "float32"));
    assert.equal(band[1], nodataAsCompared(0.1, "float32"));
    assert.notEqual(band[1], 0.1, "the double 0.1 would match nothing");
  });
});
