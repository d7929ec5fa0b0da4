/**
 * "Use your own scenes" as the README walks it, with real Landsat scenes from ../shared/data: train
 * stores into the data directory's model registry and activates, archive add takes .gtif and --acquired and warns about a band
 * layout no model fits, and the batch run's exit code and `ops status` say that a tile failed.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { FileModelRegistry } from "../../shared/adapters/archive/index.js";
import { missing, projectRoot, sharedData } from "../helpers/env.js";

const CLI = join(projectRoot, "infra", "bin", "lanemap.js");

function lanemap(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    encoding: "utf8",
    cwd: projectRoot,
    env: { ...process.env, LANEMAP_LOG_LEVEL: "error" },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("using your own scenes", { skip: missing({ shared: true }) }, () => {
  let work = "";
  let data = "";
  const chiapas = "LE70220491999322EDC01_stack.gtif";
  before(() => {
    work = mkdtempSync(join(tmpdir(), "lanemap-own-scenes-"));
    data = join(work, "data");
    mkdirSync(join(work, "scenes"));
    mkdirSync(join(work, "olinda"));
    copyFileSync(sharedData("chiapas-l7-labels", chiapas) as string, join(work, "scenes", chiapas));
    copyFileSync(sharedData("olinda-l7", "L7_ETMs.tif") as string, join(work, "scenes", "L7_ETMs.tif"));
    copyFileSync(sharedData("olinda-l7", "L7_ETMs.tif") as string, join(work, "olinda", "L7_ETMs.tif"));
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  test("train --activate stores the model in the data directory's registry and makes it the active one", async () => {
    const r = lanemap(
      "train",
      "--tiles",
      join(work, "scenes", chiapas),
      "--train",
      sharedData("chiapas-l7-labels", "training_data.geojson") as string,
      "--red",
      "3",
      "--nir",
      "4",
      "--activate",
      "--data-dir",
      data,
      "--json",
    );
    assert.equal(r.status, 0, r.stderr);
    const summary = JSON.parse(r.stdout) as {
      model: string;
      activated: boolean;
      registry: string | null;
      out: string | null;
    };
    assert.equal(summary.out, null);
    assert.equal(summary.activated, true);
    assert.equal(summary.registry, "files");
    const registry = await FileModelRegistry.open(data);
    assert.equal((await registry.active())?.version, summary.model);
    assert.match((await registry.get(summary.model))?.trainedBy ?? "", /lanemap train/);
  });

  test("archive add takes .gtif, names --acquired when a file has no date, and takes --acquired", async () => {
    const first = lanemap("archive", "add", join(work, "scenes"), "--data-dir", data);
    assert.equal(first.status, 0, first.stderr);
    assert.match(first.stdout, /1 added, 0 already present, 1 bad \(of 2 files/);
    assert.match(
      first.stdout,
      /added {2}LE70220491999322EDC01_stack\.gtif {2}tile LE70220491999322EDC01_stack-19991118T000000Z, 8 bands/,
    );
    assert.match(
      first.stdout,
      /bad {2}L7_ETMs\.tif {2}TILE_INVALID: no acquisition time: give one with --acquired \(lanemap archive add/,
    );

    const dated = lanemap(
      "archive",
      "add",
      join(work, "olinda"),
      "--acquired",
      "2001-08-09T12:30:00Z",
      "--data-dir",
      data,
    );
    assert.equal(dated.status, 0, dated.stderr);
    assert.match(dated.stdout, /added {2}L7_ETMs\.tif {2}tile L7_ETMs-20010809T123000Z, 6 bands/);
    // The warning names the model batch runs apply and the directory the registry really is in.
    const active = (await (await FileModelRegistry.open(data)).active())?.version ?? "";
    const want = `warning: L7_ETMs.tif has 6 bands; the registry's active model ${active} expects 8 (in ${join(data, "models")})`;
    assert.ok(dated.stderr.includes(want), `${dated.stderr} names ${want}`);
  });

  test("a batch run with a failed tile publishes the rest, lists it, exits 1, and ops status counts it", () => {
    const run = lanemap("batch", "run", "--data-dir", data, "--workers", "1");
    assert.equal(run.status, 1, run.stderr);
    assert.match(run.stdout, /2 total: 1 classified, 0 reused, 0 resumed from checkpoint, 1 failed/);
    assert.match(
      run.stdout,
      /failed L7_ETMs-20010809T123000Z {2}TILE_INVALID: the raster has 6 bands, the feature spec expects 8/,
    );
    assert.match(run.stderr, /lanemap: BATCH_TILES_FAILED: 1 of 2 tiles failed and are not in v000001/);
    const status = lanemap("ops", "status", "--data-dir", data, "--json");
    const body = JSON.parse(status.stdout) as { batch: { current: { tiles: { failed: number } } } };
    assert.equal(body.batch.current.tiles.failed, 1);
  });
});
