/**
 * A stream batch run whose `lanemap worker`s are frozen (SIGSTOP) — issue 14, the operator's check
 * F1 and F5: a worker frozen past a tile's deadline and thawed does not fail that tile for good
 * (a missed deadline is tried once more, on a redelivery); and a run whose every worker is frozen
 * while holding its tasks fails BATCH_STALLED within the tasks' deadline plus LANEMAP_BATCH_STALL_S,
 * instead of counting the held tasks as work for ever. Real nats-server, real `lanemap` processes.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { readCurrentBatch } from "../../shared/adapters/archive/index.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import { makeDataDir, makeSampleSet, type SampleSet } from "./batch-fixture.js";
import { lanemap, testEnv } from "./speed-fixtures.js";

/** A 2 s tile deadline whatever the tile's size: the batch ack wait is then 7 s. */
const SHORT_DEADLINE = { LANEMAP_DECODE_TIMEOUT_MS: "2000", LANEMAP_DECODE_MS_PER_MSAMPLE: "0" };

describe("a stream batch run with frozen workers", { skip: natsMissing(), timeout: 240_000 }, () => {
  let set: SampleSet;
  before(async () => {
    set = await makeSampleSet({ width: 3, height: 2, tileSize: 64, seed: 11 });
  });
  after(() => set?.dispose());

  test("a worker frozen past a tile's deadline and thawed has the tile tried again: every tile is classified and the run exits 0", async () => {
    await using nats = await natsFixture();
    const d = await makeDataDir(set, "thawed");
    const env = testEnv(d.dataDir, {
      ...SHORT_DEADLINE,
      NATS_URL: nats.server.url,
      LANEMAP_LOG_LEVEL: "info",
      LANEMAP_BATCH_STALL_S: "60",
    });
    // Each tile holds its thread 1.5 s: a tile is in flight whenever the worker is frozen.
    await using worker = lanemap(["worker", "--name", "w1"], {
      ...env,
      LANEMAP_BATCH_WORKERS: "1",
      LANEMAP_TEST_TILE_DELAY_MS: "1500",
    });
    await worker.waitForLine("worker ready", (l) => l["msg"] === "worker ready: speed + batch", 60_000);
    await using run = lanemap(
      ["batch", "run", "--model", set.modelPath, "--executor", "stream", "--full", "--json"],
      env,
    );
    // Frozen just as its next tile starts, for twice that tile's deadline (less than the ack wait).
    await worker.waitForLine("a first tile", (l) => l["msg"] === "batch tile classified", 60_000);
    worker.child.kill("SIGSTOP");
    await sleep(4_000);
    worker.child.kill("SIGCONT");
    const code = await Promise.race([run.exited, sleep(120_000).then(() => "still running")]);
    assert.ok(
      worker.lines.some((l) => l["code"] === "DEADLINE"),
      "the frozen tile missed its deadline (the case under test happened)",
    );
    assert.equal(code, 0, run.stderr().trim().split("\n").pop());
    const report = JSON.parse(run.out.join("\n")) as {
      tiles: { total: number; failed: number };
      version: string;
      redeliveredTasks: number;
    };
    assert.equal(report.tiles.failed, 0, "no tile failed for the worker's pause");
    assert.equal(report.tiles.total, 6);
    assert.ok(report.redeliveredTasks >= 1, "the tile that missed its deadline came back on a redelivery");
    assert.equal((await readCurrentBatch(d.dataDir))?.name, report.version, "the full view is published");
  });

  test("a run whose every worker is frozen while holding its tasks fails BATCH_STALLED within the tasks' deadline plus LANEMAP_BATCH_STALL_S, naming the held tasks", async () => {
    await using nats = await natsFixture();
    const d = await makeDataDir(set, "frozen");
    const env = testEnv(d.dataDir, {
      ...SHORT_DEADLINE,
      NATS_URL: nats.server.url,
      LANEMAP_LOG_LEVEL: "info",
      LANEMAP_BATCH_STALL_S: "2",
      // A 5 s I/O margin instead of 60: nothing here waits on an election (the bound is the same rule).
      LANEMAP_BATCH_IO_MARGIN_S: "5",
    });
    await using worker = lanemap(["worker", "--name", "w1"], {
      ...env,
      LANEMAP_BATCH_WORKERS: "2",
      LANEMAP_TEST_TILE_DELAY_MS: "1500",
    });
    await worker.waitForLine("worker ready", (l) => l["msg"] === "worker ready: speed + batch", 60_000);
    await using run = lanemap(
      ["batch", "run", "--model", set.modelPath, "--executor", "stream", "--full"],
      env,
    );
    await worker.waitForLine("a first tile", (l) => l["msg"] === "batch tile classified", 60_000);
    worker.child.kill("SIGSTOP");
    const t0 = performance.now();
    try {
      // The bound: a task's deadline (2 s + the 5 s I/O margin) + the 2 s stall + polls and start.
      const code = await Promise.race([run.exited, sleep(60_000).then(() => "still running")]);
      const seconds = (performance.now() - t0) / 1000;
      assert.notEqual(code, "still running", "the run did not wait for the frozen worker for ever");
      assert.equal(code, 1);
      assert.ok(seconds < 40, `it gave up within the bound (${seconds.toFixed(1)} s)`);
      const last = run.stderr().trim().split("\n").pop() ?? "";
      assert.match(
        last,
        /^lanemap: BATCH_STALLED: workers hold \d+ tasks of the task queue in progress past their deadline/,
      );
      assert.match(last, /e\.g\. \S+/, "it names tiles of the held tasks");
      assert.ok(
        run.lines.some((l) => l["msg"] === "batch run failed" && l["code"] === "BATCH_STALLED"),
        "the failure carries the stable code BATCH_STALLED",
      );
      const waiting = run.lines.filter((l) => String(l["msg"]).startsWith("batch run waiting:"));
      assert.ok(waiting.length >= 1, "the coordinator said what it waited on");
      for (const l of waiting) {
        assert.equal(l["level"], 40, "at warn");
        assert.equal(
          Number(l["awaited"]) + Number(l["notPublished"]),
          Number(l["tilesLeft"]),
          `the figures add up: ${String(l["msg"])}`,
        );
      }
      assert.equal(await readCurrentBatch(d.dataDir), null, "nothing was published");
    } finally {
      worker.child.kill("SIGCONT");
    }
  });
});
