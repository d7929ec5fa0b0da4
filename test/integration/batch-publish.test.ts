import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { addArchiveFolder, applyRetention, createBatchRunner, rollbackBatchView } from "../../batch/index.js";
import {
  listBatchVersions,
  readBatchVersion,
  readCurrentPointer,
} from "../../shared/adapters/archive/index.js";
import { DuckDbDatabase } from "../../shared/adapters/duckdb/index.js";
import { BATCH_VIEW_FILES, dataPaths } from "../../shared/index.js";
import { generateTile } from "../../sample/index.js";
import { lanemap, makeDataDir, makeSampleSet, type SampleSet } from "./batch-fixture.js";

let set: SampleSet;
before(async () => {
  set = await makeSampleSet();
});
after(() => set?.dispose());

const names = async (dataDir: string) => (await listBatchVersions(dataDir)).map((v) => v.name);

describe("publishing batch views", () => {
  test("rollback points CURRENT at an older complete version and refuses unknown or incomplete ones", async () => {
    const fx = await makeDataDir(set, "rollback");
    const runner = createBatchRunner(fx.config(), { logger: fx.logger });
    await runner.run();
    await runner.run({ full: true });
    assert.equal(await readCurrentPointer(fx.dataDir), "v000002");

    const v = await rollbackBatchView(fx.dataDir, "1");
    assert.equal(v.name, "v000001");
    assert.equal(await readCurrentPointer(fx.dataDir), "v000001");
    await assert.rejects(
      rollbackBatchView(fx.dataDir, "v000042"),
      /v000042 does not exist; complete versions: v000001, v000002/,
    );
    mkdirSync(join(dataPaths(fx.dataDir).batchViews, "v000007"));
    await assert.rejects(rollbackBatchView(fx.dataDir, "v000007"), /v000007 is incomplete/);
    await assert.rejects(rollbackBatchView(fx.dataDir, "latest"), /not a batch view version/);
    assert.equal(await readCurrentPointer(fx.dataDir), "v000001", "a refused rollback changes nothing");

    // The same through the CLI: list marks CURRENT, rollback moves it, errors are one line and exit 1.
    const list = lanemap(["views", "list", "--json", "--data-dir", fx.dataDir]);
    assert.equal((await list.exited).code, 0, list.stderr());
    const listed = JSON.parse(list.stdout()) as {
      name: string;
      current: boolean;
      tiles: { total: number };
      modelVersion: string;
    }[];
    assert.deepEqual(
      listed.map((l) => [l.name, l.current, l.tiles.total, l.modelVersion]),
      [
        ["v000001", true, 9, set.model.version],
        ["v000002", false, 9, set.model.version],
      ],
    );
    const forward = lanemap(["views", "rollback", "v000002", "--data-dir", fx.dataDir]);
    assert.equal((await forward.exited).code, 0, forward.stderr());
    assert.match(forward.stdout(), /CURRENT -> v000002/);
    const bad = lanemap(["views", "rollback", "v000042", "--data-dir", fx.dataDir]);
    assert.equal((await bad.exited).code, 1);
    assert.match(bad.stderr(), /^lanemap: VIEW_NOT_FOUND: batch view v000042 does not exist/m);
    const table = lanemap(["views", "list", "--data-dir", fx.dataDir]);
    assert.equal((await table.exited).code, 0);
    assert.match(table.stdout(), /^\*\s+v000002/m);
  });

  test("retention keeps the newest complete versions and the current one, and removes stale staging and incomplete folders", async () => {
    const fx = await makeDataDir(set, "retention");
    const runner = createBatchRunner(fx.config({ LANEMAP_BATCH_KEEP: "2" }), { logger: fx.logger });
    await runner.run();
    await runner.run();
    await runner.run();
    assert.deepEqual(await names(fx.dataDir), ["v000002", "v000003"], "keep = 2 after every run");

    await rollbackBatchView(fx.dataDir, "v000002");
    const paths = dataPaths(fx.dataDir);
    mkdirSync(join(paths.batchStaging, "20000101T000000Z-dead00"), { recursive: true });
    mkdirSync(join(paths.batchViews, "v000001"));
    const report = await applyRetention(fx.dataDir, 1, { logger: fx.logger });
    assert.deepEqual(
      await names(fx.dataDir),
      ["v000002", "v000003"],
      "the current version survives keep = 1",
    );
    assert.deepEqual(report.deletedIncomplete, ["v000001"]);
    assert.deepEqual(report.deletedStaging, ["20000101T000000Z-dead00"]);

    await rollbackBatchView(fx.dataDir, "v000003");
    await applyRetention(fx.dataDir, 1, { logger: fx.logger });
    assert.deepEqual(await names(fx.dataDir), ["v000003"]);
    const next = await runner.run();
    assert.equal(next.version, "v000004", "version numbers never repeat");
  });

  test("readers polling during a publish see the old version or the new one, never a mix", async () => {
    const fx = await makeDataDir(set, "readers");
    const runner = createBatchRunner(fx.config(), {
      logger: fx.logger,
      hooks: { tileDelayMs: 0, publishDelayMs: 200 },
    });
    await runner.run();
    // A tenth tile, so the two versions differ in their tile count as well as their name.
    const fresh = generateTile({
      seed: 7,
      col: 0,
      row: 2,
      tileSize: 64,
      acquired: "2033-03-03T03:03:03.000Z",
    });
    const dir = join(set.root, "readers-new");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `${fresh.cell}.tif`), fresh.bytes);
    await addArchiveFolder(fx.store, dir, { logger: fx.logger, maxPixels: 1e8 });

    const seen: string[] = [];
    let publishing = true;
    const reader = (async () => {
      while (publishing) {
        const name = await readCurrentPointer(fx.dataDir);
        assert.ok(name);
        const v = await readBatchVersion(fx.dataDir, name);
        assert.ok(v, `CURRENT (${name}) always names a complete version`);
        const db = await DuckDbDatabase.open(join(v.dir, BATCH_VIEW_FILES.duckdb), { readOnly: true });
        try {
          const [row] = await db.all<{ n: bigint; reused: bigint | null }>(
            "SELECT count(*) AS n, sum(CASE WHEN reused THEN 1 ELSE 0 END) AS reused FROM tiles",
          );
          assert.equal(
            Number(row!.n),
            v.manifest.tiles.classified + v.manifest.tiles.reused,
            `${name}: tiles match its manifest`,
          );
          assert.equal(Number(row!.reused ?? 0n), v.manifest.tiles.reused);
          const manifestOnDisk = JSON.parse(readFileSync(join(v.dir, BATCH_VIEW_FILES.manifest), "utf8")) as {
            name: string;
          };
          assert.equal(manifestOnDisk.name, name);
        } finally {
          db.closeSync();
        }
        if (seen.at(-1) !== name) seen.push(name);
        await new Promise((r) => setImmediate(r));
      }
    })();
    try {
      const report = await runner.run();
      assert.equal(report.version, "v000002");
      assert.deepEqual([report.tiles.classified, report.tiles.reused], [1, 9]);
    } finally {
      publishing = false;
      await reader;
    }
    assert.equal(seen[0], "v000001");
    assert.ok(
      seen.length <= 2 && (seen.length === 1 || seen[1] === "v000002"),
      `seen in order: ${seen.join(" -> ")}`,
    );
    assert.ok(!existsSync(join(dataPaths(fx.dataDir).batchViews, "v000002", "view.duckdb.wal")));
  });
});
