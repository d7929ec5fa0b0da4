/**
 * `lanemap batch run` on two machines against one NATS store (LANEMAP_STORAGE=nats), as an operator
 * runs it (issue 14): real CLI processes, each with its own data directory, one nats-server. The
 * second coordinator is refused at its start, naming the first, while the first runs on and
 * publishes the only version; `ops status` names the holder. A SIGKILLed holder's lease expires
 * after its TTL (3 s here, LANEMAP_BATCH_LEASE_S), `ops status` then reports its abandoned
 * checkpoint, and a rerun takes over and resumes it. A `--full` rerun right after a holder killed
 * under a parent that has not reaped it (its pid still answers) takes over its lock and lease and
 * discards its checkpoint instead.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { hostname } from "node:os";
import { after, before, describe, test } from "node:test";
import type { NatsConnection } from "@nats-io/transport-node";
import { addArchiveFolder, type RunReport } from "../../batch/index.js";
import type { OpsStatus } from "../../infra/ops/index.js";
import { openModelRegistry } from "../../infra/platform/models.js";
import { openTileArchive } from "../../infra/platform/storage.js";
import { BatchLeases, NatsPublishedViews } from "../../shared/adapters/nats/index.js";
import { projectRoot } from "../helpers/env.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import { procState } from "../helpers/processes.js";
import { makeSampleSet, type SampleSet } from "./batch-fixture.js";
import { lanemap, runLanemap, tempDir, testConfig, testLogger, waitFor } from "./speed-fixtures.js";

let set: SampleSet;
before(async () => {
  set = await makeSampleSet({ width: 2, height: 2 });
});
after(() => set?.dispose());

const skip = natsMissing();

/** The lease once its holder's checkpoint holds two tiles (its progress is written after each commit). */
const leaseAtTwoTiles = (nc: NatsConnection) =>
  waitFor(
    "two tiles in the holder's checkpoint",
    async () => {
      const s = await BatchLeases.read(nc);
      return s && (s.holder.progress?.done ?? 0) >= 2 ? s : undefined;
    },
    30_000,
  );

describe("batch coordinators on two machines", { ...(skip ? { skip } : {}), timeout: 120_000 }, () => {
  /** A deployment on one nats-server: the sample archive in NATS, and each machine's environment. */
  async function deployment(nats: Awaited<ReturnType<typeof natsFixture>>, loadDir: string, leaseS: number) {
    const env = (dataDir: string, extra: Record<string, string> = {}) => ({
      LANEMAP_DATA_DIR: dataDir,
      NATS_URL: nats.server.url,
      LANEMAP_STORAGE: "nats",
      LANEMAP_BATCH_LEASE_S: String(leaseS),
      LANEMAP_BATCH_WORKERS: "1",
      LANEMAP_DECODE_TIMEOUT_MS: "10000",
      LANEMAP_LOG_LEVEL: "info",
      ...extra,
    });
    const archive = await openTileArchive(testConfig(loadDir, env(loadDir)), nats.nc, testLogger());
    await addArchiveFolder(archive, set.tilesDir, { logger: testLogger(), maxPixels: 1e8 });
    return env;
  }

  test("a second coordinator is refused at its start naming the first, which runs on and publishes the only version; ops status names the holder", async () => {
    await using nats = await natsFixture();
    await using a = await tempDir("lease-cli-a-");
    await using b = await tempDir("lease-cli-b-");
    await using c = await tempDir("lease-cli-c-");
    // Nothing here waits for an expiry: a TTL long enough that a loaded machine never loses it.
    const env = await deployment(nats, c.path, 30);

    await using first = lanemap(
      ["batch", "run", "--model", set.modelPath, "--json"],
      env(a.path, { LANEMAP_TEST_TILE_DELAY_MS: "600" }),
    );
    const held = await waitFor(
      "the first coordinator's lease",
      async () => (await BatchLeases.read(nats.nc)) ?? undefined,
    );
    assert.equal(held.holder.pid, first.child.pid);
    assert.equal(held.holder.building, "v000001");

    const second = await runLanemap(["batch", "run", "--model", set.modelPath], env(b.path));
    assert.equal(second.code, 1, second.stderr);
    const said = second.stderr.split("\n").filter((l) => l.startsWith("lanemap: "));
    assert.equal(said.length, 1, second.stderr);
    assert.match(
      said[0]!,
      new RegExp(
        `^lanemap: BATCH_RUN_ACTIVE: another batch coordinator holds the lease: host \\S+, pid ${first.child.pid}, run ${held.holder.runId}, started ${held.holder.startedAt}, building v000001`,
      ),
    );
    assert.doesNotMatch(second.stderr, /batch run started/, "refused before reading its run set");
    assert.equal(first.child.exitCode, null, "refused while the first still runs: not after a whole run");

    const status = await runLanemap(["ops", "status", "--json"], env(c.path));
    assert.equal(status.code, 0, status.stderr);
    const runs = (JSON.parse(status.stdout) as OpsStatus).batch.runs;
    assert.equal(runs.active.length, 1, status.stdout);
    const active = runs.active[0]!;
    assert.ok(active.kind === "lease");
    assert.equal(active.holder.runId, held.holder.runId);
    assert.deepEqual(runs.abandoned, []);

    assert.equal(await first.exited, 0, first.stderr());
    const report = JSON.parse(first.out.join("\n")) as RunReport;
    assert.equal(report.version, "v000001");
    const views = await NatsPublishedViews.open(nats.nc, { cacheDir: `${c.path}/cache/views` });
    assert.deepEqual(
      (await views.list()).map((v) => v.name),
      ["v000001"],
    );
    assert.equal(await BatchLeases.read(nats.nc), null, "the holder deleted its lease at its end");
  });

  test("a SIGKILLed holder's lease expires after its TTL; ops status then reports its abandoned checkpoint, and a rerun takes over and resumes it", async () => {
    await using nats = await natsFixture();
    await using a = await tempDir("lease-cli-kill-");
    await using c = await tempDir("lease-cli-ops-");
    // Short, as an expiry is waited for; long enough for a holder on a loaded machine to keep it.
    const env = await deployment(nats, c.path, 3);

    await using killed = lanemap(
      ["batch", "run", "--model", set.modelPath],
      env(a.path, { LANEMAP_TEST_TILE_DELAY_MS: "500" }),
    );
    // Its lease's progress is written after each tile's checkpoint write is committed.
    const held = await leaseAtTwoTiles(nats.nc);
    killed.child.kill("SIGKILL");
    await killed.exited;
    await waitFor(
      "the killed holder's lease to expire",
      async () => (await BatchLeases.read(nats.nc)) === null,
    );

    const status = await runLanemap(["ops", "status", "--json"], env(a.path));
    assert.equal(status.code, 0, status.stderr);
    const runs = (JSON.parse(status.stdout) as OpsStatus).batch.runs;
    assert.deepEqual(runs.active, []);
    const checkpoint = runs.abandoned.find((p) => p.kind === "checkpoint");
    assert.ok(checkpoint?.kind === "checkpoint", status.stdout);
    assert.equal(checkpoint.runId, held.holder.runId);
    assert.ok((checkpoint.tiles?.done ?? 0) >= 2, JSON.stringify(checkpoint));
    assert.equal(checkpoint.tiles?.total, 4);
    assert.ok(runs.advice.some((l) => /rerun .* resumes the newest checkpoint/.test(l)));
    const rerun = await runLanemap(["batch", "run", "--model", set.modelPath, "--json"], env(a.path));
    assert.equal(rerun.code, 0, rerun.stderr);
    const report = JSON.parse(rerun.stdout) as RunReport;
    assert.equal(report.version, "v000001");
    assert.equal(report.resumedFrom, held.holder.runId);
    assert.ok(report.tiles.resumed >= 2, JSON.stringify(report.tiles));
    assert.equal(report.tiles.resumed + report.tiles.classified, 4);
  });

  test("a --full rerun right after a SIGKILLed holder, still a zombie, takes over its lock with one warn line and discards its checkpoint with one line", async () => {
    await using nats = await natsFixture();
    await using a = await tempDir("lease-cli-full-");
    await using c = await tempDir("lease-cli-full-ops-");
    const env = await deployment(nats, c.path, 3);
    // The holder's parent execs into `sleep`, which never reaps it: once killed it stays a zombie,
    // as under a supervisor that has not waited for it yet, and its pid still answers kill(pid, 0).
    const holderLine = `"${process.execPath}" "${join(projectRoot, "infra", "bin", "lanemap.js")}" batch run --model "${set.modelPath}" >/dev/null 2>&1 & echo $!; exec sleep 120`;
    const parent = spawn("sh", ["-c", holderLine], {
      env: { ...process.env, ...env(a.path, { LANEMAP_TEST_TILE_DELAY_MS: "500" }) },
      stdio: ["ignore", "pipe", "ignore"],
    });
    await using _parent = {
      [Symbol.asyncDispose]: async () => void parent.kill("SIGKILL"),
    };
    const pid = await new Promise<number>((resolve) =>
      parent.stdout.once("data", (d: Buffer) => resolve(Number(d.toString().trim()))),
    );
    const held = await leaseAtTwoTiles(nats.nc);
    assert.equal(held.holder.pid, pid);
    process.kill(pid, "SIGKILL");
    await waitFor("the killed holder to be a zombie", () => procState(pid) === "Z");
    await waitFor(
      "the killed holder's lease to expire",
      async () => (await BatchLeases.read(nats.nc)) === null,
    );
    assert.equal(procState(pid), "Z", "still a zombie when the rerun starts");

    const rerun = await runLanemap(
      ["batch", "run", "--full", "--model", set.modelPath, "--json"],
      env(a.path),
    );
    assert.equal(rerun.code, 0, rerun.stderr);
    const lines = rerun.stderr.split("\n");
    const broke = lines.filter((l) => l.includes("broke a stale batch lock"));
    assert.equal(broke.length, 1, rerun.stderr);
    assert.match(broke[0]!, new RegExp(`of run ${held.holder.runId} \\(pid ${pid} on .*zombie`));
    const dropped = lines.filter((l) => l.includes("discarded the checkpoint"));
    assert.equal(dropped.length, 1, rerun.stderr);
    assert.match(
      dropped[0]!,
      new RegExp(
        `--full: discarded the checkpoint of interrupted run ${held.holder.runId} \\([2-4] of 4 tiles done, last written \\d+ s ago\\)`,
      ),
    );
    const report = JSON.parse(rerun.stdout) as RunReport;
    assert.equal(report.version, "v000001");
    assert.equal(report.resumedFrom, undefined);
    assert.deepEqual([report.tiles.resumed, report.tiles.classified], [0, 4]);
  });

  test("lanemap serve answers POST /v1/batch/runs with a 409 naming the holder while another machine's coordinator holds the lease, before any run starts; once free, a 202 for a run that holds it, and a second POST meanwhile names that run as before", async () => {
    await using nats = await natsFixture();
    await using s = await tempDir("lease-serve-");
    await using c = await tempDir("lease-serve-load-");
    const env = await deployment(nats, c.path, 30);
    // The run serve starts needs an active model; with no `lanemap worker` it then waits, active.
    const models = await openModelRegistry(testConfig(c.path, env(c.path)), nats.nc);
    await models.put(set.model);
    await models.activate(set.model.version);
    // Another machine's coordinator, as `lanemap batch run` takes the lease (the adapter itself).
    const leases = await BatchLeases.open(nats.nc, { ttlMs: 30_000, logger: testLogger() });
    const other = await leases.acquire({
      runId: "20261202T020000Z-abc123",
      startedAt: "2026-12-02T02:00:00.000Z",
      building: "v000008",
    });
    const token = "an-operator-token-of-some-length";
    await using serve = lanemap(
      ["serve", "--port", "0"],
      env(s.path, { LANEMAP_OPERATOR_TOKEN: token, LANEMAP_BATCH_EXECUTOR: "stream" }),
    );
    const line = await serve.waitForLine(
      "lanemap serving at",
      (l) => typeof l["text"] === "string" && l["text"].startsWith("lanemap serving at "),
      60_000,
    );
    const url = /lanemap serving at (http:\/\/\S+)/.exec(String(line["text"]))![1]!;
    const post = () =>
      fetch(`${url}/v1/batch/runs`, { method: "POST", headers: { authorization: `Bearer ${token}` } });
    try {
      const refused = await post();
      const body = (await refused.json()) as Record<string, unknown>;
      assert.equal(refused.status, 409, JSON.stringify(body));
      assert.equal(refused.headers.get("content-type"), "application/problem+json; charset=utf-8");
      assert.equal(body["type"], "/problems/batch-run-active", "the code BATCH_RUN_ACTIVE");
      // The same facts as the CLI's line: host, pid, run, started, the version being built.
      assert.match(
        String(body["detail"]),
        new RegExp(
          `^another batch coordinator holds the lease: host \\S+, pid ${process.pid}, run 20261202T020000Z-abc123, started 2026-12-02T02:00:00.000Z, building v000008`,
        ),
      );
      assert.deepEqual(
        body["holder"],
        {
          host: hostname(),
          pid: process.pid,
          runId: "20261202T020000Z-abc123",
          startedAt: "2026-12-02T02:00:00.000Z",
          building: "v000008",
        },
        "the holder as fields",
      );
      assert.equal(body["active_run_id"], undefined, "no run of this server to follow");
      assert.equal((await BatchLeases.read(nats.nc))?.holder.runId, "20261202T020000Z-abc123");
      assert.ok(
        !serve.lines.some((l) => l["msg"] === "batch run triggered"),
        "nothing was started in the background",
      );

      await other.release();
      const accepted = await post();
      const run = (await accepted.json()) as { runId: string };
      assert.equal(accepted.status, 202, JSON.stringify(run));
      const lease = await BatchLeases.read(nats.nc);
      assert.equal(lease?.holder.runId, run.runId, "the run accepted held the lease when it was answered");
      assert.equal(lease?.holder.pid, serve.child.pid);
      // A run already going in this serve process: refused as before, by its own lock, naming it.
      const again = await post();
      const active = (await again.json()) as Record<string, unknown>;
      assert.equal(again.status, 409, JSON.stringify(active));
      assert.equal(active["type"], "/problems/batch-run-active");
      assert.equal(active["active_run_id"], run.runId);
      assert.equal(active["detail"], `batch run ${run.runId} is active`);
    } finally {
      await other.release();
    }
  });
});
