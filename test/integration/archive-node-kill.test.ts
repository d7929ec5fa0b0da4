/**
 * A node killed just after `lanemap archive remove` (issue 14): on nats-server 2.9.10 such a node
 * came back holding 1 message of the archive's object store where its peers held 647, with the
 * stream idle afterwards, in an operator's check; a second kill before a repair left one good copy
 * of three. The removal was an in-place purge of the long-lived stream `OBJ_lanemap-archive`
 * (ObjectStore.delete: a filtered purge of the tile's chunk subject, a rollup of its meta subject),
 * which 2.9.x mishandles on an abrupt restart — the fault the published views had
 * (nats-views-node-kill.test.ts).
 *
 * Here `archive add` and `archive remove` go through the real NatsTileArchive on a real 3-node
 * cluster, R3: each round puts and registers tiles, records a bad tile, then removes one tile and
 * clears the bad-tile record as `lanemap archive remove` does; a node is SIGKILLed 2–4 s later and
 * restarted 6 s after that (every third round compacts the archive before the kill: a new generation,
 * the old ones' streams deleted whole); then every node's copy of every archive stream (the object stores, the
 * catalogue, the bad-tile bucket) must agree (each node's own /jsz, checkReplicaAgreement), and every
 * catalogued tile must read back byte-equal. Rounds kill n1, n2, n3 in turn
 * (LANEMAP_TEST_ARCHIVE_KILL_ROUNDS, default 3: one round may miss the window).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, test } from "node:test";
import { NatsTileArchive, isArchiveStream } from "../../shared/adapters/nats/index.js";
import { entryOf, badOf } from "../helpers/archive-entries.js";
import { natsMissing } from "../helpers/nats.js";
import { NODE_NAMES, killAndRestart, replicasDisagree, startNatsCluster } from "../helpers/nats-cluster.js";

const ROUNDS = Number(process.env.LANEMAP_TEST_ARCHIVE_KILL_ROUNDS ?? 3);
/** Tiles put before the first round, and in each round (one of them removed in the round). */
const FIRST_TILES = 8;
const TILES_PER_ROUND = 3;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Distinct tile bytes of 200–330 KB (2–3 object chunks of 128 KiB), a function of `n` only. */
function tileBytes(n: number): Uint8Array {
  const size = 200_000 + ((n * 37_003) % 130_000);
  const seed = createHash("sha256").update(`tile ${n}`).digest();
  return new Uint8Array(size).map((_, i) => seed[i % 32]! ^ ((i * 31 + n) & 0xff));
}

describe("the master archive on a 3-node cluster when a node dies", { skip: natsMissing() }, () => {
  test("a node SIGKILLed seconds after `archive remove` comes back with the same copy of every archive stream as its peers, and every catalogued tile reads back byte-equal", async (t) => {
    await using cluster = await startNatsCluster();
    const archive = await NatsTileArchive.open(cluster.nc, { replicas: 3 });
    /** What the catalogue should hold: tile id -> its bytes. */
    const kept = new Map<string, Uint8Array>();
    let n = 0;
    async function add(): Promise<string> {
      const bytes = tileBytes(n);
      const tileId = `tile-${String(n++).padStart(3, "0")}`;
      const { contentHash } = await archive.putObject(bytes);
      await archive.register(entryOf(tileId, contentHash));
      kept.set(tileId, bytes);
      return tileId;
    }
    for (let i = 0; i < FIRST_TILES; i++) await add();

    const failures: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      for (let i = 0; i < TILES_PER_ROUND; i++) await add();
      // `lanemap archive remove <id>`: the catalogue entry (its object when no other entry has it),
      // then its bad-tile record; a bad-tile record of a refused file is cleared too.
      const [victim] = kept.keys();
      const bad = `refused-${round}.tif`;
      await archive.recordBad(badOf(bad, "not a GeoTIFF"));
      assert.ok(await archive.remove(victim!));
      kept.delete(victim!);
      await archive.clearBad(victim!);
      assert.equal(await archive.clearBad(bad), true);
      // Every third round also compacts: a new generation, the pointer moved, the old streams deleted whole.
      if (round % 3 === 2) {
        const report = await archive.compact({ graceMs: 500 });
        t.diagnostic(
          `compaction: generation ${report.generation}, ${report.copied.objects} objects copied, deleted ${report.deleted.join(", ")}`,
        );
      }
      // Within the window the operator hit (seconds after the removal).
      await sleep(2_000 + (round % 3) * 1_000);
      const node = round % 3;
      await killAndRestart(cluster, node, { downMs: 6_000 });
      // A restarted node catches up within seconds; a diverged copy never does.
      const disagreed = await replicasDisagree(cluster, isArchiveStream);
      t.diagnostic(`round ${round + 1} (${NODE_NAMES[node]} killed): ${disagreed ?? "agree"}`);
      if (disagreed !== null) failures.push(`round ${round + 1} (${NODE_NAMES[node]} killed): ${disagreed}`);
    }
    assert.deepEqual(failures, [], "every archive stream's copies agree after each restart");

    const listed = [];
    for await (const e of archive.entries()) listed.push(e.tileId);
    assert.deepEqual(listed.sort(), [...kept.keys()].sort());
    for (const [tileId, bytes] of kept) {
      const entry = await archive.get(tileId);
      assert.deepEqual(await archive.readObject(entry!.contentHash), bytes, `${tileId} reads back`);
    }
  });
});
