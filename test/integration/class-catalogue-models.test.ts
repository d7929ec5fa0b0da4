/**
 * Two models with different class sets over one archive. Model B drops "grass" and adds "cloud",
 * which "sorted names from 1" would have numbered 2, shifting crop, forest, urban and water. With
 * the class catalogue every name keeps its id, and each answer names every id the same way
 * everywhere: tiles, points, stats, class rasters (GeoTIFF + PAM categories) and the Arrow export.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { tableFromIPC } from "apache-arrow";
import { createBatchRunner } from "../../batch/index.js";
import { FileModelRegistry, readCurrentBatch } from "../../shared/adapters/archive/index.js";
import {
  BATCH_VIEW_FILES,
  createFeatureSpec,
  decodeGeoTiff,
  trainModel,
  type Model,
} from "../../shared/index.js";
import { SAMPLE_NIR_BAND, SAMPLE_RED_BAND } from "../../sample/index.js";
import { startServing } from "../helpers/serving-server.js";
import { makeDataDir, makeSampleSet, type DataDirFixture, type SampleSet } from "./batch-fixture.js";

describe("two models with different class sets over one archive", () => {
  let set: SampleSet;
  let fx: DataDirFixture;
  let modelA: Model;
  let modelB: Model;
  let registry: FileModelRegistry;

  before(async () => {
    set = await makeSampleSet();
    fx = await makeDataDir(set, "two-models");
    // The fixture's model sits in models/ as before the registry: opening migrates and activates it.
    registry = await FileModelRegistry.open(fx.dataDir);
    modelA = set.model;
    assert.equal((await registry.active())?.version, modelA.version);
    const runner = createBatchRunner(fx.config(), { logger: fx.logger, models: registry });
    await runner.run();

    const geojson = JSON.parse(readFileSync(join(set.sampleDir, "training.geojson"), "utf8")) as {
      features: { properties: { class: string } }[];
    };
    for (const f of geojson.features) if (f.properties.class === "grass") f.properties.class = "cloud";
    const tileNames = readdirSync(set.tilesDir)
      .filter((n) => n.endsWith(".tif"))
      .sort();
    const rasters = await Promise.all(
      tileNames.map(async (n) => decodeGeoTiff(new Uint8Array(readFileSync(join(set.tilesDir, n))))),
    );
    modelB = trainModel(
      rasters,
      { kind: "geojson", geojson },
      {
        features: createFeatureSpec(rasters[0]!.bandCount, { red: SAMPLE_RED_BAND, nir: SAMPLE_NIR_BAND }),
        source: "training.geojson (grass relabelled cloud)",
        tileNames,
        catalogue: await registry.classes(),
      },
    );
    await registry.put(modelB, { trainedBy: "test" });
    await registry.activate(modelB.version);
    await runner.run();
  });

  after(() => set?.dispose());

  test("every name keeps its id; the new class gets the next id and the retired one keeps its own", async () => {
    const idsA = Object.fromEntries(modelA.classes.map((c) => [c.name, c.id]));
    const idsB = Object.fromEntries(modelB.classes.map((c) => [c.name, c.id]));
    for (const name of Object.keys(idsB)) if (name in idsA) assert.equal(idsB[name], idsA[name], name);
    const top = Math.max(...modelA.classes.map((c) => c.id));
    assert.equal(idsB["cloud"], top + 1);
    assert.equal(idsB["grass"], undefined);
    const catalogue = (await registry.classes()).classes;
    assert.deepEqual(
      catalogue.map((c) => `${c.id} ${c.name}`),
      [...modelA.classes.map((c) => `${c.id} ${c.name}`), `${top + 1} cloud`],
    );
    const current = await readCurrentBatch(fx.dataDir);
    assert.equal(current?.manifest.modelVersion, modelB.version);
  });

  test("tiles, points, stats, class GeoTIFFs and the Arrow export name ids alike, and stats per class name equal a recount of the class rasters", async () => {
    await using srv = await startServing({ dataDir: fx.dataDir });
    const catalogue = (await registry.classes()).classes;
    const nameOf = (id: number): string =>
      id === 0 ? "not classified" : (catalogue.find((c) => c.id === id)?.name ?? `class ${id}`);
    const tiles = await srv.json<{
      items: {
        cell: string;
        bbox: [number, number, number, number];
        dominantClass: number;
        dominantClassName: string;
        counts: number[];
      }[];
    }>("/v1/tiles?limit=100");
    assert.equal(tiles.status, 200);
    assert.equal(tiles.body.items.length, 9);
    const recount = new Map<string, number>();
    const cloudId = modelB.classes.find((c) => c.name === "cloud")!.id;
    let cloudPixels = 0;
    let box = [Infinity, Infinity, -Infinity, -Infinity];
    for (const t of tiles.body.items) {
      assert.equal(t.dominantClassName, nameOf(t.dominantClass), `${t.cell} dominant class`);
      const tif = await srv.get(`/v1/tiles/${t.cell}/classes.tif`);
      assert.equal(tif.status, 200);
      const raster = await decodeGeoTiff(new Uint8Array(await tif.arrayBuffer()));
      const band = raster.bands[0]!;
      const perId = new Map<number, number>();
      for (let i = 0; i < band.length; i++) perId.set(band[i]!, (perId.get(band[i]!) ?? 0) + 1);
      for (const [id, n] of perId) {
        if (id !== 0) recount.set(nameOf(id), (recount.get(nameOf(id)) ?? 0) + n);
        assert.equal(t.counts[id] ?? 0, id === 0 ? (t.counts[0] ?? 0) : n, `${t.cell} count of id ${id}`);
      }
      cloudPixels += perId.get(cloudId) ?? 0;
      const aux = await (await srv.get(`/v1/tiles/${t.cell}/classes.tif.aux.xml`)).text();
      if (perId.has(cloudId)) assert.match(aux, /<Category>cloud<\/Category>/);
      box = [
        Math.min(box[0]!, t.bbox[0]),
        Math.min(box[1]!, t.bbox[1]),
        Math.max(box[2]!, t.bbox[2]),
        Math.max(box[3]!, t.bbox[3]),
      ];
    }
    assert.ok(cloudPixels > 0, "the new class is mapped somewhere");
    assert.equal(recount.get("grass"), undefined, "nothing is named by the retired class");

    const pad = 0.01;
    const stats = await srv.json<{ classes: { id: number; name: string; pixels: number }[] }>(
      `/v1/stats?bbox=${box[0]! - pad},${box[1]! - pad},${box[2]! + pad},${box[3]! + pad}`,
    );
    assert.equal(stats.status, 200);
    for (const c of stats.body.classes) {
      if (c.id === 0) continue;
      assert.equal(c.name, nameOf(c.id), `stats names id ${c.id} by the catalogue`);
      assert.equal(c.pixels, recount.get(c.name) ?? 0, `stats pixels of ${c.name} equal the recount`);
    }
    for (const [name, n] of recount)
      assert.equal(stats.body.classes.find((c) => c.name === name)?.pixels, n, `${name} is in the stats`);

    const t0 = tiles.body.items[0]!;
    const point = await srv.json<{ class: { id: number; name: string } }>(
      `/v1/point?lon=${(t0.bbox[0] + t0.bbox[2]) / 2}&lat=${(t0.bbox[1] + t0.bbox[3]) / 2}`,
    );
    assert.equal(point.status, 200);
    assert.equal(point.body.class.name, nameOf(point.body.class.id));
    // Every answer carries the legend that names its ids: the catalogue, retired classes included.
    const legend = (
      await srv.json<{ snapshot: { legend: { id: number; name: string }[] } }>("/v1/tiles?limit=1")
    ).body.snapshot.legend;
    assert.deepEqual(
      legend.map((c) => `${c.id} ${c.name}`),
      catalogue.map((c) => `${c.id} ${c.name}`),
    );

    const current = await readCurrentBatch(fx.dataDir);
    const arrow = tableFromIPC(readFileSync(join(current!.dir, BATCH_VIEW_FILES.arrow)));
    let arrowCloud = 0;
    for (let r = 0; r < arrow.numRows; r++) {
      const row = arrow.get(r)!.toJSON() as { counts: { toArray(): ArrayLike<bigint | number> } };
      arrowCloud += Number(Array.from(row.counts.toArray())[cloudId] ?? 0);
    }
    assert.equal(arrowCloud, cloudPixels, "the Arrow export's counts are indexed by catalogue id");
  });
});
