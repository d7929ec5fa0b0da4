/**
 * Two batch coordinators on one NATS store (issue 14, an operator's finding: the `lanemap-batch`
 * unit enabled on two machines). Both computed the same next version number and uploaded into the
 * same bucket; the loser failed 30 s later with a bare "timeout", its chunks mixed into the
 * winner's version. Now a version number is reserved (a KV create) before anything is written
 * under it, a publisher whose lease on CURRENT is stale stops before it uploads, and one that
 * loses the pointer move removes its upload again: exactly one version becomes current, holding
 * exactly its own files, and the other coordinator keeps its checkpoint.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { Objm } from "@nats-io/obj";
import { connect } from "@nats-io/transport-node";
import pino from "pino";
import { applyRetention, publishStagedView, type PointerLease } from "../../batch/publisher.js";
import {
  NatsPublishedViews,
  VIEW_RESERVATION_BUCKET,
  VIEW_RESERVATION_TTL_MS,
  kvStreamName,
  objectStoreStreamName,
  viewVersionBucket,
} from "../../shared/adapters/nats/index.js";
import { BATCH_VIEW_FILES, LanemapError, ViewPointerConflictError, dataPaths } from "../../shared/index.js";
import { FilePublishedViews } from "../../shared/adapters/archive/index.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import { tempDataDir } from "../helpers/serving-views.js";

const logger = pino({ level: "silent" });

const draft = {
  watermark: 1,
  modelVersion: "m-race",
  startedAt: "2026-12-02T10:00:00.000Z",
  finishedAt: "2026-12-02T10:01:00.000Z",
  order: "hilbert",
  tiles: { total: 1, classified: 1, reused: 0, failed: 0 },
  cells: 1,
  failures: [],
};

/** The sizes of a staging folder's files: view.duckdb spans several 128 KiB chunks. */
const SIZES = { duckdb: 300_000, parquet: 2_000, arrow: 1_500, model: 700 } as const;

/**
 * A coordinator's staging folder as a run leaves it before publishing (random bytes of SIZES, so
 * two coordinators' files differ), with the sha256 of each file by name.
 */
async function stage(dataDir: string, runId: string): Promise<{ dir: string; digests: Map<string, string> }> {
  const dir = join(dataPaths(dataDir).batchStaging, runId);
  await mkdir(dir, { recursive: true });
  const digests = new Map<string, string>();
  for (const [key, bytes] of Object.entries(SIZES)) {
    const name = BATCH_VIEW_FILES[key as keyof typeof SIZES];
    const data = randomBytes(bytes);
    await writeFile(join(dir, name), data);
    digests.set(name, createHash("sha256").update(data).digest("hex"));
  }
  return { dir, digests };
}

async function messagesOf(nc: Parameters<typeof jetstreamManager>[0], name: string): Promise<number> {
  const jsm = await jetstreamManager(nc);
  return (await jsm.streams.info(objectStoreStreamName(viewVersionBucket(name)))).state.messages;
}

const skip = natsMissing();

describe("two batch coordinators on one NATS store", { ...(skip ? { skip } : {}) }, () => {
  test("racing for the same next version, exactly one becomes current with only its own files, and the other fails with VIEW_POINTER_CONFLICT keeping its checkpoint", async () => {
    await using nats = await natsFixture();
    // Each coordinator on its own connection and data directory, as on two machines.
    const ncB = await connect({ servers: nats.server.url, name: "lanemap-test-b" });
    await using a = await tempDataDir();
    await using b = await tempDataDir();
    await using c = await tempDataDir();
    try {
      const viewsA = await NatsPublishedViews.open(nats.nc, { cacheDir: join(a.dir, "cache", "views") });
      const viewsB = await NatsPublishedViews.open(ncB, { cacheDir: join(b.dir, "cache", "views") });

      const base = await stage(a.dir, "run-base");
      await publishStagedView(a.dir, base.dir, draft, { logger, views: viewsA, lease: { expected: null } });
      const pointer = await viewsA.current();
      assert.equal(pointer?.name, "v000001");

      // Both runs started on v000001 and finish at once: both compute v000002 as their next number.
      const leaseA: PointerLease = { expected: pointer.revision };
      const leaseB: PointerLease = { expected: pointer.revision };
      const stagedA = await stage(a.dir, "run-a");
      const stagedB = await stage(b.dir, "run-b");
      const outcomes = await Promise.allSettled([
        publishStagedView(a.dir, stagedA.dir, draft, { logger, views: viewsA, lease: leaseA }),
        publishStagedView(b.dir, stagedB.dir, draft, { logger, views: viewsB, lease: leaseB }),
      ]);
      const won = outcomes.flatMap((o, i) => (o.status === "fulfilled" ? [{ i, v: o.value }] : []));
      const lost = outcomes.flatMap((o, i) =>
        o.status === "rejected" ? [{ i, err: o.reason as unknown }] : [],
      );
      assert.equal(won.length, 1, "exactly one publish succeeds");
      assert.equal(lost.length, 1, "and the other fails");
      const winner = won[0]!;
      const loser = lost[0]!;
      assert.ok(loser.err instanceof LanemapError, String(loser.err));
      assert.equal(loser.err.code, "VIEW_POINTER_CONFLICT", loser.err.message);
      assert.match(loser.err.message, new RegExp(`another coordinator published ${winner.v.name}`));
      assert.match(loser.err.message, /checkpoint is kept/);
      assert.doesNotMatch(loser.err.message, /timeout/);

      const current = await viewsB.current();
      assert.equal(current?.name, winner.v.name, "the winner's version is current");
      assert.deepEqual(
        (await viewsA.list()).map((v) => v.name),
        ["v000001", winner.v.name],
        "the loser's upload is gone",
      );

      // The winner's version holds exactly its own files: every digest its manifest names is the
      // winner's input, a fresh machine's download checks each against them, and its stream holds
      // as many messages as a lone publish of files of the same sizes.
      const winnerDigests = [stagedA, stagedB][winner.i]!.digests;
      const listed = (await viewsB.list()).find((v) => v.name === winner.v.name);
      assert.ok(listed);
      assert.deepEqual(
        new Map(Object.entries(listed.manifest.files).map(([f, { sha256 }]) => [f, sha256])),
        winnerDigests,
      );
      const viewsC = await NatsPublishedViews.open(nats.nc, { cacheDir: join(c.dir, "cache", "views") });
      const copy = await viewsC.materialize(winner.v.name);
      for (const [file, digest] of winnerDigests)
        assert.equal(
          createHash("sha256")
            .update(await readFile(join(copy, file)))
            .digest("hex"),
          digest,
        );

      // The loser's folder is its staging folder again: a rerun resumes from its checkpoint.
      const loserDir = [a.dir, b.dir][loser.i]!;
      const loserStaged = [stagedA, stagedB][loser.i]!;
      assert.ok((await readdir(loserStaged.dir)).includes(BATCH_VIEW_FILES.duckdb));
      assert.deepEqual(
        (await readdir(dataPaths(loserDir).batchViews)).filter((n) => n.startsWith("v")),
        loser.i === 0 ? ["v000001"] : [],
      );

      // A lone publish (the loser's rerun, on a fresh lease) for the message count to compare with.
      const rerunLease: PointerLease = { expected: current.revision };
      const rerun = await publishStagedView(loserDir, loserStaged.dir, draft, {
        logger,
        views: [viewsA, viewsB][loser.i]!,
        lease: rerunLease,
      });
      assert.equal(await messagesOf(nats.nc, winner.v.name), await messagesOf(nats.nc, rerun.name));

      // Nothing stays reserved, nor half written, once retention ran.
      await applyRetention(a.dir, 5, { logger, views: viewsA });
      assert.deepEqual(await viewsA.reservations(), []);
      assert.deepEqual(await viewsA.incomplete(), []);
    } finally {
      await ncB.close();
    }
  });

  test("a pointer move that landed but whose answer was lost (reported as a conflict) is a publish, not undone", async () => {
    await using nats = await natsFixture();
    await using a = await tempDataDir();
    const real = await NatsPublishedViews.open(nats.nc, { cacheDir: join(a.dir, "cache", "views") });
    // The real store, whose compare-and-set answer is lost after it landed: what the adapter reports
    // when a node dies between the update and its acknowledgement and the retry finds the new revision.
    const views = Object.assign(Object.create(real) as NatsPublishedViews, {
      async setCurrent(name: string, expected?: number | null) {
        const pointer = await real.setCurrent(name, expected);
        throw new ViewPointerConflictError(name, expected ?? null, pointer, "CURRENT moved (answer lost)");
      },
    });
    const base = await stage(a.dir, "run-base");
    const lease: PointerLease = { expected: null };
    const published = await publishStagedView(a.dir, base.dir, draft, { logger, views, lease });
    assert.equal(published.name, "v000001");
    const current = await real.current();
    assert.equal(current?.name, "v000001", "the version stays current");
    assert.equal(lease.expected, current.revision, "the lease follows the landed move");
    assert.deepEqual(
      (await real.list()).map((v) => v.name),
      ["v000001"],
      "the upload is not removed",
    );
  });

  test("a coordinator whose CURRENT moved since its run started stops before it uploads, naming the version published meanwhile", async () => {
    await using nats = await natsFixture();
    await using a = await tempDataDir();
    await using b = await tempDataDir();
    const viewsA = await NatsPublishedViews.open(nats.nc, { cacheDir: join(a.dir, "cache", "views") });
    const viewsB = await NatsPublishedViews.open(nats.nc, { cacheDir: join(b.dir, "cache", "views") });
    const leaseA: PointerLease = { expected: null }; // a's run started before anything was published

    const stagedB = await stage(b.dir, "run-b");
    await publishStagedView(b.dir, stagedB.dir, draft, { logger, views: viewsB, lease: { expected: null } });
    const jsm = await jetstreamManager(nats.nc);
    const streamsBefore = (await jsm.streams.list().next()).map((s) => s.config.name).sort();

    const stagedA = await stage(a.dir, "run-a");
    await assert.rejects(
      publishStagedView(a.dir, stagedA.dir, draft, { logger, views: viewsA, lease: leaseA }),
      (err: unknown) => {
        assert.ok(err instanceof LanemapError, String(err));
        assert.equal(err.code, "VIEW_POINTER_CONFLICT", err.message);
        assert.match(err.message, /another coordinator published v000001 .*nothing was uploaded/);
        return true;
      },
    );
    assert.deepEqual(
      (await jsm.streams.list().next()).map((s) => s.config.name).sort(),
      streamsBefore,
      "no bucket was created",
    );
    assert.deepEqual(await viewsA.reservations(), [], "no number stays reserved");
    assert.deepEqual(
      (await readdir(stagedA.dir)).sort(),
      Object.values(BATCH_VIEW_FILES)
        .filter((f) => f !== BATCH_VIEW_FILES.manifest)
        .sort(),
      "the staging folder (the checkpoint) stays where a rerun finds it",
    );
    assert.equal((await viewsB.current())?.name, "v000001");
  });

  test("a reserved number is skipped; reservations expire with the bucket's max_age, and retention removes a half-written version no one holds", async () => {
    await using nats = await natsFixture();
    await using a = await tempDataDir();
    const views = await NatsPublishedViews.open(nats.nc, { cacheDir: join(a.dir, "cache", "views") });
    const jsm = await jetstreamManager(nats.nc);
    const bucket = await jsm.streams.info(kvStreamName(VIEW_RESERVATION_BUCKET));
    assert.equal(
      bucket.config.max_age,
      VIEW_RESERVATION_TTL_MS * 1_000_000,
      "a dead holder's reservation expires",
    );

    // Another coordinator holds v000001 and has written part of it.
    assert.equal(await views.reserve("v000001", "run other (pid 1 on elsewhere)"), null);
    const held = await views.reserve("v000001", "run mine");
    assert.deepEqual(
      { name: held?.name, holder: held?.holder },
      { name: "v000001", holder: "run other (pid 1 on elsewhere)" },
    );
    assert.ok(
      held?.reservedAt && Number.isFinite(Date.parse(held.reservedAt)),
      "with the store's time of it",
    );
    const half = await new Objm(nats.nc).create(viewVersionBucket("v000001"));
    await half.putBlob({ name: BATCH_VIEW_FILES.model }, new Uint8Array(10));

    const staged = await stage(a.dir, "run-a");
    const published = await publishStagedView(a.dir, staged.dir, draft, {
      logger,
      views,
      lease: { expected: null },
    });
    assert.equal(published.name, "v000002", "the held number is skipped");

    // Retention leaves a version under way (reserved) alone; once its holder is gone, removes it.
    const kept = await applyRetention(a.dir, 5, { logger, views });
    assert.deepEqual(kept.deletedIncomplete, []);
    assert.deepEqual(await views.incomplete(), ["v000001"]);
    await views.release("v000001"); // as the bucket's max_age does for a holder that died
    const cleaned = await applyRetention(a.dir, 5, { logger, views });
    assert.deepEqual(cleaned.deletedIncomplete, ["v000001"]);
    assert.deepEqual(await views.incomplete(), []);
    assert.deepEqual(await views.reservations(), []);
    assert.deepEqual(
      (await views.list()).map((v) => v.name),
      ["v000002"],
    );
  });
});

describe("a pointer move lost after the rename, on the files backend", () => {
  test("puts the version folder back as the staging folder, so the run's checkpoint is kept and no stray version stays", async () => {
    await using a = await tempDataDir();
    const views = new FilePublishedViews(a.dir);
    const first = await stage(a.dir, "run-1");
    await publishStagedView(a.dir, first.dir, draft, { logger, views, lease: { expected: null } });
    const lease: PointerLease = { expected: (await views.current())!.revision };
    const second = await stage(a.dir, "run-2");
    await assert.rejects(
      publishStagedView(a.dir, second.dir, draft, {
        logger,
        views,
        lease,
        // An operator's rollback (here to the version CURRENT names) between the checks and the move.
        beforeRename: async () => void (await views.setCurrent("v000001")),
      }),
      (err: unknown) => {
        assert.ok(err instanceof LanemapError, String(err));
        assert.equal(err.code, "VIEW_POINTER_CONFLICT", err.message);
        assert.match(err.message, /v000002 was removed again; the run's checkpoint is kept/);
        return true;
      },
    );
    assert.ok((await readdir(second.dir)).includes(BATCH_VIEW_FILES.duckdb));
    assert.deepEqual(
      (await readdir(dataPaths(a.dir).batchViews)).filter((n) => n.startsWith("v")),
      ["v000001"],
    );
    assert.deepEqual(
      (await views.list()).map((v) => v.name),
      ["v000001"],
    );
  });
});
