import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fromArrayBuffer } from "geotiff";
import { ConfigError, createRandom } from "../../shared/internal.js";
import {
  ArchiveExistsError,
  CLASS_ID,
  SAMPLE_CLASSES,
  SAMPLE_SPECTRA,
  generateArchive,
  generateTile,
  landCover,
  sampleGeoTransform,
  type ArchiveManifest,
  type ArchiveSummary,
} from "../../sample/index.js";
import { missing } from "../helpers/env.js";

const dir = mkdtempSync(join(tmpdir(), "lanemap-generate-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/**
 * A fresh ArrayBuffer holding exactly `bytes`. A Buffer from readFileSync may be a view into a shared
 * pool, and Buffer#slice does not copy, so `.buffer` alone can hold another file's bytes.
 */
function ownBuffer(bytes: Uint8Array): ArrayBuffer {
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return copy.buffer;
}

/** Decodes every band of a GeoTIFF with the geotiff package (independent of lanemap's decoder). */
async function readBands(bytes: Uint8Array): Promise<Array<Uint8Array | Uint16Array>> {
  const image = await (await fromArrayBuffer(ownBuffer(bytes))).getImage();
  return (await image.readRasters()) as unknown as Array<Uint8Array | Uint16Array>;
}

function pointInRing(x: number, y: number, ring: readonly (readonly number[])[]): boolean {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi = 0, yi = 0] = ring[i] ?? [];
    const [xj = 0, yj = 0] = ring[j] ?? [];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

describe("createRandom", () => {
  test("the same seed gives the same stream and different seeds give different streams", () => {
    const draw = (seed: number | string) => {
      const r = createRandom(seed);
      return Array.from({ length: 8 }, () => r.uint32());
    };
    assert.deepEqual(draw(42), draw(42));
    assert.deepEqual(draw("archive-7"), draw("archive-7"));
    assert.notDeepEqual(draw(1), draw(2));
    assert.notDeepEqual(draw(1), draw(1.5));
    assert.notDeepEqual(draw("a"), draw("b"));
  });

  test("next() stays in [0, 1) and int(n) reaches every value of [0, n) evenly", () => {
    const r = createRandom(3);
    const counts = new Array<number>(7).fill(0);
    for (let i = 0; i < 70000; i++) {
      const u = r.next();
      assert.ok(u >= 0 && u < 1);
      const k = r.int(7);
      counts[k] = (counts[k] ?? 0) + 1;
    }
    // Each bucket expects 10000 with a standard deviation of about 93.
    for (const c of counts) assert.ok(Math.abs(c - 10000) < 500, `bucket count ${c}`);
  });

  test("normal() has mean 0 and variance 1 over many draws", () => {
    const r = createRandom(11);
    let sum = 0;
    let sq = 0;
    const n = 100000;
    for (let i = 0; i < n; i++) {
      const z = r.normal();
      sum += z;
      sq += z * z;
    }
    assert.ok(Math.abs(sum / n) < 0.02);
    assert.ok(Math.abs(sq / n - 1) < 0.02);
  });

  test("shuffle() returns the same array, permuted", () => {
    const a = Array.from({ length: 50 }, (_, i) => i);
    const b = createRandom(5).shuffle(a);
    assert.equal(b, a);
    assert.deepEqual(
      [...b].sort((x, y) => x - y),
      Array.from({ length: 50 }, (_, i) => i),
    );
    assert.notDeepEqual(
      b,
      Array.from({ length: 50 }, (_, i) => i),
    );
  });

  test("int() refuses a bound that is not a positive integer", () => {
    const r = createRandom(1);
    assert.throws(() => r.int(0), RangeError);
    assert.throws(() => r.int(2.5), RangeError);
  });
});

describe("landCover", () => {
  test("is seamless: one window across four tiles equals the four tiles side by side", () => {
    const t = 48;
    const whole = landCover(9, { x0: 3 * t, y0: 5 * t, width: 2 * t, height: 2 * t });
    for (let ty = 0; ty < 2; ty++)
      for (let tx = 0; tx < 2; tx++) {
        const part = landCover(9, { x0: (3 + tx) * t, y0: (5 + ty) * t, width: t, height: t });
        for (let y = 0; y < t; y++)
          for (let x = 0; x < t; x++)
            assert.equal(
              part[y * t + x],
              whole[(ty * t + y) * 2 * t + tx * t + x],
              `tile ${tx},${ty} pixel ${x},${y}`,
            );
      }
  });

  test("flood adds water to a tile and clearing turns forest into bare ground only", () => {
    const win = { x0: 512, y0: 256, width: 128, height: 128 };
    const base = landCover(2, win);
    const flood = landCover(2, win, "flood");
    const clearing = landCover(2, win, "clearing");
    const count = (a: Uint8Array, c: number) => a.reduce((n, v) => n + (v === c ? 1 : 0), 0);
    assert.ok(count(flood, CLASS_ID.water) >= count(base, CLASS_ID.water) + 0.2 * base.length);
    assert.ok(count(base, CLASS_ID.forest) > 0, "the window needs forest for this test");
    assert.ok(count(clearing, CLASS_ID.forest) < count(base, CLASS_ID.forest) * 0.6);
    for (let i = 0; i < base.length; i++)
      if (clearing[i] !== base[i]) {
        assert.equal(base[i], CLASS_ID.forest);
        assert.equal(clearing[i], CLASS_ID.bare);
      }
  });
});

describe("generateTile", () => {
  const request = {
    seed: 4,
    col: 2,
    row: 1,
    tileSize: 96,
    bands: 6,
    acquired: "2024-05-01T16:40:00Z",
  } as const;

  test("the same request gives byte-identical files and another seed another tile", () => {
    const a = generateTile(request);
    const b = generateTile(request);
    assert.deepEqual(a.bytes, b.bytes);
    assert.deepEqual(a.truthBytes, b.truthBytes);
    const c = generateTile({ ...request, seed: 5 });
    assert.notDeepEqual(c.bytes, a.bytes);
    assert.notDeepEqual(c.truth, a.truth);
  });

  test("a later acquisition of a cell keeps its ground truth but not its clouds and noise", () => {
    const a = generateTile(request);
    const later = generateTile({ ...request, acquired: "2024-05-17T16:40:00Z" });
    assert.deepEqual(later.truth, a.truth);
    assert.notDeepEqual(later.valid, a.valid);
    assert.notDeepEqual(later.bytes, a.bytes);
  });

  test("a scenario changes exactly the pixels whose class changes", async () => {
    const base = generateTile(request);
    const flood = generateTile({ ...request, scenario: "flood" });
    assert.deepEqual(flood.valid, base.valid);
    const [b, f] = [await readBands(base.bytes), await readBands(flood.bytes)];
    let changed = 0;
    for (let i = 0; i < base.truth.length; i++) {
      const same = base.truth[i] === flood.truth[i];
      if (!same) changed++;
      for (let k = 0; k < 6; k++) {
        const bv = b[k]?.[i];
        const fv = f[k]?.[i];
        if (same || base.valid[i] === 0) assert.equal(fv, bv);
      }
    }
    assert.ok(changed > 0.1 * base.truth.length, `only ${changed} pixels flooded`);
  });

  test("reflectance per class follows the real spectra table", async () => {
    const tile = generateTile({ ...request, tileSize: 256 });
    const bands = await readBands(tile.bytes);
    for (const cls of SAMPLE_CLASSES) {
      const spectrum = SAMPLE_SPECTRA[cls.name];
      const sums = new Array<number>(6).fill(0);
      let n = 0;
      for (let i = 0; i < tile.truth.length; i++) {
        if (tile.truth[i] !== cls.id || tile.valid[i] !== 1) continue;
        n++;
        for (let k = 0; k < 6; k++) sums[k] = (sums[k] ?? 0) + (bands[k]?.[i] ?? 0);
      }
      if (n < 200) continue;
      for (let k = 0; k < 6; k++) {
        const mean = (sums[k] ?? 0) / n;
        const expected = spectrum.mean[k] ?? 0;
        assert.ok(
          Math.abs(mean - expected) < 0.1 * expected,
          `${cls.name} band ${k + 1}: ${mean} vs ${expected}`,
        );
      }
    }
  });

  test("clouded pixels are 0 in every band and no valid pixel is 0 in any band", async () => {
    const tile = generateTile(request);
    const bands = await readBands(tile.bytes);
    assert.ok(tile.nodataPixels > 0, "this request has clouds");
    for (let i = 0; i < tile.valid.length; i++)
      for (const band of bands) assert.equal(band[i] === 0, tile.valid[i] === 0);
  });

  test("neighbouring cells lie edge to edge with row 0 at the north", () => {
    const a = sampleGeoTransform(3, 4, 256);
    const east = sampleGeoTransform(4, 4, 256);
    const south = sampleGeoTransform(3, 5, 256);
    assert.equal(east[0], a[0] + 256 * a[1]);
    assert.equal(east[3], a[3]);
    assert.equal(south[3], a[3] + 256 * a[5]);
    assert.equal(south[0], a[0]);
    assert.ok(a[5] < 0);
    assert.deepEqual(generateTile({ ...request, col: 3, row: 4, tileSize: 256 }).geoTransform, a);
  });

  test("bad requests are refused with a ConfigError", () => {
    assert.throws(() => generateTile({ ...request, bands: 7 }), ConfigError);
    assert.throws(() => generateTile({ ...request, tileSize: 8 }), ConfigError);
    assert.throws(() => generateTile({ ...request, seed: -1 }), ConfigError);
    assert.throws(() => generateTile({ ...request, acquired: "soon" }), ConfigError);
  });
});

describe("generateArchive", () => {
  const options = { grid: { width: 4, height: 4 }, tileSize: 128, seed: 2 } as const;
  const outA = join(dir, "a");
  let summary: ArchiveSummary;
  let manifest: ArchiveManifest;
  before(async () => {
    summary = await generateArchive({ ...options, out: outA });
    manifest = JSON.parse(readFileSync(join(outA, "archive.json"), "utf8")) as ArchiveManifest;
  });

  test("writes a tile and a truth raster per cell, the training polygons and archive.json", () => {
    assert.equal(summary.tiles, 16);
    assert.equal(readdirSync(join(outA, "tiles")).length, 16);
    assert.equal(readdirSync(join(outA, "truth")).length, 16);
    assert.equal(manifest.tiles.length, 16);
    assert.deepEqual(manifest.grid, { width: 4, height: 4 });
    assert.equal(manifest.crs.epsg, 32615);
    assert.equal(manifest.pixelSize, 30);
    assert.deepEqual(
      manifest.classes.map((c) => c.name),
      ["bare", "crop", "forest", "grass", "urban", "water"],
    );
    for (const t of manifest.tiles) {
      assert.ok(existsSync(join(outA, t.path)) && existsSync(join(outA, t.truth)));
      assert.match(t.acquired, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    }
    assert.equal(manifest.tiles[5]?.cell, "c0001r0001");
  });

  test("the same seed writes byte-identical files and another seed different ones", async () => {
    const outB = join(dir, "b");
    const outC = join(dir, "c");
    await generateArchive({ ...options, out: outB });
    await generateArchive({ ...options, seed: 3, out: outC });
    const files = ["archive.json", "training.geojson", ...manifest.tiles.flatMap((t) => [t.path, t.truth])];
    for (const f of files) assert.deepEqual(readFileSync(join(outB, f)), readFileSync(join(outA, f)), f);
    for (const f of files.filter((f) => f.endsWith(".tif")))
      assert.notDeepEqual(readFileSync(join(outC, f)), readFileSync(join(outA, f)), f);
  });

  test("tiles of neighbouring cells lie edge to edge in their GeoTIFF headers", async () => {
    const origin = async (cell: string) => {
      const image = await (
        await fromArrayBuffer(ownBuffer(readFileSync(join(outA, "tiles", `${cell}.tif`))))
      ).getImage();
      return image.getOrigin();
    };
    const [a, east, south] = await Promise.all([
      origin("c0001r0001"),
      origin("c0002r0001"),
      origin("c0001r0002"),
    ]);
    assert.deepEqual(east, [(a[0] ?? 0) + 128 * 30, a[1], 0]);
    assert.deepEqual(south, [a[0], (a[1] ?? 0) - 128 * 30, 0]);
  });

  test("every class is present and a few per cent of pixels are nodata", () => {
    for (const [name, share] of Object.entries(summary.classShare))
      assert.ok(share > 0.01, `${name}: ${share}`);
    assert.ok(summary.nodataShare > 0.003 && summary.nodataShare < 0.1, `nodata ${summary.nodataShare}`);
    for (const [name, count] of Object.entries(summary.polygons))
      assert.ok(count >= 2, `${name}: ${count} polygons`);
  });

  test("training polygons lie inside cloud-free patches of their class in the truth rasters", async () => {
    const geo = JSON.parse(readFileSync(join(outA, "training.geojson"), "utf8")) as {
      crs: { properties: { name: string } };
      features: {
        properties: { class: string; classId: number; cell: string };
        geometry: { type: string; coordinates: number[][][] };
      }[];
    };
    assert.equal(geo.crs.properties.name, "urn:ogc:def:crs:EPSG::32615");
    assert.ok(geo.features.length > 30);
    const cache = new Map<string, { truth: Uint8Array; band: Uint16Array }>();
    for (const f of geo.features) {
      const { cell, classId } = f.properties;
      assert.equal(SAMPLE_CLASSES.find((c) => c.id === classId)?.name, f.properties.class);
      let rasters = cache.get(cell);
      if (!rasters) {
        const [truth] = await readBands(readFileSync(join(outA, "truth", `${cell}.tif`)));
        const [band] = await readBands(readFileSync(join(outA, "tiles", `${cell}.tif`)));
        rasters = { truth: truth as Uint8Array, band: band as Uint16Array };
        cache.set(cell, rasters);
      }
      const t = manifest.tiles.find((x) => x.cell === cell);
      assert.ok(t);
      const gt = sampleGeoTransform(t.col, t.row, 128);
      const ring = (f.geometry.coordinates[0] ?? []).map(([x = 0, y = 0]) => [
        (x - gt[0]) / gt[1],
        (y - gt[3]) / gt[5],
      ]);
      assert.deepEqual(ring[0], ring[ring.length - 1], "the ring is closed");
      const cols = ring.map((p) => p[0] ?? 0);
      const rows = ring.map((p) => p[1] ?? 0);
      assert.ok(
        Math.min(...cols) >= 0 &&
          Math.max(...cols) <= 128 &&
          Math.min(...rows) >= 0 &&
          Math.max(...rows) <= 128,
      );
      let inside = 0;
      for (let r = Math.floor(Math.min(...rows)); r < Math.ceil(Math.max(...rows)); r++)
        for (let c = Math.floor(Math.min(...cols)); c < Math.ceil(Math.max(...cols)); c++) {
          if (!pointInRing(c + 0.5, r + 0.5, ring)) continue;
          inside++;
          assert.equal(
            rasters.truth[r * 128 + c],
            classId,
            `${f.properties.class} polygon in ${cell} at ${c},${r}`,
          );
          assert.notEqual(rasters.band[r * 128 + c], 0, "training pixels are not clouded");
        }
      assert.ok(inside >= 9, `a polygon covers only ${inside} pixel centres`);
    }
  });

  test("a non-empty folder is refused unless overwriting, which removes stale tiles", async () => {
    const out = join(dir, "busy");
    mkdirSync(join(out, "tiles"), { recursive: true });
    writeFileSync(join(out, "tiles", "c0099r0099.tif"), "stale");
    await assert.rejects(
      generateArchive({ ...options, grid: { width: 1, height: 1 }, out }),
      ArchiveExistsError,
    );
    await generateArchive({ ...options, grid: { width: 1, height: 1 }, out, overwrite: true });
    assert.deepEqual(readdirSync(join(out, "tiles")), ["c0000r0000.tif"]);
  });

  test(
    "tiles carry their cell, acquisition time, band scale and UTM 15N as GDAL reads them",
    { skip: missing({ gdal: true }) },
    () => {
      const t = manifest.tiles[6];
      assert.ok(t);
      const r = spawnSync("gdalinfo", ["-json", join(outA, t.path)], { encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
      const info = JSON.parse(r.stdout) as {
        metadata: Record<string, Record<string, string>>;
        stac: { "proj:epsg": number };
        bands: { type: string; noDataValue: number; scale: number; description: string }[];
      };
      assert.equal(info.metadata[""]?.["LANEMAP_CELL"], t.cell);
      assert.equal(
        info.metadata[""]?.["TIFFTAG_DATETIME"],
        t.acquired.slice(0, 19).replace(/-/g, ":").replace("T", " "),
      );
      assert.equal(info.metadata["IMAGE_STRUCTURE"]?.["COMPRESSION"], "DEFLATE");
      assert.equal(info.stac["proj:epsg"], 32615);
      assert.deepEqual(
        info.bands.map((b) => [b.type, b.noDataValue, b.scale, b.description]),
        ["SR_B1", "SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B7"].map((d) => ["UInt16", 0, 0.0001, d]),
      );
      const truth = spawnSync("gdalinfo", ["-json", join(outA, t.truth)], { encoding: "utf8" });
      const truthInfo = JSON.parse(truth.stdout) as { bands: { colorTable?: { entries: number[][] } }[] };
      assert.deepEqual(truthInfo.bands[0]?.colorTable?.entries[CLASS_ID.water], [40, 100, 200, 255]);
    },
  );
});
