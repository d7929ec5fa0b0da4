/**
 * The one tile job of both lanes in its TilePool: a tile decoded and classified in a worker thread
 * gives exactly the outcome of the same steps in process, whether its bytes are sent inline (speed
 * lane) or read from the archive by the thread (batch lane); models are checked when loaded.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { ArchiveStore } from "../../shared/adapters/archive/index.js";
import { generateArchive } from "../../sample/index.js";
import {
  ModelError,
  TileDecodeError,
  TilePool,
  classifyTileBytes,
  createFeatureSpec,
  decodeGeoTiff,
  prepareClassifier,
  registerTile,
  serializeModel,
  trainModel,
  type CatalogueEntry,
  type Model,
  type ClassifiedTile,
} from "../../shared/index.js";

/** An outcome without its processing time, which differs between any two runs. */
function comparable(o: ClassifiedTile): unknown {
  return { ...o, result: { ...o.result, processedAt: "" }, raster: Array.from(o.raster) };
}

describe("the TilePool both lanes classify in", () => {
  let dir: string;
  let model: Model;
  let artifact: Uint8Array;
  let entry: CatalogueEntry;
  let bytes: Uint8Array;
  let pool: TilePool;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "lanemap-tile-pool-"));
    await generateArchive({ out: join(dir, "gen"), grid: { width: 2, height: 1 }, tileSize: 64, seed: 4 });
    const tiles = (await readdir(join(dir, "gen", "tiles"))).sort();
    const all = await Promise.all(
      tiles.map(async (t) => new Uint8Array(await readFile(join(dir, "gen", "tiles", t)))),
    );
    const geojson: unknown = JSON.parse(await readFile(join(dir, "gen", "training.geojson"), "utf8"));
    model = trainModel(
      await Promise.all(all.map((b) => decodeGeoTiff(b))),
      { kind: "geojson", geojson },
      { features: createFeatureSpec(6, { red: 3, nir: 4 }), source: "training.geojson", tileNames: tiles },
    );
    artifact = new TextEncoder().encode(serializeModel(model));
    bytes = all[0] as Uint8Array;
    const store = new ArchiveStore(join(dir, "data"));
    ({ entry } = await registerTile(store, bytes, { ingestSeq: 3, source: "stream", fileName: tiles[0] }));
    pool = new TilePool({ size: 2, timeoutMs: 30_000 });
    await pool.warm();
  });
  after(async () => {
    await pool.close();
    await rm(dir, { recursive: true, force: true });
  });

  test("loading a model builds it in the threads and answers its version and k", async () => {
    assert.deepEqual(await pool.loadModel(artifact), { version: model.version, k: model.k });
    assert.deepEqual(await pool.loadModel(artifact, model.version), { version: model.version, k: model.k });
  });

  test("a tile sent inline gives exactly the in-process outcome, and the caller keeps its bytes", async () => {
    await pool.loadModel(artifact);
    const copy = bytes.slice();
    const pooled = await pool.classify(
      { lane: "live", source: entry, bytes: { kind: "inline", bytes: copy }, maxPixels: 1e8 },
      model.version,
    );
    const direct = await classifyTileBytes(bytes, prepareClassifier(model), entry, "live");
    assert.deepEqual(comparable(pooled), comparable(direct));
    assert.deepEqual(copy, bytes, "the caller's bytes are neither detached nor changed");
  });

  test("a tile the thread reads from the archive gives the same outcome", async () => {
    await pool.loadModel(artifact);
    const pooled = await pool.classify(
      {
        lane: "batch",
        source: entry,
        bytes: { kind: "archive", dataDir: join(dir, "data") },
        maxPixels: 1e8,
      },
      model.version,
    );
    const direct = await classifyTileBytes(bytes, prepareClassifier(model), entry, "batch");
    assert.deepEqual(comparable(pooled), comparable(direct));
  });

  test("a tile's own failure comes back as its named error and the threads go on", async () => {
    await pool.loadModel(artifact);
    await assert.rejects(
      pool.classify(
        {
          lane: "live",
          source: entry,
          bytes: { kind: "inline", bytes: bytes.subarray(0, 40) },
          maxPixels: 1e8,
        },
        model.version,
      ),
      TileDecodeError,
    );
    assert.equal(pool.replaced, 0);
  });

  test("an artifact that is not a model, or not the version it is stored as, is refused with ModelError", async () => {
    await assert.rejects(pool.loadModel(new TextEncoder().encode("{}")), ModelError);
    await assert.rejects(pool.loadModel(artifact, "v-something-else"), (err: unknown) => {
      assert.ok(err instanceof ModelError);
      assert.match(err.message, /stored as v-something-else is model/);
      return true;
    });
    await assert.rejects(
      pool.classify(
        { lane: "live", source: entry, bytes: { kind: "inline", bytes }, maxPixels: 1e8 },
        "v-never-loaded",
      ),
      /never loaded/,
    );
  });
});
