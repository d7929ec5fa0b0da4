/**
 * The map layers over HTTP, through the real serving stack (DuckDB batch view, archive, decoder
 * worker): GET /v1/tiles/{id}/source.png on a generated 4-band tile (presets, bidx, rescale, nodata
 * and the catalogue's PAM nodata transparent, errors naming the parameter) and on the real Chiapas
 * Landsat 7 stack, whose stretch is checked against rasterio/numpy's percentiles and
 * `gdal_translate -scale` with the same limits (equal within 1 DN); GET /v1/tiles/{id}/confidence.png
 * by tile id and by cell key (the merged answer the map shows).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { decode as decodePng } from "fast-png";
import { ArchiveStore } from "../../shared/adapters/archive/index.js";
import { decodeGeoTiff, encodeGeoTiff, type Bounds, type CatalogueEntry } from "../../shared/index.js";
import { registerFastDecoders } from "../../shared/internal.js";
import { ProblemError } from "../../serving/errors.js";
import { confidenceColour, confidenceSummary } from "../../serving/render/confidence.js";
import { MAX_PENDING_DECODES, SourceImagery } from "../../serving/usecases/source-image.js";
import type { ServedResult } from "../../serving/view/served-result.js";
import { missing, sharedData } from "../helpers/env.js";
import { startServing, type ServingFixture } from "../helpers/serving-server.js";
import {
  DEFAULT_GRID,
  fixtureCell,
  lonLatTile,
  makeRaster,
  summarise,
  tempDataDir,
  writeBatchView,
  type TileFixture,
} from "../helpers/serving-views.js";

const N = 16;
const NODATA = -9999;
/** Band b (1-based) of the generated tile at pixel i: distinct ramps, so band order shows. */
const sample = (b: number, i: number): number => b * 1000 + i;
/** Pixels that are nodata in band 3 (the file's nodata) and band 2 (the catalogue's PAM nodata). */
const FILE_NODATA_PIXEL = 5;
const PAM_NODATA_PIXEL = 9;

function generatedTif(): Uint8Array {
  const bands = [1, 2, 3, 4].map((b) => {
    const a = new Int16Array(N * N);
    for (let i = 0; i < a.length; i++) a[i] = sample(b, i);
    return a;
  });
  (bands[2] as Int16Array)[FILE_NODATA_PIXEL] = NODATA;
  return encodeGeoTiff({
    width: N,
    height: N,
    bands,
    geoTransform: [10, 0.0025, 0, 50.04, 0, -0.0025],
    epsg: 4326,
    nodata: NODATA,
  });
}

/** A batch-lane view row for an archived source: the view's summary names its content hash. */
function sourceTile(
  tileId: string,
  cell: string,
  contentHash: string,
  size: number,
  k = 5,
  modelVersion = "m-layers",
): TileFixture {
  const raster = makeRaster(
    size,
    (c, r) => ((c + r) % 7 === 0 ? 0 : ((c + r) % 3) + 1),
    k,
    (c, r) => ((c * 3 + r) % k) + 1,
  );
  const result = summarise(
    {
      lane: "batch",
      tileId,
      cell,
      acquired: "2024-01-01T00:00:00Z",
      ingestSeq: 0,
      contentHash,
      modelVersion,
      width: size,
      height: size,
      geoTransform: [10, 0.0025, 0, 50.04, 0, -0.0025],
      epsg: 4326,
      proj4: null,
      boundsWgs84: { minX: 10, minY: 50, maxX: 10.04, maxY: 50.04 } as Bounds,
      processedAt: "2024-01-01T00:00:00Z",
    },
    raster,
    100,
  );
  return { result, raster };
}

interface Problem {
  status: number;
  invalid_params?: { name: string; reason: string }[];
  type: string;
}

describe("source.png and confidence.png over HTTP", () => {
  let srv: ServingFixture;
  let data: { dir: string } & AsyncDisposable;
  let generated: TileFixture;
  const orphan = lonLatTile(DEFAULT_GRID, {
    col: 3,
    row: 3,
    tileId: "orphan-20240101",
    lane: "batch",
    acquired: "2024-01-01T00:00:00Z",
    ingestSeq: 0,
    raster: makeRaster(4, () => 1),
  });

  before(async () => {
    registerFastDecoders();
    data = await tempDataDir();
    const archive = new ArchiveStore(data.dir);
    const bytes = generatedTif();
    const { contentHash } = await archive.putObject(bytes);
    generated = sourceTile("gen-20240101", fixtureCell(0, 0), contentHash, N);
    const info = await decodeGeoTiff(bytes);
    // The tile file had a .aux.xml giving band 2 its own nodata: the catalogue keeps it.
    const entry: CatalogueEntry = {
      tileId: "gen-20240101",
      cell: fixtureCell(0, 0),
      acquired: "2024-01-01T00:00:00Z",
      ingestSeq: 0,
      contentHash,
      bytes: bytes.length,
      width: N,
      height: N,
      bandCount: 4,
      dtype: "int16",
      epsg: 4326,
      proj4: null,
      geoTransform: [...(info.geoTransform ?? [])],
      bounds: info.bounds as Bounds,
      boundsWgs84: info.boundsWgs84,
      hilbert: null,
      acquiredFrom: "tiff",
      source: "bulk",
      registeredAt: "2024-01-01T00:00:00Z",
      pam: { bands: [{ band: 2, nodata: String(sample(2, PAM_NODATA_PIXEL)) }] },
    };
    await archive.register(entry);
    const tiles = [generated, orphan];
    const scene = sharedData("chiapas-l7-labels", "LE70220491999322EDC01_stack.gtif");
    if (scene) {
      const { contentHash: h } = await archive.putObject(readFileSync(scene));
      tiles.push(sourceTile("LE70220491999322EDC01", fixtureCell(1, 0), h, 250));
    }
    await writeBatchView(data.dir, { version: 1, watermark: 0, modelVersion: "m-layers", tiles });
    srv = await startServing({ dataDir: data.dir });
  });
  after(async () => {
    await srv?.[Symbol.asyncDispose]();
    await data?.[Symbol.asyncDispose]();
  });

  async function png(path: string) {
    const res = await srv.get(path);
    assert.equal(res.status, 200, `${path}: ${res.status} ${res.status === 200 ? "" : await res.text()}`);
    assert.equal(res.headers.get("content-type"), "image/png");
    return { res, image: decodePng(new Uint8Array(await res.arrayBuffer())) };
  }

  test("the true-colour preset of a 4-band tile draws bands 3,2,1 stretched 2-98 %, nodata and PAM nodata clear", async () => {
    const { res, image } = await png("/v1/tiles/gen-20240101/source.png");
    assert.equal(res.headers.get("lanemap-bands"), "3,2,1");
    assert.equal(image.channels, 4);
    assert.equal(image.width, N);
    const px = image.data as Uint8Array;
    assert.equal(px[FILE_NODATA_PIXEL * 4 + 3], 0, "the file's nodata (band 3) is transparent");
    assert.equal(px[PAM_NODATA_PIXEL * 4 + 3], 0, "the catalogue's PAM nodata (band 2) is transparent");
    assert.equal(px[0 + 3], 255);
    // Ramps: every band's 2 % pixel maps to 0 and its 98 % pixel to 255, so the first pixel is dark.
    assert.deepEqual([...px.subarray(0, 3)], [0, 0, 0]);
    assert.deepEqual([...px.subarray((N * N - 1) * 4, N * N * 4)], [255, 255, 255, 255]);
    const ranges = (res.headers.get("lanemap-rescale") ?? "").split(";");
    assert.equal(ranges.length, 3);
  });

  test("the false-colour preset draws 4,3,2; bidx and rescale choose bands and limits as titiler's do", async () => {
    const fc = await png("/v1/tiles/gen-20240101/source.png?preset=false-colour");
    assert.equal(fc.res.headers.get("lanemap-bands"), "4,3,2");
    const grey = await png(
      `/v1/tiles/gen-20240101/source.png?bidx=4&rescale=${sample(4, 0)},${sample(4, 255)}`,
    );
    assert.equal(grey.res.headers.get("lanemap-bands"), "4");
    assert.equal(grey.res.headers.get("lanemap-rescale"), `${sample(4, 0)},${sample(4, 255)}`);
    const px = grey.image.data as Uint8Array;
    for (const i of [0, 100, 255]) assert.deepEqual([...px.subarray(i * 4, i * 4 + 4)], [i, i, i, 255]);
    const per = await png(
      "/v1/tiles/gen-20240101/source.png?bidx=1&bidx=2&bidx=4&rescale=0,5000&rescale=0,5000&rescale=0,5000",
    );
    assert.equal(per.res.headers.get("lanemap-bands"), "1,2,4");
    const p0 = (per.image.data as Uint8Array).subarray(0, 3);
    assert.deepEqual(
      [...p0],
      [1000, 2000, 4000].map((v) => Math.round((v * 255) / 5000)),
    );
  });

  test("a cell key draws the source of the cell's merged answer", async () => {
    const { res } = await png(`/v1/tiles/${fixtureCell(0, 0)}/source.png?bidx=1`);
    assert.equal(res.headers.get("lanemap-tile-id"), "gen-20240101");
    assert.equal(res.headers.get("lanemap-lane"), "batch");
  });

  test("every image and file answer of a tile names its tile, lane, model version, batch view version and live position in headers, as the tile's JSON answer does", async () => {
    const detail = await srv.json<{ snapshot: { batch: { name: string } | null; live: unknown } }>(
      "/v1/tiles/gen-20240101",
    );
    assert.equal(detail.status, 200);
    assert.equal(detail.body.snapshot.batch?.name, "v000001");
    assert.equal(detail.body.snapshot.live, null);
    for (const file of [
      "classes.png",
      "classes.tif",
      "classes.tif.aux.xml",
      "age.png",
      "source.png",
      "confidence.png",
    ]) {
      for (const id of ["gen-20240101", fixtureCell(0, 0)]) {
        const res = await srv.get(`/v1/tiles/${id}/${file}`);
        assert.equal(res.status, 200, `${id}/${file}`);
        await res.arrayBuffer();
        const h = (name: string) => res.headers.get(name);
        assert.deepEqual(
          [h("lanemap-tile-id"), h("lanemap-lane"), h("lanemap-model-version"), h("lanemap-batch-version")],
          ["gen-20240101", "batch", "m-layers", detail.body.snapshot.batch?.name],
          `${id}/${file}`,
        );
        // No live view in this fixture: the header says so rather than being absent.
        assert.equal(h("lanemap-live-position"), "none", `${id}/${file}`);
      }
    }
  });

  test("bad render parameters are 400 problems naming the parameter", async () => {
    const cases: [string, string][] = [
      ["bidx=9", "bidx"],
      ["bidx=1,2", "bidx"],
      ["bidx=0", "bidx"],
      ["rescale=5", "rescale"],
      ["bidx=1,2,3&rescale=0,1&rescale=0,2", "rescale"],
      ["preset=infrared", "preset"],
      ["preset=true-colour&bidx=1", "preset"],
      ["percentiles=98,2", "percentiles"],
      ["color_map=viridis", "color_map"],
    ];
    for (const [query, name] of cases) {
      const { status, body, res } = await srv.json<Problem>(`/v1/tiles/gen-20240101/source.png?${query}`);
      assert.equal(status, 400, query);
      assert.equal(res.headers.get("content-type"), "application/problem+json; charset=utf-8");
      assert.deepEqual(
        body.invalid_params?.map((p) => p.name),
        [name],
        `${query}: ${JSON.stringify(body)}`,
      );
    }
  });

  test("a tile whose source is not archived is a 404 source-not-archived", async () => {
    const { status, body } = await srv.json<Problem>("/v1/tiles/orphan-20240101/source.png");
    assert.equal(status, 404);
    assert.equal(body.type, "/problems/source-not-archived");
  });

  test("confidence.png colours each classified pixel by votes / k and leaves class 0 transparent", async () => {
    for (const id of ["gen-20240101", fixtureCell(0, 0)]) {
      const { res, image } = await png(`/v1/tiles/${id}/confidence.png`);
      assert.equal(res.headers.get("lanemap-tile-id"), "gen-20240101");
      assert.equal(res.headers.get("lanemap-lane"), "batch");
      assert.equal(res.headers.get("lanemap-model-version"), "m-layers");
      assert.equal(res.headers.get("lanemap-k"), "5");
      const palette = image.palette as number[][];
      const { classes, votes, k } = generated.raster;
      for (let i = 0; i < classes.length; i++) {
        const entry = palette[(image.data as Uint8Array)[i] as number];
        if (classes[i] === 0) assert.equal(entry?.[3], 0, `pixel ${i} is not classified`);
        else assert.deepEqual(entry, [...confidenceColour((votes[i] as number) / k), 255], `pixel ${i}`);
      }
    }
  });

  test("the tile's JSON answer gives the drawn raster's mean vote share, its low-confidence share and both layers' links", async () => {
    for (const id of ["gen-20240101", fixtureCell(0, 0)]) {
      const { status, body } = await srv.json<{
        confidence: unknown;
        links: Record<string, string>;
      }>(`/v1/tiles/${id}`);
      assert.equal(status, 200);
      assert.deepEqual(body.confidence, confidenceSummary(generated.raster));
      assert.match(body.links["sourcePng"] ?? "", new RegExp(`/v1/tiles/${id}/source\\.png$`));
      assert.match(body.links["confidencePng"] ?? "", new RegExp(`/v1/tiles/${id}/confidence\\.png$`));
    }
    const s = confidenceSummary(generated.raster);
    assert.ok(s.lowShare !== null && s.lowShare > 0 && s.lowShare < 1, "the fixture has both kinds of pixel");
  });

  test(
    "on the Chiapas Landsat 7 stack the false-colour stretch equals rasterio's percentiles and gdal_translate -scale within 1 DN",
    { skip: missing({ shared: true, gdal: true, peer: true }) },
    async (ctx) => {
      const scene = sharedData("chiapas-l7-labels", "LE70220491999322EDC01_stack.gtif") as string;
      const { res, image } = await png("/v1/tiles/LE70220491999322EDC01/source.png?preset=false-colour");
      assert.equal(res.headers.get("lanemap-bands"), "4,3,2");
      const served = (res.headers.get("lanemap-rescale") ?? "")
        .split(";")
        .map((r) => r.split(",").map(Number));
      // The oracle: numpy's percentiles of each band's unmasked pixels, read by rasterio.
      const py = spawnSync(
        "/usr/bin/python3",
        [
          "-c",
          [
            "import json, sys, numpy, rasterio",
            "with rasterio.open(sys.argv[1]) as ds:",
            "  out = []",
            "  for b in (4, 3, 2):",
            "    a = ds.read(b, masked=True)",
            "    v = a.compressed().astype('float64')",
            "    out.append([float(numpy.percentile(v, 2)), float(numpy.percentile(v, 98))])",
            "print(json.dumps(out))",
          ].join("\n"),
          scene,
        ],
        { encoding: "utf8" },
      );
      assert.equal(py.status, 0, py.stderr);
      const want = JSON.parse(py.stdout) as number[][];
      for (let b = 0; b < 3; b++)
        for (let j = 0; j < 2; j++)
          assert.ok(
            Math.abs((served[b]?.[j] ?? NaN) - (want[b]?.[j] ?? NaN)) < 1e-9,
            `band ${[4, 3, 2][b]}: served ${served[b]?.join(",")}, rasterio ${want[b]?.join(",")}`,
          );
      // The same limits through gdal_translate: the pixels must agree within 1 DN.
      const out = join(data.dir, "gdal-false-colour.tif");
      const args = ["-q", "-ot", "Byte", "-b", "4", "-b", "3", "-b", "2"];
      want.forEach(([lo, hi], i) => args.push(`-scale_${i + 1}`, String(lo), String(hi), "0", "255"));
      const tr = spawnSync("gdal_translate", [...args, "-a_nodata", "none", scene, out], {
        encoding: "utf8",
      });
      assert.equal(tr.status, 0, tr.stderr);
      const gdal = await decodeGeoTiff(readFileSync(out));
      const source = await decodeGeoTiff(readFileSync(scene));
      const px = image.data as Uint8Array;
      let compared = 0;
      let worst = 0;
      for (let i = 0; i < 250 * 250; i++) {
        const nodata = [3, 2, 1].some((b) => (source.bands[b] as Int16Array)[i] === -9999);
        assert.equal(px[i * 4 + 3], nodata ? 0 : 255, `pixel ${i}: alpha follows the nodata mask`);
        if (nodata) continue;
        for (let c = 0; c < 3; c++) {
          const d = Math.abs((px[i * 4 + c] as number) - ((gdal.bands[c] as Uint8Array)[i] as number));
          worst = Math.max(worst, d);
        }
        compared++;
      }
      ctx.diagnostic(
        `${compared} valid pixels, largest difference from gdal_translate ${worst} DN; limits ${JSON.stringify(want)}`,
      );
      assert.ok(compared > 50_000, `${compared} valid pixels compared`);
      assert.ok(worst <= 1, `largest difference from gdal_translate: ${worst} DN`);
    },
  );
});

describe("source decoding is bounded", () => {
  test("past MAX_PENDING_DECODES waiting decodes a new image is a 503 render-busy, and decodes once the burst has drained", async () => {
    registerFastDecoders();
    await using data = await tempDataDir();
    const archive = new ArchiveStore(data.dir);
    const { contentHash } = await archive.putObject(generatedTif());
    const images = new SourceImagery(archive, {
      maxPixels: 1e6,
      deadline: { decodeTimeoutMs: 30_000, decodeMsPerMsample: 0 },
    });
    try {
      const tile = (i: number) => ({
        ...sourceTile(`gen-${i}`, "c", contentHash, N).result,
        summary: { contentHash },
      });
      const req = { bidx: [1], preset: null, rescale: null, percentiles: [2, 98] as const };
      const burst = Array.from({ length: MAX_PENDING_DECODES + 3 }, (_, i) =>
        images.render(tile(i) as unknown as ServedResult, req),
      );
      const settled = await Promise.allSettled(burst);
      const busy = settled.filter(
        (r) => r.status === "rejected" && r.reason instanceof ProblemError && r.reason.slug === "render-busy",
      );
      assert.equal(settled.filter((r) => r.status === "fulfilled").length, MAX_PENDING_DECODES);
      assert.equal(busy.length, 3);
      const refused = (busy[0] as PromiseRejectedResult).reason as ProblemError;
      assert.equal(refused.status, 503);
      assert.equal(refused.headers["Retry-After"], "1");
      // Once the burst is over the same tile decodes.
      await images.render(tile(MAX_PENDING_DECODES + 1) as unknown as ServedResult, req);
    } finally {
      await images.close();
    }
  });
});

describe("source.png presets follow the feature spec of the model that classified the tile", () => {
  let srv: ServingFixture;
  let data: { dir: string } & AsyncDisposable;

  before(async () => {
    registerFastDecoders();
    data = await tempDataDir();
    // A Landsat 8 OLI-like stack: 1 coastal, 2 blue, 3 green, 4 red, 5 NIR, 6 SWIR.
    const bands = [1, 2, 3, 4, 5, 6].map((b) => Int16Array.from({ length: N * N }, (_, i) => sample(b, i)));
    const bytes = encodeGeoTiff({
      width: N,
      height: N,
      bands,
      geoTransform: [10, 0.0025, 0, 50.04, 0, -0.0025],
      epsg: 4326,
    });
    const { contentHash } = await new ArchiveStore(data.dir).putObject(bytes);
    await writeBatchView(data.dir, {
      version: 1,
      watermark: 0,
      modelVersion: "m-l8",
      features: { bands: 6, red: 4, nir: 5, green: null, extras: [] },
      tiles: [
        sourceTile("l8-20240101", fixtureCell(0, 0), contentHash, N, 5, "m-l8"),
        // The same scene classified by a model this view does not hold: its bands are unknown here.
        sourceTile("l8-other-20240101", fixtureCell(1, 0), contentHash, N, 5, "m-other"),
      ],
    });
    srv = await startServing({ dataDir: data.dir });
  });
  after(async () => {
    await srv?.[Symbol.asyncDispose]();
    await data?.[Symbol.asyncDispose]();
  });

  const bandsOf = async (path: string) => {
    const res = await srv.get(path);
    assert.equal(res.status, 200, await res.clone().text());
    await res.arrayBuffer();
    return `${res.headers.get("lanemap-bands")} ${res.headers.get("lanemap-bands-from")}`;
  };

  test("red 4 and NIR 5 in the spec make true colour 4,3,2 and false colour 5,4,3", async () => {
    assert.equal(await bandsOf("/v1/tiles/l8-20240101/source.png"), "4,3,2 feature-spec");
    assert.equal(await bandsOf("/v1/tiles/l8-20240101/source.png?preset=false-colour"), "5,4,3 feature-spec");
    assert.equal(await bandsOf("/v1/tiles/l8-20240101/source.png?bidx=6,5,4"), "6,5,4 bidx");
  });

  test("a result of another model falls back to Landsat TM/ETM+ order", async () => {
    assert.equal(await bandsOf("/v1/tiles/l8-other-20240101/source.png"), "3,2,1 landsat-order");
  });
});

describe("source.png of a per-pixel composite", () => {
  /** The newer scene's cloud block: rows and columns 4..11; its classes there are 0 (masked). */
  const inBlock = (c: number, r: number) => c >= 4 && c < 12 && r >= 4 && r < 12;
  /** A 3-band scene whose band b at pixel i is `value(b, i)`. */
  const scene = (value: (b: number, i: number) => number) =>
    encodeGeoTiff({
      width: N,
      height: N,
      bands: [1, 2, 3].map((b) => Int16Array.from({ length: N * N }, (_, i) => value(b, i))),
      geoTransform: [10, 0.0025, 0, 50.04, 0, -0.0025],
      epsg: 4326,
      nodata: NODATA,
    });
  const classified = (
    tileId: string,
    contentHash: string,
    acquired: string,
    seq: number,
    cls: (c: number, r: number) => number,
  ): TileFixture => {
    const raster = makeRaster(N, cls, 5);
    const result = summarise(
      {
        lane: "batch",
        tileId,
        cell: fixtureCell(0, 0),
        acquired,
        ingestSeq: seq,
        contentHash,
        modelVersion: "m-layers",
        width: N,
        height: N,
        geoTransform: [10, 0.0025, 0, 50.04, 0, -0.0025],
        epsg: 4326,
        proj4: null,
        boundsWgs84: { minX: 10, minY: 50, maxX: 10.04, maxY: 50.04 } as Bounds,
        processedAt: acquired,
      },
      raster,
      100,
    );
    return { result, raster };
  };

  test("by cell key it draws each pixel from the acquisition its class came from: the older clear scene inside the newer one's cloud block", async () => {
    registerFastDecoders();
    await using data = await tempDataDir();
    const archive = new ArchiveStore(data.dir);
    // The clear scene: dark ramps. The cloudy one: other ramps, and bright cloud over the block.
    const clear = await archive.putObject(scene((b, i) => 300 * b + (i % 97)));
    const cloudy = await archive.putObject(
      scene((b, i) => (inBlock(i % N, Math.floor(i / N)) ? 4000 : 200 * b + (i % 89))),
    );
    await writeBatchView(data.dir, {
      version: 1,
      watermark: 10,
      modelVersion: "m-layers",
      composite: true,
      tiles: [
        classified("clear-20240101", clear.contentHash, "2024-01-01T00:00:00Z", 1, () => 1),
        classified("cloudy-20240201", cloudy.contentHash, "2024-02-01T00:00:00Z", 2, (c, r) =>
          inBlock(c, r) ? 0 : 2,
        ),
      ],
    });
    await using srv = await startServing({ dataDir: data.dir });
    const png = async (path: string) => {
      const res = await srv.get(path);
      assert.equal(
        res.status,
        200,
        `${path}: ${res.status} ${res.status === 200 ? "" : await res.clone().text()}`,
      );
      return { res, image: decodePng(new Uint8Array(await res.arrayBuffer())) };
    };

    // A fixed rescale makes each tile's own rendering comparable with the composite's, pixel by pixel.
    const q = "?bidx=3,2,1&rescale=0,4500";
    const cell = await png(`/v1/tiles/${fixtureCell(0, 0)}/source.png${q}`);
    assert.equal(cell.res.headers.get("lanemap-sources"), "cloudy-20240201,clear-20240101");
    const older = (await png(`/v1/tiles/clear-20240101/source.png${q}`)).image.data;
    const newer = (await png(`/v1/tiles/cloudy-20240201/source.png${q}`)).image.data;
    for (let r = 0; r < N; r++)
      for (let c = 0; c < N; c++) {
        const i = (r * N + c) * 4;
        const want = inBlock(c, r) ? older : newer;
        assert.deepEqual(
          [...cell.image.data.slice(i, i + 4)],
          [...want.slice(i, i + 4)],
          `pixel (${c}, ${r}) comes from the ${inBlock(c, r) ? "older" : "newer"} scene`,
        );
      }
    // The cloud is nowhere in the composite: its bright value never shows.
    const cloudGrey = newer[(4 * N + 4) * 4];
    assert.ok(cloudGrey !== undefined && cloudGrey > 200);

    // The percentile stretch is taken over the composite's pixels, so the cloud does not compress it:
    // every pixel is opaque, and the brightest red is from the scenes' own ramps.
    const stretched = await png(`/v1/tiles/${fixtureCell(0, 0)}/source.png`);
    let opaque = 0;
    for (let i = 0; i < N * N; i++) if (stretched.image.data[i * 4 + 3] === 255) opaque++;
    assert.equal(opaque, N * N);
    const detail = await srv.json<{ composite: { validPixels: number } }>(`/v1/tiles/${fixtureCell(0, 0)}`);
    assert.equal(detail.body.composite.validPixels, N * N);
    // The range the header reports is within the clear pixels' values, not stretched up to the cloud's 4000.
    const red = stretched.res.headers.get("lanemap-rescale")?.split(";")[0]?.split(",").map(Number) ?? [];
    assert.ok((red[1] ?? Infinity) < 4000, `red range ${red.join(",")}`);
  });
});
