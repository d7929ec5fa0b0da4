import assert from "node:assert/strict";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { ArchiveStore } from "../../shared/adapters/archive/index.js";
import {
  classifyTileBytes,
  createFeatureSpec,
  decodeClassRaster,
  decodeGeoTiff,
  describeTile,
  prepareClassifier,
  registerTile,
  trainModel,
  type Model,
} from "../../shared/index.js";
import { generateArchive } from "../../sample/index.js";

describe("the tile pipeline both lanes share", () => {
  let dir: string;
  let model: Model;
  let tiles: string[];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "lanemap-pipeline-"));
    await generateArchive({ out: join(dir, "gen"), grid: { width: 2, height: 2 }, tileSize: 64, seed: 2 });
    tiles = (await readdir(join(dir, "gen", "tiles"))).sort();
    const rasters = await Promise.all(
      tiles.map(async (t) => decodeGeoTiff(new Uint8Array(await readFile(join(dir, "gen", "tiles", t))))),
    );
    const geojson: unknown = JSON.parse(await readFile(join(dir, "gen", "training.geojson"), "utf8"));
    model = trainModel(
      rasters,
      { kind: "geojson", geojson },
      { features: createFeatureSpec(6, { red: 3, nir: 4 }), source: "training.geojson", tileNames: tiles },
    );
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  test("a generated tile is described with its cell from the file name and its time from the TIFF", async () => {
    const name = tiles[0]!;
    const bytes = new Uint8Array(await readFile(join(dir, "gen", "tiles", name)));
    const entry = await describeTile(bytes, { ingestSeq: 0, source: "bulk", fileName: name });
    assert.equal(entry.cell, name.replace(".tif", ""));
    assert.equal(entry.acquiredFrom, "tiff");
    assert.equal(entry.epsg, 32615);
    assert.ok(entry.hilbert !== null && entry.hilbert >= 0);
    assert.match(entry.tileId, /^c\d{4}r\d{4}-\d{8}T\d{6}Z$/);
  });

  test("registering the same tile twice keeps one catalogue entry with the first ingest sequence", async () => {
    const store = new ArchiveStore(join(dir, "data"));
    const bytes = new Uint8Array(await readFile(join(dir, "gen", "tiles", tiles[1]!)));
    const first = await registerTile(store, bytes, { ingestSeq: 4, source: "stream", fileName: tiles[1] });
    const again = await registerTile(store, bytes, { ingestSeq: 9, source: "stream", fileName: tiles[1] });
    assert.equal(first.created, true);
    assert.equal(again.created, false);
    assert.equal(again.entry.ingestSeq, 4);
    assert.deepEqual(await store.readObject(first.entry.contentHash), bytes);
    const all = [];
    for await (const e of store.entries()) all.push(e);
    assert.equal(all.length, 1);
  });

  test("a tile classifies into a result whose counts match its stored class raster", async () => {
    const bytes = new Uint8Array(await readFile(join(dir, "gen", "tiles", tiles[2]!)));
    const entry = await describeTile(bytes, { ingestSeq: 0, source: "bulk", fileName: tiles[2] });
    const outcome = await classifyTileBytes(bytes, prepareClassifier(model), entry, "batch");
    const { result } = outcome;
    assert.equal(result.modelVersion, model.version);
    assert.equal(result.tileId, entry.tileId);
    const raster = decodeClassRaster(outcome.raster, result.width, result.height, outcome.k);
    const counts = new Array<number>(model.classes.length + 1).fill(0);
    for (const c of raster.classes) counts[c]!++;
    assert.deepEqual(result.counts, counts);
    assert.equal(result.validPixels, result.width * result.height - counts[0]!);
    const dominant = counts.slice(1).indexOf(Math.max(...counts.slice(1))) + 1;
    assert.equal(result.dominantClass, dominant);
    for (let i = 0; i < raster.classes.length; i++)
      assert.equal(raster.classes[i] === 0, raster.votes[i] === 0, "votes only where classified");
  });
});
