/**
 * The batch coordinator lease on a real nats-server (issue 14: two machines' `lanemap-batch` units
 * both classified every tile, and the loser retried its conflict every tick). A held lease refuses
 * a second coordinator at once, naming the holder; the holder keeps it past its TTL by refreshing;
 * a holder that stops refreshing loses it after the TTL; a holder paused past its TTL, or whose
 * lease another coordinator took, stops before publishing with BATCH_LEASE_LOST, its checkpoint
 * kept (and one that lost it during its upload removes the upload again); a scheduled tick that
 * finds the lease held is skipped in one log line.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdir, stat, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Kvm } from "@nats-io/kv";
import {
  createBatchRunner,
  listCheckpoints,
  publishStagedView,
  scheduleBatchRuns,
} from "../../batch/index.js";
import {
  BATCH_LEASE_BUCKET,
  BATCH_LEASE_KEY,
  BatchLeaseHeldError,
  BatchLeaseLostError,
  BatchLeases,
  NatsPublishedViews,
} from "../../shared/adapters/nats/index.js";
import { BATCH_VIEW_FILES, LanemapError, dataPaths } from "../../shared/index.js";
import { processStartStamp } from "../../shared/util/process.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import { tempDir, waitFor } from "./speed-fixtures.js";
import { makeDataDir, makeSampleSet, testLogger, type SampleSet } from "./batch-fixture.js";

let set: SampleSet;
before(async () => {
  set = await makeSampleSet({ width: 2, height: 2 });
});
after(() => set?.dispose());

const skip = natsMissing();
const TTL_MS = 1_000;

/** Another coordinator's lease as a killed or remote one leaves it: a key nobody here refreshes. */
async function foreignLease(nc: Parameters<typeof BatchLeases.read>[0], runId: string): Promise<void> {
  const kv = await new Kvm(nc).open(BATCH_LEASE_BUCKET);
  await kv.create(
    BATCH_LEASE_KEY,
    JSON.stringify({
      host: "elsewhere",
      pid: 4242,
      runId,
      startedAt: "2026-12-02T02:00:00.000Z",
      building: "v000009",
    }),
  );
}

describe("the batch coordinator lease", { ...(skip ? { skip } : {}) }, () => {
  test("a held lease refuses a second coordinator naming its holder, stays held past its TTL while refreshed, and is free once released", async () => {
    await using nats = await natsFixture();
    const leases = await BatchLeases.open(nats.nc, { ttlMs: 2 * TTL_MS, logger: testLogger() });
    const a = await leases.acquire({
      runId: "run-a",
      startedAt: "2026-12-02T02:00:00.000Z",
      building: "v000003",
    });
    const refused = () =>
      assert.rejects(
        leases.acquire({ runId: "run-b", startedAt: "now", building: "v000003" }),
        (err: unknown) => {
          assert.ok(err instanceof BatchLeaseHeldError);
          assert.equal(err.code, "BATCH_RUN_ACTIVE");
          assert.match(
            err.message,
            new RegExp(
              `host ${hostname()}, pid ${process.pid}, run run-a, started 2026-12-02T02:00:00.000Z, building v000003`,
            ),
          );
          return true;
        },
      );
    await refused();
    // Four refreshes later (each a third of the TTL: longer than the TTL in all) it is still held.
    const first = (await BatchLeases.read(nats.nc))!.revision;
    await waitFor(
      "four refreshes",
      async () => ((await BatchLeases.read(nats.nc))?.revision ?? 0) >= first + 4,
    );
    await refused();
    assert.equal(a.signal.aborted, false);
    await a.release();
    assert.equal(await BatchLeases.read(nats.nc), null, "a clean end deletes the key");
    const b = await leases.acquire({ runId: "run-b", startedAt: "now", building: null });
    await b.release();
  });

  test("a holder that stops refreshing loses the lease after the TTL and another takes it; a holder paused past its TTL finds it lost", async () => {
    await using nats = await natsFixture();
    const leases = await BatchLeases.open(nats.nc, { ttlMs: TTL_MS, logger: testLogger() });
    await foreignLease(nats.nc, "killed-run");
    await assert.rejects(leases.acquire({ runId: "mine", startedAt: "now", building: null }), {
      code: "BATCH_RUN_ACTIVE",
    });
    // The server expires the killed holder's key (max_age); then the lease is free.
    await waitFor(
      "the killed holder's lease to expire",
      async () => (await BatchLeases.read(nats.nc)) === null,
    );
    const mine = await leases.acquire({ runId: "mine", startedAt: "now", building: null });

    // A pause of the whole process (a GC pause, SIGSTOP) longer than the TTL: no refresh can run.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, TTL_MS + 300);
    await assert.rejects(mine.confirm(), (err: unknown) => {
      assert.ok(err instanceof LanemapError);
      assert.equal(err.code, "BATCH_LEASE_LOST");
      assert.match(err.message, /not refreshed for \d+\.\d s, over its 1 s TTL/);
      assert.match(err.message, /stopped before publishing and its checkpoint is kept/);
      return true;
    });
    assert.ok(mine.signal.aborted);
    await mine.release();
  });

  test("a holder that finds its own record at a revision it did not write (the bucket's leader a copy that missed refreshes) carries on from it, in one warn line", async () => {
    await using nats = await natsFixture();
    const lines: { msg: string; [k: string]: unknown }[] = [];
    const leases = await BatchLeases.open(nats.nc, { ttlMs: 3_000, logger: testLogger(lines) });
    const mine = await leases.acquire({
      runId: "run-a",
      startedAt: "2026-12-03T07:00:00.000Z",
      building: "v000002",
    });
    // What a stale copy leading the bucket serves: this holder's own record, another revision.
    const kv = await new Kvm(nats.nc).open(BATCH_LEASE_BUCKET);
    const stored = (await kv.get(BATCH_LEASE_KEY))!;
    const stale = await kv.put(BATCH_LEASE_KEY, stored.value);
    await mine.confirm();
    assert.equal(mine.signal.aborted, false, "not lost: no other coordinator took it");
    const now = (await BatchLeases.read(nats.nc))!;
    assert.ok(now.revision > stale, "refreshed by a compare-and-set on the revision it found");
    assert.equal(now.holder.runId, "run-a");
    const line = lines.find((l) => /held this coordinator's own lease at revision/.test(l.msg));
    assert.ok(line, "said in a warn line");
    assert.equal(line["found"], stale);
    await assert.rejects(
      leases.acquire({ runId: "run-b", startedAt: "now", building: null }),
      { code: "BATCH_RUN_ACTIVE" },
      "still held against another run",
    );
    await mine.release();
    assert.equal(await BatchLeases.read(nats.nc), null);
  });

  test("a lease whose holder was a process of this machine that is gone is taken over at once; a live holder's and another machine's of the same host name are refused", async () => {
    await using nats = await natsFixture();
    const lines: { msg: string; [k: string]: unknown }[] = [];
    const leases = await BatchLeases.open(nats.nc, { ttlMs: 60_000, logger: testLogger(lines) });
    const kv = await new Kvm(nats.nc).open(BATCH_LEASE_BUCKET);
    const child = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
    const exited = once(child, "exit");
    const pid = child.pid!;
    const stamp = processStartStamp(pid);
    assert.ok(stamp, "this machine has /proc");
    const record = (processStart: string) =>
      JSON.stringify({
        host: hostname(),
        pid,
        runId: "killed-run",
        startedAt: "2026-12-03T07:00:00.000Z",
        building: "v000004",
        processStart,
      });
    await kv.create(BATCH_LEASE_KEY, record(stamp));
    await assert.rejects(
      leases.acquire({ runId: "mine", startedAt: "now", building: null }),
      { code: "BATCH_RUN_ACTIVE" },
      "its holder is alive",
    );
    child.kill("SIGKILL");
    await exited;
    const mine = await leases.acquire({ runId: "mine", startedAt: "now", building: null });
    assert.equal((await BatchLeases.read(nats.nc))?.holder.runId, "mine");
    const line = lines.find((l) => l.msg.startsWith("batch coordinator lease taken over"));
    assert.ok(line, "one warn line");
    assert.match(line.msg, new RegExp(`its pid ${pid} is dead on this host`));
    assert.match(String(line["was"]), /run killed-run/);
    await mine.release();

    // Same host name, another boot id: another machine (or this one before a reboot): not provable.
    await kv.create(
      BATCH_LEASE_KEY,
      record(`00000000-0000-4000-8000-000000000000/4026531836/${stamp.split("/")[2]!}`),
    );
    await assert.rejects(leases.acquire({ runId: "mine", startedAt: "now", building: null }), {
      code: "BATCH_RUN_ACTIVE",
    });
  });

  test("a run whose lease another coordinator took stops before publishing with BATCH_LEASE_LOST naming it, and keeps its checkpoint", async () => {
    await using nats = await natsFixture();
    const fx = await makeDataDir(set, "lease-taken");
    const views = await NatsPublishedViews.open(nats.nc, { cacheDir: join(fx.dataDir, "cache", "views") });
    // 3 s: a holder on a loaded machine keeps it until it is taken; a refresh each second notices that.
    const config = fx.config({ LANEMAP_BATCH_LEASE_S: "3", LANEMAP_BATCH_WORKERS: "1" });
    const runner = createBatchRunner(config, {
      logger: testLogger(),
      views,
      nc: nats.nc,
      hooks: { tileDelayMs: 400, publishDelayMs: 0 },
    });
    try {
      const run = runner.run({ model: set.modelPath });
      const held = await waitFor("the run's lease", () =>
        BatchLeases.read(nats.nc).then((s) => s ?? undefined),
      );
      assert.equal(held.holder.building, "v000001");
      // As the server does after the holder was paused past the TTL, and another coordinator starts.
      const kv = await new Kvm(nats.nc).open(BATCH_LEASE_BUCKET);
      await kv.purge(BATCH_LEASE_KEY);
      const leases = await BatchLeases.open(nats.nc, { ttlMs: 3_000, logger: testLogger() });
      const other = await leases.acquire({ runId: "the-other-run", startedAt: "now", building: "v000001" });
      await assert.rejects(run, (err: unknown) => {
        assert.ok(err instanceof LanemapError, String(err));
        assert.equal(err.code, "BATCH_LEASE_LOST", err.message);
        assert.match(err.message, /another coordinator took it \(host \S+, pid \d+, run the-other-run/);
        return true;
      });
      assert.equal(await views.current(), null, "nothing published");
      assert.deepEqual(await views.list(), []);
      assert.equal((await listCheckpoints(fx.dataDir)).length, 1, "the checkpoint is kept");
      assert.equal(
        (await BatchLeases.read(nats.nc))?.holder.runId,
        "the-other-run",
        "the lease it lost is left to the other",
      );
      assert.equal(other.signal.aborted, false);
      await other.release();
    } finally {
      await runner.close();
    }
  });

  test("a publisher whose lease is lost during its upload removes the upload, leaves CURRENT alone and puts its folder back as the checkpoint", async () => {
    await using nats = await natsFixture();
    await using data = await tempDir("lease-upload-");
    const views = await NatsPublishedViews.open(nats.nc, { cacheDir: join(data.path, "cache", "views") });
    const staging = join(dataPaths(data.path).batchStaging, "run-lost");
    await mkdir(staging, { recursive: true });
    for (const key of ["duckdb", "parquet", "arrow", "model"] as const)
      await writeFile(join(staging, BATCH_VIEW_FILES[key]), randomBytes(2_000));
    // Held when the publisher checks before reserving; lost when it asks again after the upload.
    let asked = 0;
    const holding = async () => {
      if (++asked > 1) throw new BatchLeaseLostError("it expired");
    };
    const draft = {
      watermark: 1,
      modelVersion: "m",
      startedAt: "2026-12-02T02:00:00.000Z",
      finishedAt: "2026-12-02T02:01:00.000Z",
      order: "hilbert",
      tiles: { total: 1, classified: 1, reused: 0, failed: 0 },
      cells: 1,
      failures: [],
    };
    await assert.rejects(
      publishStagedView(data.path, staging, draft, {
        logger: testLogger(),
        views,
        lease: { expected: null },
        holding,
      }),
      { code: "BATCH_LEASE_LOST" },
    );
    assert.equal(asked, 2, "asked before reserving and after the upload");
    assert.equal(await views.current(), null, "CURRENT never moved");
    assert.deepEqual(await views.list(), [], "the upload was removed");
    assert.deepEqual(await views.reservations(), [], "its number released");
    assert.ok(
      (await stat(join(staging, BATCH_VIEW_FILES.duckdb))).isFile(),
      "the checkpoint is back in staging",
    );
  });

  test("a scheduled tick while another machine's coordinator holds the lease is skipped in one log line naming it; the next tick runs and releases the lease", async () => {
    await using nats = await natsFixture();
    const fx = await makeDataDir(set, "lease-cron");
    const views = await NatsPublishedViews.open(nats.nc, { cacheDir: join(fx.dataDir, "cache", "views") });
    const config = fx.config({ LANEMAP_BATCH_LEASE_S: "30", LANEMAP_BATCH_CRON: "0 2 * * *" });
    const lines: { msg: string; level: number; err?: string }[] = [];
    const logger = testLogger(lines);
    const runner = createBatchRunner(config, { logger, views, nc: nats.nc });
    const schedule = scheduleBatchRuns(runner, config, { logger, options: { model: set.modelPath } });
    try {
      await BatchLeases.open(nats.nc, { ttlMs: 30_000, logger });
      await foreignLease(nats.nc, "nightly-on-b");
      assert.equal(await schedule.tick(), undefined);
      const said = lines.filter((l) => l.level >= 40);
      assert.equal(said.length, 1, JSON.stringify(said));
      assert.equal(said[0]!.msg, "scheduled batch run skipped: another run is active");
      assert.match(said[0]!.err ?? "", /host elsewhere, pid 4242, run nightly-on-b, .*building v000009/);
      assert.equal(await views.current(), null);

      await (await new Kvm(nats.nc).open(BATCH_LEASE_BUCKET)).purge(BATCH_LEASE_KEY);
      const report = await schedule.tick();
      assert.equal(report?.version, "v000001");
      assert.equal(await BatchLeases.read(nats.nc), null, "released at the run's end");
    } finally {
      await schedule.stop();
      await runner.close();
    }
  });
});
