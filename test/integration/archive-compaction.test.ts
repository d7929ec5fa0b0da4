/**
 * The master archive's objects in generations (issue 14): `remove` only takes the catalogue entry,
 * and `compact` copies what the catalogue names into a new generation and deletes the old ones'
 * streams whole, so nothing is purged inside a living stream. A compaction that dies between its
 * steps leaves every catalogued tile readable and the next one finishes; a tile added while a
 * compaction runs keeps its object; a deployment whose objects are in the legacy bucket
 * `lanemap-archive` reads them and compacts them into a generation. One real nats-server, R1.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, test } from "node:test";
import { StorageType, jetstreamManager } from "@nats-io/jetstream";
import { Objm } from "@nats-io/obj";
import { Kvm } from "@nats-io/kv";
import {
  ARCHIVE_OBJECT_BUCKET,
  ARCHIVE_POINTER_BUCKET,
  ARCHIVE_POINTER_KEY,
  NatsTileArchive,
  archiveUsage,
  type CompactionStep,
} from "../../shared/adapters/nats/index.js";
import { collectStatus, formatStatus } from "../../infra/ops/index.js";
import { LanemapError } from "../../shared/errors.js";
import { entryOf } from "../helpers/archive-entries.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import { tempDir, testLogger } from "./speed-fixtures.js";

/** Distinct bytes of about 150–280 KB (two or three chunks), a function of `n` only. */
function tileBytes(n: number): Uint8Array {
  const seed = createHash("sha256").update(`compaction tile ${n}`).digest();
  return new Uint8Array(150_000 + ((n * 41_011) % 130_000)).map((_, i) => seed[i % 32]! ^ (i & 0xff));
}

/** The archive's object streams on the server, sorted. */
async function objectStreams(archive: { nc: Parameters<typeof jetstreamManager>[0] }): Promise<string[]> {
  const out: string[] = [];
  for await (const s of (await jetstreamManager(archive.nc)).streams.names())
    if (s.startsWith("OBJ_lanemap-archive")) out.push(s);
  return out.sort();
}

/** Puts and registers tiles `from`..`to - 1`; their bytes by tile id. */
async function addTiles(
  archive: NatsTileArchive,
  from: number,
  to: number,
): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for (let n = from; n < to; n++) {
    const bytes = tileBytes(n);
    const { contentHash } = await archive.putObject(bytes);
    const tileId = `t-${String(n).padStart(4, "0")}`;
    await archive.register(entryOf(tileId, contentHash));
    out.set(tileId, bytes);
  }
  return out;
}

/** Every tile of `kept` is catalogued and reads back byte-equal. */
async function assertReadable(archive: NatsTileArchive, kept: Map<string, Uint8Array>): Promise<void> {
  const listed: string[] = [];
  for await (const e of archive.entries()) listed.push(e.tileId);
  assert.deepEqual(listed.sort(), [...kept.keys()].sort());
  for (const [tileId, bytes] of kept)
    assert.deepEqual(await archive.readObject((await archive.get(tileId))!.contentHash), bytes, tileId);
}

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

describe("the master archive's generations and compaction", { skip: natsMissing() }, () => {
  test("remove leaves the object as garbage; a dry run changes nothing; compaction copies the named objects into a new generation, deletes the old one whole, and the removed object is gone", async () => {
    await using nats = await natsFixture();
    const archive = await NatsTileArchive.open(nats.nc, { replicas: 1 });
    const kept = await addTiles(archive, 0, 6);
    const gone = [...kept.keys()].slice(0, 2);
    for (const id of gone) {
      assert.equal((await archive.remove(id))?.objectRemoved, false);
      kept.delete(id);
    }
    const usage = await archiveUsage(nats.nc);
    assert.equal(usage.current, 1);
    assert.deepEqual(
      { entries: usage.entries, named: usage.named.objects, garbage: usage.garbage.objects },
      { entries: 4, named: 4, garbage: 2 },
    );
    assert.equal(usage.garbage.bytes, tileBytes(0).byteLength + tileBytes(1).byteLength);
    // The operator's view: `lanemap ops status` names the garbage and the command that drops it.
    await using data = await tempDir("lanemap-compaction-status-");
    const status = () =>
      collectStatus({
        dataDir: data.path,
        nats: { nc: nats.nc, url: nats.server.url },
        logger: testLogger(),
      });
    const seen = await status();
    assert.deepEqual(seen.archive?.garbage, usage.garbage);
    assert.match(
      formatStatus(seen),
      /^archive {3}4 catalogue entries, 4 object\(s\) .* garbage 2 object\(s\) .*`lanemap archive compact` drops it/m,
    );

    const dry = await archive.compact({ dryRun: true });
    assert.deepEqual(
      { generation: dry.generation, copied: dry.copied.objects, deleted: dry.deleted },
      { generation: 2, copied: 4, deleted: ["lanemap-archive-g000001"] },
    );
    assert.deepEqual(await objectStreams(nats), ["OBJ_lanemap-archive-g000001"]);
    assert.equal((await archiveUsage(nats.nc)).garbage.objects, 2, "a dry run drops nothing");

    const done = await archive.compact({ graceMs: 0 });
    assert.deepEqual(
      {
        generation: done.generation,
        copied: done.copied.objects,
        deleted: done.deleted,
        missing: done.missing,
      },
      { generation: 2, copied: 4, deleted: ["lanemap-archive-g000001"], missing: [] },
    );
    assert.deepEqual(await objectStreams(nats), ["OBJ_lanemap-archive-g000002"]);
    const after = await archiveUsage(nats.nc);
    assert.deepEqual([after.current, after.garbage.objects, after.named.objects], [2, 0, 4]);
    assert.deepEqual((await status()).archive?.garbage, { objects: 0, bytes: 0 });
    await assertReadable(archive, kept);
    await assert.rejects(
      archive.readObject(sha(tileBytes(0))),
      (err: unknown) => err instanceof LanemapError && err.code === "OBJECT_MISSING",
    );
    // Nothing left to compact; new puts go to generation 2.
    assert.equal((await archive.compact({ graceMs: 0 })).nothingToDo, true);
    const puts = await addTiles(archive, 6, 7);
    await assertReadable(archive, new Map([...kept, ...puts]));
  });

  test("a compaction stopped after each of its steps leaves every catalogued tile readable, and the next compaction finishes", async () => {
    await using nats = await natsFixture();
    const archive = await NatsTileArchive.open(nats.nc, { replicas: 1 });
    let kept = await addTiles(archive, 0, 4);
    let n = 4;
    for (const step of ["generation", "pointer", "copy"] as CompactionStep[]) {
      const [victim] = kept.keys();
      await archive.remove(victim!);
      kept.delete(victim!);
      await archive.compact({ graceMs: 0, stopAfter: step });
      // A process that opens the archive afterwards, as after a crash, reads and writes as usual.
      const other = await NatsTileArchive.open(nats.nc, { replicas: 1 });
      await assertReadable(other, kept);
      kept = new Map([...kept, ...(await addTiles(other, n, n + 1))]);
      n++;
      await assertReadable(archive, kept);
    }
    const done = await archive.compact({ graceMs: 0 });
    assert.deepEqual(done.missing, []);
    const streams = await objectStreams(nats);
    assert.deepEqual(streams, [`OBJ_lanemap-archive-g${String(done.generation).padStart(6, "0")}`]);
    const usage = await archiveUsage(nats.nc);
    assert.deepEqual([usage.garbage.objects, usage.named.objects], [0, kept.size]);
    await assertReadable(archive, kept);
  });

  test("two compactions at once lose no tile and leave no generation behind: the one that lost the pointer drops the generation it made, and ops status shows no pending one", async () => {
    await using nats = await natsFixture();
    const archive = await NatsTileArchive.open(nats.nc, { replicas: 1 });
    const kept = await addTiles(archive, 0, 8);
    const second = await NatsTileArchive.open(nats.nc, { replicas: 1 });
    const outcomes: string[] = [];
    const left: string[] = [];
    // The other one starts 0-50 ms later: before, while and after the first makes its generation and moves the pointer.
    for (const [round, delayMs] of [0, 15, 50].entries()) {
      const victim = `t-${String(round).padStart(4, "0")}`;
      await archive.remove(victim);
      kept.delete(victim);
      const [a, b] = await Promise.allSettled([
        archive.compact({ graceMs: 200 }),
        (async () => {
          await new Promise((r) => setTimeout(r, delayMs));
          return second.compact({ graceMs: 200 });
        })(),
      ]);
      for (const r of [a, b]) {
        outcomes.push(r.status === "fulfilled" ? "done" : String(r.reason).replace(/^.*compaction: /, ""));
        if (r.status === "rejected")
          assert.match(
            String(r.reason),
            /generation pointer .*no data deleted, its empty generation \d+ dropped|generation \d+ was made by another compaction meanwhile; nothing done|generation pointer names \d+, not \d+ .*nothing deleted/,
          );
      }
      assert.ok(
        a.status === "fulfilled" || b.status === "fulfilled",
        `round ${round}: one compaction finished`,
      );
      // A stream above the pointer is a generation the loser made and left (ops status: pending).
      const { current } = await archiveUsage(nats.nc);
      for (const stream of await objectStreams(nats))
        if (Number(stream.slice(-6)) > current!)
          left.push(`round ${round}: ${stream} above the pointer's g${current} (${outcomes.join("; ")})`);
      await assertReadable(archive, kept);
    }
    assert.deepEqual(left, [], "no generation left behind");

    // The interleaving that left one, made to happen: the loser reads the usage after the winner
    // made its generation (g+1) and before it moved the pointer, makes g+2, then finds the pointer moved.
    await archive.remove("t-0007");
    kept.delete("t-0007");
    const winner = await archive.compact({ graceMs: 0, stopAfter: "generation" });
    assert.ok(winner.generation);
    const pointer = await new Kvm(nats.nc).open(ARCHIVE_POINTER_BUCKET);
    const loser = second as unknown as { currentGeneration(): Promise<unknown> };
    const read = loser.currentGeneration.bind(second);
    loser.currentGeneration = async () => {
      loser.currentGeneration = read;
      const e = await pointer.get(ARCHIVE_POINTER_KEY); // the winner's move, as its step 1 does it
      await pointer.update(
        ARCHIVE_POINTER_KEY,
        JSON.stringify({ generation: winner.generation }),
        e!.revision,
      );
      return read();
    };
    await assert.rejects(
      second.compact({ graceMs: 0 }),
      new RegExp(
        `generation pointer moved to ${winner.generation} meanwhile .*no data deleted, its empty generation ${winner.generation! + 1} dropped`,
      ),
    );
    const after = await archiveUsage(nats.nc);
    assert.equal(after.current, winner.generation);
    assert.deepEqual(after.pending, [], "ops status: no pending generation");
    assert.ok(
      (await objectStreams(nats)).every((stream) => Number(stream.slice(-6)) <= winner.generation!),
      "the loser's generation is gone",
    );
    await assertReadable(second, kept);
    await archive.compact({ graceMs: 0 });
    const usage = await archiveUsage(nats.nc);
    assert.deepEqual([usage.generations.length, usage.garbage.objects, usage.missing], [1, 0, []]);
    await assertReadable(second, kept);
  });

  test("ops status shows a generation above the pointer as pending, not as data, and the next compaction drops it", async () => {
    await using nats = await natsFixture();
    const archive = await NatsTileArchive.open(nats.nc, { replicas: 1 });
    const kept = await addTiles(archive, 0, 3);
    await archive.remove("t-0000");
    kept.delete("t-0000");
    // A compaction that died after making its generation, before moving the pointer.
    const stopped = await archive.compact({ graceMs: 0, stopAfter: "generation" });
    const usage = await archiveUsage(nats.nc);
    assert.deepEqual(
      [usage.current, usage.generations.map((g) => g.generation), usage.pending.map((g) => g.generation)],
      [1, [1], [stopped.generation]],
    );
    await using data = await tempDir("pub14-compaction-pending-");
    const text = formatStatus(
      await collectStatus({
        dataDir: data.path,
        nats: { nc: nats.nc, url: nats.server.url },
        logger: testLogger(),
      }),
    );
    assert.match(
      text,
      /generations lanemap-archive-g000001\* {2}pending lanemap-archive-g000002 \(a compaction under way or stopped before moving the pointer: no data/,
    );
    const done = await archive.compact({ graceMs: 0 });
    assert.deepEqual(done.deleted, ["lanemap-archive-g000001", "lanemap-archive-g000002"]);
    assert.deepEqual(await objectStreams(nats), ["OBJ_lanemap-archive-g000003"]);
    await assertReadable(archive, kept);
  });

  test("tiles added while a compaction runs keep their objects", async () => {
    await using nats = await natsFixture();
    const archive = await NatsTileArchive.open(nats.nc, { replicas: 1 });
    const kept = await addTiles(archive, 0, 5);
    await archive.remove("t-0000");
    kept.delete("t-0000");
    // A second process adding tiles throughout: before the pointer moves, during the grace, during the copy.
    const adder = await NatsTileArchive.open(nats.nc, { replicas: 1 });
    let stop = false;
    let n = 100;
    const adding = (async () => {
      while (!stop) for (const [k, v] of await addTiles(adder, n, ++n)) kept.set(k, v);
    })();
    const report = await archive.compact({ graceMs: 1_000 });
    stop = true;
    await adding;
    assert.ok(n - 100 >= 3, `tiles were added during the compaction (${n - 100})`);
    assert.deepEqual(report.deleted, ["lanemap-archive-g000001"]);
    await assertReadable(archive, kept);
    await assertReadable(adder, kept);
  });

  test("a deployment whose objects are in the legacy bucket lanemap-archive reads them, writes new ones to a generation, and compacts the legacy bucket away", async () => {
    await using nats = await natsFixture();
    // The layout before generations: one object store, written by an older lanemap.
    const legacy = await new Objm(nats.nc).create(ARCHIVE_OBJECT_BUCKET, { storage: StorageType.File });
    const old = tileBytes(0);
    await legacy.putBlob({ name: sha(old) }, old);
    const archive = await NatsTileArchive.open(nats.nc, { replicas: 1 });
    await archive.register(entryOf("legacy-tile", sha(old)));
    const kept = new Map([["legacy-tile", old], ...(await addTiles(archive, 1, 3))]);
    await assertReadable(archive, kept);
    assert.deepEqual(await objectStreams(nats), ["OBJ_lanemap-archive", "OBJ_lanemap-archive-g000001"]);
    const report = await archive.compact({ graceMs: 0 });
    assert.deepEqual(report.deleted, ["lanemap-archive", "lanemap-archive-g000001"]);
    assert.deepEqual(await objectStreams(nats), ["OBJ_lanemap-archive-g000002"]);
    await assertReadable(archive, kept);
  });
});
