import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, writeFileSync, copyFileSync } from "node:fs";
import { hostname } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { addArchiveFolder, batchLockPath, createBatchRunner, type RunReport } from "../../batch/index.js";
import { listBatchVersions, readCurrentPointer } from "../../shared/adapters/archive/index.js";
import { dataPaths } from "../../shared/index.js";
import { generateTile } from "../../sample/index.js";
import { missing, sharedData } from "../helpers/env.js";
import { lanemap, makeDataDir, makeSampleSet, type SampleSet } from "./batch-fixture.js";

let set: SampleSet;
before(async () => {
  set = await makeSampleSet();
});
after(() => set?.dispose());

const names = async (dataDir: string) => (await listBatchVersions(dataDir)).map((v) => v.name);

/** A slow `lanemap batch run` (400 ms a tile) SIGKILLed once it wrote its first checkpoint; how it exited. */
async function killedAfterCheckpoint(dataDir: string) {
  const slow = lanemap(["batch", "run", "--data-dir", dataDir, "--workers", "1"], {
    LANEMAP_TEST_TILE_DELAY_MS: "400",
    LANEMAP_LOG_LEVEL: "debug",
  });
  await slow.waitForStderr('"msg":"checkpoint written"');
  slow.child.kill("SIGKILL");
  return slow.exited;
}

/** `lanemap batch run --json` to completion; returns the report. */
async function runToEnd(
  dataDir: string,
  env: Record<string, string> = {},
  extra: string[] = [],
): Promise<RunReport> {
  const p = lanemap(["batch", "run", "--json", "--data-dir", dataDir, ...extra], env);
  const { code } = await p.exited;
  assert.equal(code, 0, p.stderr());
  return JSON.parse(p.stdout()) as RunReport;
}

describe("batch runs in real processes", () => {
  test("a run SIGKILLed mid-run publishes nothing, and the rerun resumes from its checkpoint and publishes", async () => {
    const fx = await makeDataDir(set, "kill-run");
    assert.equal((await killedAfterCheckpoint(fx.dataDir)).signal, "SIGKILL");

    assert.equal(await readCurrentPointer(fx.dataDir), null, "nothing is current");
    assert.deepEqual(await names(fx.dataDir), [], "no version was published");
    assert.equal(
      readdirSync(dataPaths(fx.dataDir).batchStaging).length,
      1,
      "the staging folder is the checkpoint",
    );

    const report = await runToEnd(fx.dataDir);
    assert.equal(report.version, "v000001");
    assert.ok(report.tiles.resumed >= 1, `resumed ${report.tiles.resumed}`);
    assert.equal(report.tiles.resumed + report.tiles.classified, 9);
    assert.ok(report.resumedFrom, "the report names the interrupted run");
    assert.match(report.resumedFrom, /^\d{8}T\d{6}Z-[0-9a-f]{6}$/);
    assert.deepEqual(readdirSync(dataPaths(fx.dataDir).batchStaging), [], "the checkpoint was consumed");
  });

  test("a --full run after a SIGKILLed run discards its checkpoint with one line saying what it dropped, and recomputes every tile", async () => {
    const fx = await makeDataDir(set, "kill-full");
    await killedAfterCheckpoint(fx.dataDir);
    const [interrupted] = readdirSync(dataPaths(fx.dataDir).batchStaging);
    assert.ok(interrupted, "the killed run left its checkpoint");

    const full = lanemap(["batch", "run", "--json", "--full", "--data-dir", fx.dataDir]);
    assert.equal((await full.exited).code, 0, full.stderr());
    const report = JSON.parse(full.stdout()) as RunReport;
    assert.equal(report.resumedFrom, undefined, "nothing resumed");
    assert.deepEqual([report.tiles.resumed, report.tiles.reused, report.tiles.classified], [0, 0, 9]);
    const said = full
      .stderr()
      .split("\n")
      .filter((l) => l.includes("discarded the checkpoint"));
    assert.equal(said.length, 1, full.stderr());
    assert.match(
      said[0]!,
      new RegExp(
        `"msg":"--full: discarded the checkpoint of interrupted run ${interrupted} \\(([1-8]) of 9 tiles done, last written \\d+ s ago\\); every tile is recomputed"`,
      ),
    );
    assert.doesNotMatch(full.stderr(), /resuming an interrupted batch run/);
    assert.deepEqual(readdirSync(dataPaths(fx.dataDir).batchStaging), [], "no checkpoint is left");
  });

  test("a run SIGKILLed mid-publish leaves CURRENT and the published versions unchanged, and the rerun publishes", async () => {
    const fx = await makeDataDir(set, "kill-publish");
    // The published version and the added tile before the kill are set-up, not what this case is
    // about: made in this process (a `lanemap` process each cost 3-5 s at load 15 on 2 cores).
    const first = await createBatchRunner(fx.config(), { logger: fx.logger }).run();
    assert.equal(first.version, "v000001");
    const fresh = generateTile({
      seed: 7,
      col: 2,
      row: 2,
      tileSize: 64,
      acquired: "2034-04-04T04:04:04.000Z",
    });
    const dir = join(set.root, "kill-publish-new");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `${fresh.cell}.tif`), fresh.bytes);
    const added = await addArchiveFolder(fx.store, dir, { logger: fx.logger, maxPixels: 1e8 });
    assert.equal(added.added, 1);

    const slow = lanemap(["batch", "run", "--data-dir", fx.dataDir], {
      LANEMAP_TEST_PUBLISH_DELAY_MS: "30000",
    });
    await slow.waitForStderr("pausing before the publish rename");
    slow.child.kill("SIGKILL");
    await slow.exited;
    assert.equal(await readCurrentPointer(fx.dataDir), "v000001");
    assert.deepEqual(await names(fx.dataDir), ["v000001"]);

    const second = await runToEnd(fx.dataDir);
    assert.equal(second.version, "v000002");
    assert.equal(second.tiles.resumed, 1, "the new tile was taken from the checkpoint");
    assert.deepEqual([second.tiles.classified, second.tiles.reused], [0, 9]);
    assert.equal(await readCurrentPointer(fx.dataDir), "v000002");
  });

  test("of two concurrent runs the second is refused with a clear error, and a lock left by a dead process is broken", async () => {
    const fx = await makeDataDir(set, "overlap");
    const slow = lanemap(["batch", "run", "--data-dir", fx.dataDir], { LANEMAP_TEST_TILE_DELAY_MS: "1000" });
    await slow.waitForStderr('"msg":"batch run started"');
    const second = lanemap(["batch", "run", "--data-dir", fx.dataDir]);
    assert.equal((await second.exited).code, 1);
    assert.match(
      second.stderr(),
      /^lanemap: BATCH_RUN_ACTIVE: a batch run is already active: run \S+ \(pid \d+ on /m,
    );
    assert.equal((await slow.exited).code, 0, slow.stderr());

    const dead = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], {
      encoding: "utf8",
    });
    const lock = batchLockPath(fx.dataDir);
    mkdirSync(dirname(lock), { recursive: true });
    writeFileSync(
      lock,
      JSON.stringify({
        pid: Number(dead.stdout),
        hostname: hostname(),
        runId: "crashed",
        startedAt: new Date().toISOString(),
      }),
    );
    const after = lanemap(["batch", "run", "--data-dir", fx.dataDir]);
    assert.equal((await after.exited).code, 0, after.stderr());
    assert.match(
      after.stderr(),
      /broke a stale batch lock of run crashed \(pid \d+ on \S+\): its pid \d+ is dead on this host/,
    );
    assert.deepEqual(await names(fx.dataDir), ["v000001", "v000002"]);
  });

  test("archive add prints a summary, records bad tiles, and fails only when nothing could be read", async (t) => {
    const fx = await makeDataDir(set, "cli-archive");
    const again = lanemap(["archive", "add", set.tilesDir, "--data-dir", fx.dataDir]);
    assert.equal((await again.exited).code, 0, again.stderr());
    assert.match(again.stdout(), /0 added, 9 already present, 0 bad \(of 9 files/);

    const noDir = lanemap(["archive", "add", join(set.root, "nope"), "--data-dir", fx.dataDir]);
    assert.equal((await noDir.exited).code, 2);
    const empty = join(set.root, "empty");
    mkdirSync(empty, { recursive: true });
    const none = lanemap(["archive", "add", empty, "--data-dir", fx.dataDir]);
    assert.equal((await none.exited).code, 1);
    assert.match(none.stderr(), /no GeoTIFF files/);

    const reason = missing({ shared: true });
    if (reason) return t.skip(`broken-file part: ${reason}`);
    const broken = join(set.root, "only-broken");
    mkdirSync(broken, { recursive: true });
    for (const name of ["no_ifd0.tif", "wrong_version.tif"])
      copyFileSync(sharedData("broken", name)!, join(broken, name));
    const bad = lanemap(["archive", "add", broken, "--data-dir", fx.dataDir]);
    assert.equal((await bad.exited).code, 1);
    assert.match(bad.stdout(), /0 added, 0 already present, 2 bad/);
    assert.match(bad.stdout(), /bad {2}no_ifd0\.tif {2}\w+: /);
    assert.match(bad.stderr(), /none of the 2 files/);
  });
});
