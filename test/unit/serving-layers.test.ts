/**
 * The map layers' pure parts: the percentile stretch of source imagery (against a naive numpy-style
 * reference), GDAL's byte scaling, the RGBA image with nodata transparent, the confidence ramp and
 * palette PNG, the per-tile confidence figures and the band presets.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { decode as decodePng } from "fast-png";
import {
  YLORRD_9,
  confidenceColour,
  confidencePng,
  confidenceSummary,
} from "../../serving/render/confidence.js";
import { bandPercentiles, scaleToByte, stretchToRgba } from "../../serving/render/stretch.js";
import { resolveSourceBands, type SourceRenderRequest } from "../../serving/usecases/source-image.js";
import { InvalidParamsError } from "../../serving/errors.js";
import { createRandom } from "../../shared/internal.js";

/** numpy.percentile(values, p) with its default method "linear" (Hyndman & Fan type 7), naively. */
function numpyPercentile(values: readonly number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  const pos = (p / 100) * (s.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, s.length - 1);
  return (s[lo] as number) + ((s[hi] as number) - (s[lo] as number)) * (pos - lo);
}

const PCTS = [0, 2, 25, 50, 73.5, 98, 100];

describe("the percentile stretch of source imagery", () => {
  test("int16 percentiles (counted in a histogram) equal numpy's over the valid samples, nodata left out", () => {
    const rnd = createRandom(7);
    const band = new Int16Array(5000);
    for (let i = 0; i < band.length; i++) band[i] = Math.floor(rnd.next() * 4000) - 300;
    for (let i = 0; i < band.length; i += 7) band[i] = -9999;
    const valid = [...band].filter((v) => v !== -9999);
    const got = bandPercentiles(band, -9999, PCTS);
    assert.deepEqual(
      got,
      PCTS.map((p) => numpyPercentile(valid, p)),
    );
  });

  test("uint8, uint16 and int8 bands take the histogram path and agree with the reference", () => {
    const rnd = createRandom(3);
    for (const band of [new Uint8Array(999), new Uint16Array(999), new Int8Array(999)]) {
      const span = band instanceof Uint16Array ? 60000 : band instanceof Int8Array ? 255 : 256;
      const shift = band instanceof Int8Array ? -128 : 0;
      for (let i = 0; i < band.length; i++) band[i] = Math.floor(rnd.next() * span) + shift;
      assert.deepEqual(
        bandPercentiles(band, null, PCTS),
        PCTS.map((p) => numpyPercentile([...band], p)),
        band.constructor.name,
      );
    }
  });

  test("float32 percentiles skip NaN and infinite samples as well as nodata", () => {
    const band = new Float32Array([0.5, NaN, 0.25, Infinity, -1, 0.125, -3.4028234663852886e38, 2]);
    const valid = [0.5, 0.25, -1, 0.125, 2];
    assert.deepEqual(bandPercentiles(band, Math.fround(-3.4028234663852886e38), [2, 98]), [
      numpyPercentile(valid, 2),
      numpyPercentile(valid, 98),
    ]);
  });

  test("a band without a valid sample has no percentiles; a percent outside 0..100 is refused", () => {
    assert.equal(bandPercentiles(new Int16Array([5, 5, 5]), 5, [2, 98]), null);
    assert.throws(() => bandPercentiles(new Uint8Array([1]), null, [2, 101]), RangeError);
  });

  test("scaling to a byte is gdal_translate -scale's: linear, clamped, rounded, a flat range widened by 0.1", () => {
    const r = { min: 100, max: 355 };
    assert.equal(scaleToByte(100, r), 0);
    assert.equal(scaleToByte(355, r), 255);
    assert.equal(scaleToByte(50, r), 0);
    assert.equal(scaleToByte(1000, r), 255);
    assert.equal(scaleToByte(200.4, r), 100);
    assert.equal(scaleToByte(200.5, r), 101);
    assert.equal(scaleToByte(7, { min: 7, max: 7 }), 0);
    assert.equal(scaleToByte(8, { min: 7, max: 7 }), 255);
  });

  test("an RGBA image draws three bands as red, green, blue and clears a pixel that is nodata in any of them", () => {
    const range = { min: 0, max: 255 };
    const red = { samples: new Int16Array([10, 20, -9999, 40]), nodata: -9999, range };
    const green = { samples: new Int16Array([11, 21, 31, -9999]), nodata: -9999, range };
    const blue = { samples: new Int16Array([500, -5, 32, 42]), nodata: -9999, range };
    assert.deepEqual(
      [...stretchToRgba([red, green, blue])],
      [10, 11, 255, 255, 20, 21, 0, 255, 0, 0, 0, 0, 0, 0, 0, 0],
    );
  });

  test("one band is drawn as grey, each channel the same stretched value", () => {
    const grey = { samples: new Float32Array([0, 0.5, NaN]), nodata: null, range: { min: 0, max: 1 } };
    assert.deepEqual([...stretchToRgba([grey])], [0, 0, 0, 255, 128, 128, 128, 255, 0, 0, 0, 0]);
    assert.throws(() => stretchToRgba([grey, grey]), RangeError);
  });
});

describe("the confidence layer", () => {
  test("a unanimous pixel is YlOrRd's lightest colour and a pixel with no votes its darkest", () => {
    assert.deepEqual(confidenceColour(1), YLORRD_9[0]);
    assert.deepEqual(confidenceColour(0), YLORRD_9[8]);
    assert.deepEqual(confidenceColour(0.5), YLORRD_9[4]);
    assert.deepEqual(confidenceColour(7), YLORRD_9[0], "clamped");
  });

  test("the lower the vote share, the darker the colour (low values stand out)", () => {
    const luma = ([r, g, b]: readonly number[]) => 0.2126 * (r ?? 0) + 0.7152 * (g ?? 0) + 0.0722 * (b ?? 0);
    let previous = -1;
    for (let s = 0; s <= 1.0001; s += 0.05) {
      const l = luma(confidenceColour(s));
      assert.ok(l > previous, `share ${s.toFixed(2)} is lighter than the share below it`);
      previous = l;
    }
  });

  test("the PNG's palette holds not-classified transparent then one colour per vote count 0..k", () => {
    const raster = {
      width: 3,
      height: 2,
      k: 5,
      classes: new Uint8Array([0, 1, 2, 2, 1, 3]),
      votes: new Uint8Array([0, 5, 3, 1, 2, 9]),
    };
    const png = decodePng(confidencePng(raster));
    assert.equal(png.width, 3);
    assert.equal(png.height, 2);
    assert.deepEqual([...png.data], [0, 6, 4, 2, 3, 6], "index = votes + 1, votes over k drawn as k");
    const palette = png.palette as number[][];
    assert.equal(palette.length, 7);
    assert.equal(palette[0]?.[3], 0, "not classified is transparent");
    for (let v = 0; v <= 5; v++) assert.deepEqual(palette[v + 1], [...confidenceColour(v / 5), 255]);
  });

  test("k outside what a palette can hold is refused", () => {
    const one = { width: 1, height: 1, classes: new Uint8Array([1]), votes: new Uint8Array([1]) };
    assert.throws(() => confidencePng({ ...one, k: 0 }), RangeError);
    assert.throws(() => confidencePng({ ...one, k: 255 }), RangeError);
  });

  test("the summary gives the mean share and the share of classified pixels without a majority", () => {
    const s = confidenceSummary({
      width: 5,
      height: 1,
      k: 4,
      classes: new Uint8Array([0, 1, 1, 2, 2]),
      votes: new Uint8Array([0, 4, 2, 3, 1]),
    });
    assert.equal(s.classifiedPixels, 4);
    assert.equal(s.mean, (4 + 2 + 3 + 1) / 4 / 4);
    assert.equal(s.lowShare, 2 / 4, "2 of 4 votes is no majority");
    const none = confidenceSummary({
      width: 1,
      height: 1,
      k: 5,
      classes: new Uint8Array(1),
      votes: new Uint8Array(1),
    });
    assert.equal(none.mean, null);
    assert.equal(none.lowShare, null);
  });
});

describe("the bands a source image draws", () => {
  const req = (over: Partial<SourceRenderRequest>): SourceRenderRequest => ({
    bidx: null,
    preset: null,
    rescale: null,
    percentiles: [2, 98],
    ...over,
  });

  test("a Landsat-like tile of 4+ bands is 3,2,1 in true colour and 4,3,2 in false colour", () => {
    const landsat = (bands: number[]) => ({ bands, from: "landsat-order" });
    assert.deepEqual(resolveSourceBands(req({}), 8), landsat([3, 2, 1]));
    assert.deepEqual(resolveSourceBands(req({ preset: "false-colour" }), 6), landsat([4, 3, 2]));
  });

  test("three bands are red, green, blue; one or two are grey; false colour without band 4 names `preset`", () => {
    assert.deepEqual(resolveSourceBands(req({}), 3).bands, [1, 2, 3]);
    assert.deepEqual(resolveSourceBands(req({}), 1).bands, [1]);
    assert.throws(
      () => resolveSourceBands(req({ preset: "false-colour" }), 3),
      (e: unknown) => e instanceof InvalidParamsError && e.invalidParams[0]?.name === "preset",
    );
  });

  test("explicit bidx wins and a band the tile lacks names `bidx`", () => {
    const spec = { red: 4, nir: 5, green: null };
    assert.deepEqual(resolveSourceBands(req({ bidx: [5, 4, 2] }), 6, spec), {
      bands: [5, 4, 2],
      from: "bidx",
    });
    assert.throws(
      () => resolveSourceBands(req({ bidx: [7, 4, 2] }), 6),
      (e: unknown) => e instanceof InvalidParamsError && e.invalidParams[0]?.name === "bidx",
    );
  });

  test("a model's feature spec places the presets: a Landsat 8 stack (red 4, NIR 5) is 4,3,2 and 5,4,3", () => {
    const l8 = { red: 4, nir: 5, green: null };
    assert.deepEqual(resolveSourceBands(req({}), 7, l8), { bands: [4, 3, 2], from: "feature-spec" });
    assert.deepEqual(resolveSourceBands(req({ preset: "false-colour" }), 7, l8), {
      bands: [5, 4, 3],
      from: "feature-spec",
    });
    // A spec with its own green (NDWI) takes it, and blue is the band below it.
    const withGreen = { red: 5, nir: 6, green: 3 };
    assert.deepEqual(resolveSourceBands(req({}), 6, withGreen).bands, [5, 3, 2]);
    assert.deepEqual(resolveSourceBands(req({ preset: "false-colour" }), 6, withGreen).bands, [6, 5, 3]);
  });

  test("a spec that does not fit the tile (no band below red for blue, or past its bands) falls back", () => {
    assert.deepEqual(resolveSourceBands(req({}), 4, { red: 2, nir: 4, green: null }), {
      bands: [3, 2, 1],
      from: "landsat-order",
    });
    assert.equal(resolveSourceBands(req({}), 4, { red: 5, nir: 6, green: null }).from, "landsat-order");
  });
});
