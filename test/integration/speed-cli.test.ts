import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import { DeadLetterQueue, LiveView, NatsModelRegistry } from "../../shared/adapters/nats/index.js";
import { encodeGeoTiff, serializeModel } from "../../shared/index.js";
import { startSpeedWorker, type TileFailedEvent } from "../../speed/index.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import {
  activateModel,
  directCounts,
  runLanemap,
  tempDir,
  testConfig,
  testEnv,
  testLogger,
  testModel,
  testTile,
  waitFor,
} from "./speed-fixtures.js";

describe("the speed lane's commands", { skip: natsMissing() }, () => {
  test("lanemap ingest publishes usable tiles and refuses the rest with one line each, exiting 1", async () => {
    await using nats = await natsFixture();
    await using dir = await tempDir();
    const model = await testModel();
    await activateModel(nats.nc, model);
    await using _worker = await startSpeedWorker(testConfig(dir.path), { nc: nats.nc, logger: testLogger() });
    const tile = testTile(4, 2, "2024-09-01T10:00:00Z");
    const good = join(dir.path, "c0004r0002.tif");
    await writeFile(good, tile.bytes);
    const noCrs = join(dir.path, "no-crs.tif");
    await writeFile(
      noCrs,
      encodeGeoTiff({
        width: 4,
        height: 4,
        bands: [new Uint16Array(16).fill(7)],
        geoTransform: [0, 1, 0, 0, 0, -1],
        acquired: "2024-09-01T10:00:00Z",
      }),
    );
    const text = join(dir.path, "notes.tif");
    await writeFile(text, "not an image");
    const absent = join(dir.path, "absent.tif");

    const r = await runLanemap(
      ["ingest", good, noCrs, text, absent],
      testEnv(dir.path, { NATS_URL: nats.server.url }),
    );
    assert.equal(r.code, 1);
    assert.match(
      r.stdout,
      /published .*c0004r0002\.tif -> tiles\.in\.c0004r0002 \(tile c0004r0002-20240901T100000Z/,
    );
    const refused = r.stderr.split("\n").filter((l) => /lanemap: refused /.test(l));
    assert.equal(refused.length, 3, r.stderr);
    assert.match(r.stderr, /refused .*no-crs\.tif: .*coordinate reference system/);
    assert.match(r.stderr, /refused .*notes\.tif: /);
    assert.match(r.stderr, /refused .*absent\.tif: UNREADABLE: cannot read the file/);
    assert.match(r.stderr, /3 of 4 file\(s\) refused/);

    // The published tile is resolved exactly as the file said: cell from the name, time from the TIFF.
    const live = await LiveView.open(nats.nc);
    const entry = await waitFor("the ingested tile", () =>
      live.get("c0004r0002", "c0004r0002-20240901T100000Z"),
    );
    assert.equal(entry.result.acquired, "2024-09-01T10:00:00Z");
    assert.deepEqual([...entry.result.counts], await directCounts(model, tile.bytes));
  });

  test("lanemap ingest refuses acquisition times beyond the clock-skew tolerance in the future", async () => {
    await using nats = await natsFixture();
    await using dir = await tempDir();
    const env = testEnv(dir.path, { NATS_URL: nats.server.url });
    const tomorrow = new Date(Date.now() + 86_400_000).toISOString();
    const good = join(dir.path, "c0004r0003.tif");
    await writeFile(good, testTile(4, 3, "2024-09-01T10:00:00Z").bytes);
    // --acquired in the future: a usage error, exit 2, before anything is published.
    const flag = await runLanemap(["ingest", good, "--acquired", tomorrow], env);
    assert.equal(flag.code, 2, flag.stderr);
    assert.match(flag.stderr, /--acquired: acquisition time .* in the future .*at most 5 min of clock skew/);
    // A file whose own TIFF DateTime lies in the future: that file is refused (exit 1).
    const tagged = join(dir.path, "c0004r0004.tif");
    await writeFile(tagged, testTile(4, 4, tomorrow).bytes);
    const tag = await runLanemap(["ingest", tagged], env);
    assert.equal(tag.code, 1, tag.stderr);
    assert.match(tag.stderr, /refused .*c0004r0004\.tif: TILE_INVALID: acquisition time .* in the future/);
  });

  test("lanemap model activate validates, uploads and switches; model list marks the current one", async () => {
    await using nats = await natsFixture();
    await using dir = await tempDir();
    const env = testEnv(dir.path, { NATS_URL: nats.server.url });
    const model = await testModel(7);
    const file = join(dir.path, "model.json");
    await writeFile(file, serializeModel(model));
    const broken = join(dir.path, "broken.json");
    await writeFile(broken, serializeModel(model).replace(`"k": 7`, `"k": 9`));

    const bad = await runLanemap(["model", "activate", broken], env);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^lanemap: .*version/m);
    const registry = await NatsModelRegistry.open(nats.nc);
    assert.equal(await registry.current(), null, "a refused model changes nothing");

    const ok = await runLanemap(["model", "activate", file], env);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, new RegExp(`model ${model.version} is current \\(uploaded\\)`));
    assert.equal((await registry.current())?.version, model.version);

    const list = await runLanemap(["model", "list", "--json"], env);
    const listed = JSON.parse(list.stdout) as {
      current: { version: string };
      models: { version: string; k: number }[];
    };
    assert.equal(listed.current.version, model.version);
    assert.deepEqual(
      listed.models.map((m) => [m.version, m.k]),
      [[model.version, 7]],
    );
  });

  test("lanemap dlq list shows dead letters and dlq retry sends them back through the ingest stream", async () => {
    await using nats = await natsFixture();
    await using dir = await tempDir();
    await activateModel(nats.nc, await testModel());
    await using worker = await startSpeedWorker(testConfig(dir.path), { nc: nats.nc, logger: testLogger() });
    const failed: TileFailedEvent[] = [];
    worker.on((e) => e.type === "tile-failed" && failed.push(e));
    const env = testEnv(dir.path, { NATS_URL: nats.server.url });
    // A 4-band tile passes ingest's checks but not the 6-band model: it is dead-lettered by the worker.
    const four = testTile(1, 1, "2024-09-02T10:00:00Z", 4);
    const file = join(dir.path, "c0001r0001.tif");
    await writeFile(file, four.bytes);
    assert.equal((await runLanemap(["ingest", file], env)).code, 0);
    await waitFor("the dead letter", () => failed.length === 1);

    const listed = await runLanemap(["dlq", "list", "--json"], env);
    assert.equal(listed.code, 0, listed.stderr);
    const letters = JSON.parse(listed.stdout) as {
      seq: number;
      tileId: string;
      code: string;
      originalSeq: number;
    }[];
    assert.equal(letters.length, 1);
    assert.equal(letters[0]?.tileId, four.tileId);
    assert.equal(letters[0]?.code, "TILE_INVALID");

    const retried = await runLanemap(["dlq", "retry", "--all"], env);
    assert.equal(retried.code, 0, retried.stderr);
    assert.match(retried.stdout, /retried dead letter \d+ .* as ingest seq \d+/);
    // Still the wrong band count: dead-lettered again, under its new ingest sequence.
    await waitFor("the second dead letter", () => failed.length === 2);
    const [again] = await (await DeadLetterQueue.open(nats.nc)).list();
    assert.ok(again && again.originalSeq > (letters[0]?.originalSeq ?? 0));
  });
});
