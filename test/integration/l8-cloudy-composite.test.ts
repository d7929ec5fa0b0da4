/**
 * Real data: ../shared/data/l8-cloudy, two bands (B4 red, B5 NIR, uint16 DN) of Landsat 8 scene
 * LC80200392015216LGN00, CLOUD_COVER 11.08 in its MTL. The subset has no QA band (the MTL names
 * LC80200392015216LGN00_BQA.TIF, which is not included), so a QA_PIXEL-style band is derived by a
 * threshold and says so: TOA reflectance (MTL REFLECTANCE_MULT/ADD, divided by the sine of
 * SUN_ELEVATION; USGS Landsat 8 Data Users Handbook §5.1) above 0.12 in both red and NIR flags
 * "cloud" (bit 3), and the 1-pixel ring around a cloud "dilated cloud" (bit 1). That band then goes
 * through the model's quality mask and the per-pixel rule exactly as a real QA_PIXEL band would.
 *
 * There is no second acquisition of this footprint in ../shared, so the "after" panel shows the
 * composite's source index: the fresh scene's classes where it is valid and, in grey, every pixel
 * the rule takes from the older acquisition below it. Classes here are NDVI bands (water < 0,
 * sparse 0..0.3, vegetation >= 0.3), enough to show where clouds would have been classified.
 * Writes test/results/composite/l8-cloudy-before-after.png.
 */
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { encode as encodePng } from "fast-png";
import {
  LANDSAT_DEFAULT_MASK,
  NO_SOURCE,
  compositePixels,
  computeFeatures,
  createFeatureSpec,
  decodeGeoTiff,
  type Raster,
} from "../../shared/internal.js";
import { missing, projectRoot, sharedData } from "../helpers/env.js";

const CLOUD = 1 << 3;
const DILATED = 1 << 1;
const CLEAR = 1 << 6;
/**
 * TOA reflectance above which a pixel is "bright in red and NIR" = cloud. The subset's red TOA has
 * median 0.063 and 99th percentile 0.19; 0.12 flags 9.4 % of it, near the MTL's 11 % CLOUD_COVER.
 */
const THRESHOLD = 0.12;

function mtlValue(mtl: string, key: string): number {
  const m = new RegExp(`^\\s*${key} = (\\S+)`, "m").exec(mtl);
  if (!m) throw new Error(`${key} is not in the MTL`);
  return Number(m[1]);
}

const COLOURS: readonly [number, number, number][] = [
  [0, 0, 0], // not classified
  [40, 90, 200], // water
  [200, 170, 110], // sparse
  [40, 150, 60], // vegetation
  [150, 150, 150], // from the older acquisition
];

describe(
  "per-pixel compositing on a real cloudy Landsat 8 scene",
  { skip: missing({ shared: true }) },
  () => {
    test("a QA-style mask derived from the scene's TOA reflectance flags its clouds, and the composite takes exactly those pixels from the older acquisition", async () => {
      const dir = sharedData("l8-cloudy")!;
      const mtl = readFileSync(join(dir, "l8_MTL.txt"), "utf8");
      const red = await decodeGeoTiff(new Uint8Array(readFileSync(join(dir, "l8_B4.tif"))));
      const nir = await decodeGeoTiff(new Uint8Array(readFileSync(join(dir, "l8_B5.tif"))));
      const { width, height } = red;
      const n = width * height;
      const sinSun = Math.sin((mtlValue(mtl, "SUN_ELEVATION") * Math.PI) / 180);
      const toa = (band: number, dn: number) =>
        (dn * mtlValue(mtl, `REFLECTANCE_MULT_BAND_${band}`) +
          mtlValue(mtl, `REFLECTANCE_ADD_BAND_${band}`)) /
        sinSun;
      const r4 = red.bands[0]!;
      const r5 = nir.bands[0]!;

      // The derived QA band: cloud, then a 1-pixel dilation ring, else clear.
      const cloud = new Uint8Array(n);
      for (let i = 0; i < n; i++)
        cloud[i] = toa(4, r4[i] as number) > THRESHOLD && toa(5, r5[i] as number) > THRESHOLD ? 1 : 0;
      const qa = new Uint16Array(n);
      for (let y = 0; y < height; y++)
        for (let x = 0; x < width; x++) {
          const i = y * width + x;
          if (cloud[i]) {
            qa[i] = CLOUD;
            continue;
          }
          let near = false;
          for (let dy = -1; dy <= 1 && !near; dy++)
            for (let dx = -1; dx <= 1; dx++) {
              const xx = x + dx;
              const yy = y + dy;
              if (xx >= 0 && yy >= 0 && xx < width && yy < height && cloud[yy * width + xx]) near = true;
            }
          qa[i] = near ? DILATED : CLEAR;
        }

      const raster: Raster = {
        ...red,
        bandCount: 3,
        bands: [r4, r5, qa],
        nodata: [0, 0, null],
        scale: [1, 1, 1],
        offset: [0, 0, 0],
      };
      const masked = computeFeatures(
        raster,
        createFeatureSpec(3, {
          red: 1,
          nir: 2,
          quality: { band: 3, kind: "landsat-c2-qa-pixel", mask: [...LANDSAT_DEFAULT_MASK] },
        }),
      );
      const unmasked = computeFeatures(raster, createFeatureSpec(3, { red: 1, nir: 2 }));
      // Without a quality band the QA values would be a feature: read the same spec without it.
      const classOf = (f: typeof masked, i: number) => {
        if (f.valid[i] !== 1) return 0;
        const ndvi = f.data[i * f.dim + (f.dim - 1)] as number;
        return ndvi < 0 ? 1 : ndvi < 0.3 ? 2 : 3;
      };
      const before = Uint8Array.from({ length: n }, (_, i) => classOf(unmasked, i));
      const fresh = Uint8Array.from({ length: n }, (_, i) => classOf(masked, i));
      const older = new Uint8Array(n).fill(4);
      const votes = new Uint8Array(n).fill(1);
      const c = compositePixels(
        [
          { classes: fresh, votes },
          { classes: older, votes },
        ],
        n,
      );

      const cloudShare = cloud.reduce((a, b) => a + b, 0) / n;
      const maskedShare = masked.maskedCount / n;
      // The scene's own estimate is 11 % (CLOUD_COVER); a subset may have more or less, not none or all.
      assert.ok(cloudShare > 0.01 && cloudShare < 0.6, `cloud share ${cloudShare}`);
      assert.ok(maskedShare >= cloudShare, "the dilation ring only adds to the mask");
      let fromOlder = 0;
      let wrong = 0;
      for (let i = 0; i < n; i++) {
        if (c.source[i] === NO_SOURCE || (masked.valid[i] === 1) !== (c.source[i] === 0)) wrong++;
        if (masked.valid[i] !== 1) fromOlder++;
      }
      assert.equal(wrong, 0, "valid fresh pixels come from the fresh scene, masked ones from the older");
      assert.equal(c.contributions[1], fromOlder);
      // Before the mask, the clouds were classified (as sparse ground, mostly): that is what a mask removes.
      let cloudsClassified = 0;
      for (let i = 0; i < n; i++) if (cloud[i] && before[i] !== 0) cloudsClassified++;
      assert.ok(cloudsClassified > 0.9 * cloud.reduce((a, b) => a + b, 0));

      // Three panels: before (no mask), the derived QA flags, after (the composite's sources).
      const gap = 8;
      const W = width * 3 + gap * 2;
      const rgba = new Uint8Array(W * height * 4).fill(255);
      const put = (panel: number, i: number, rgb: readonly number[]) => {
        const x = i % width;
        const y = (i - x) / width;
        const o = (y * W + panel * (width + gap) + x) * 4;
        rgba.set([rgb[0] ?? 0, rgb[1] ?? 0, rgb[2] ?? 0, 255], o);
      };
      for (let i = 0; i < n; i++) {
        put(0, i, COLOURS[before[i] as number]!);
        put(1, i, qa[i] === CLOUD ? [255, 255, 255] : qa[i] === DILATED ? [255, 140, 0] : [30, 30, 30]);
        put(2, i, COLOURS[c.classes[i] as number]!);
      }
      const out = join(projectRoot, "test", "results", "composite");
      mkdirSync(out, { recursive: true });
      writeFileSync(
        join(out, "l8-cloudy-before-after.png"),
        encodePng({ width: W, height, data: rgba, channels: 4 }),
      );
      writeFileSync(
        join(out, "l8-cloudy.json"),
        JSON.stringify(
          {
            width,
            height,
            threshold: THRESHOLD,
            cloudShare,
            maskedShare,
            fromOlder,
            mtlCloudCover: mtlValue(mtl, "CLOUD_COVER"),
          },
          null,
          2,
        ) + "\n",
      );
    });
  },
);
