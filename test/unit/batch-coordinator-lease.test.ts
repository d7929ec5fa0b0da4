/**
 * The pure parts of the batch coordinator lease and of what `ops status` says about batch runs:
 * how a holder is named, when a holder counts its lease as lapsed, the TTL's configuration, and
 * which leftovers count as an abandoned run.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { batchRunsStatus, describeBatchRuns, formatAge, type BatchRunsInput } from "../../infra/ops/index.js";
import {
  BatchLeaseHeldError,
  BatchLeaseLostError,
  describeHolder,
  leaseStillHeld,
  refreshPeriodMs,
  type LeaseHolder,
} from "../../shared/adapters/nats/index.js";
import { ConfigError, ERROR_CODES, parseConfig } from "../../shared/index.js";

const holder: LeaseHolder = {
  host: "batch-b",
  pid: 4242,
  runId: "20261202T020000Z-abc123",
  startedAt: "2026-12-02T02:00:00.000Z",
  building: "v000008",
};

describe("the batch coordinator lease, pure parts", () => {
  test("a holder is named by host, pid, run, start and the version it builds, with its progress once known", () => {
    assert.equal(
      describeHolder(holder),
      "host batch-b, pid 4242, run 20261202T020000Z-abc123, started 2026-12-02T02:00:00.000Z, building v000008",
    );
    assert.equal(
      describeHolder({ ...holder, building: null, progress: { done: 12, total: 80 } }),
      "host batch-b, pid 4242, run 20261202T020000Z-abc123, started 2026-12-02T02:00:00.000Z, building a version not chosen yet (12 of 80 tiles done)",
    );
  });

  test("a refused start is BATCH_RUN_ACTIVE (exit 1, 409, as the data directory's lock) naming the holder; a lost lease is BATCH_LEASE_LOST, transient", () => {
    const held = new BatchLeaseHeldError(holder, 30_000);
    assert.equal(held.code, "BATCH_RUN_ACTIVE");
    assert.match(
      held.message,
      /^another batch coordinator holds the lease: host batch-b, pid 4242, .* building v000008; /,
    );
    assert.match(held.message, /expires 30 s after its holder stops refreshing it/);
    const lost = new BatchLeaseLostError("it expired");
    assert.equal(lost.code, "BATCH_LEASE_LOST");
    assert.deepEqual(
      [
        ERROR_CODES.BATCH_LEASE_LOST.exit,
        ERROR_CODES.BATCH_LEASE_LOST.status,
        ERROR_CODES.BATCH_LEASE_LOST.permanent,
      ],
      [1, 409, false],
    );
    assert.match(lost.message, /stopped before publishing and its checkpoint is kept/);
  });

  test("a holder counts its lease held strictly within the TTL since its last acknowledged refresh, and refreshes every third of it", () => {
    assert.equal(leaseStillHeld(29_999, 30_000), true);
    assert.equal(leaseStillHeld(30_000, 30_000), false);
    assert.equal(refreshPeriodMs(30_000), 10_000);
    assert.equal(refreshPeriodMs(1_000), 333);
  });

  test("LANEMAP_BATCH_LEASE_S is the lease's TTL: 30 s by default, whole seconds from 1 to 3600", () => {
    assert.equal(parseConfig({}).batch.leaseTtlMs, 30_000);
    assert.equal(parseConfig({ LANEMAP_BATCH_LEASE_S: "2" }).batch.leaseTtlMs, 2_000);
    assert.throws(() => parseConfig({ LANEMAP_BATCH_LEASE_S: "0" }), ConfigError);
    assert.throws(() => parseConfig({ LANEMAP_BATCH_LEASE_S: "1.5" }), ConfigError);
  });
});

describe("batch runs in ops status", () => {
  const now = new Date("2026-12-02T08:00:00.000Z");
  const leftovers: BatchRunsInput = {
    now,
    dataDir: "/var/lib/lanemap",
    lease: null,
    lock: null,
    checkpoints: [
      {
        runId: "20261202T020000Z-abc123",
        dir: "/var/lib/lanemap/views/batch/.staging/20261202T020000Z-abc123",
        modifiedAt: "2026-12-02T02:30:00.000Z",
        tiles: { done: 37, total: 80 },
      },
    ],
    reservations: [{ name: "v000008", holder: "run x (pid 1 on b)", reservedAt: "2026-12-02T07:00:00.000Z" }],
    tasks: new Map([["20261202T020000Z-abc123", 43]]),
  };

  test("with no lease and no lock, every checkpoint, reservation and waiting task is an abandoned run's, each with what to do", () => {
    const s = batchRunsStatus(leftovers);
    assert.deepEqual(s.active, []);
    assert.deepEqual(
      s.abandoned.map((p) => p.kind),
      ["checkpoint", "reservation", "tasks"],
    );
    assert.equal(s.advice.length, 3);
    assert.deepEqual(describeBatchRuns(s, formatAge).slice(0, 3), [
      "ABANDONED run 20261202T020000Z-abc123: checkpoint /var/lib/lanemap/views/batch/.staging/20261202T020000Z-abc123, 37 of 80 tiles done, last written 5h 30m ago",
      "ABANDONED reservation of v000008 by run x (pid 1 on b), 1h 0m old",
      "ABANDONED 43 task(s) of run 20261202T020000Z-abc123 on LANEMAP_BATCH_TASKS",
    ]);
    assert.match(
      describeBatchRuns(s, formatAge)[3]!,
      /^ {2}what to do: a rerun on this machine .* resumes the newest checkpoint; to discard it instead: `lanemap batch run --full` \(it recomputes every tile\), or rm -r /,
    );
  });

  test("a checkpoint whose run set is gone (killed while publishing) says its tiles done without a made-up total", () => {
    const s = batchRunsStatus({
      ...leftovers,
      checkpoints: [{ ...leftovers.checkpoints[0]!, tiles: { done: 296, total: null } }],
    });
    assert.match(
      describeBatchRuns(s, formatAge)[0]!,
      /, 296 tiles done, of a total it no longer records \(stopped while publishing, or before it listed its tiles\), last written/,
    );
  });

  test("a live lease or lock is a run in progress, and then nothing is called abandoned (the leftovers may be its own)", () => {
    const s = batchRunsStatus({
      ...leftovers,
      lease: { holder, refreshedAt: "2026-12-02T07:59:59.000Z", ttlS: 30 },
    });
    assert.deepEqual(
      s.active.map((a) => a.kind),
      ["lease"],
    );
    assert.deepEqual(s.abandoned, []);
    assert.deepEqual(describeBatchRuns(s, formatAge), [
      `coordinator lease held: ${describeHolder(holder)}; refreshed 2026-12-02T07:59:59.000Z (expires 30 s after its last refresh)`,
    ]);
    const locked = batchRunsStatus({
      ...leftovers,
      lock: { pid: 7, hostname: "batch-a", runId: "r1", startedAt: "2026-12-02T07:00:00.000Z" },
    });
    assert.deepEqual(locked.abandoned, []);
    assert.match(
      describeBatchRuns(locked, formatAge)[0]!,
      /^batch lock held in this data directory: run r1 \(pid 7 on batch-a, started .*, 1h 0m ago\)$/,
    );
  });

  test("nothing in progress and nothing left says so", () => {
    const s = batchRunsStatus({ ...leftovers, checkpoints: [], reservations: [], tasks: new Map() });
    assert.deepEqual(describeBatchRuns(s, formatAge), ["no batch run in progress, none abandoned"]);
  });
});
