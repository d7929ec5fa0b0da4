/**
 * A node killed just after a view publish that removed an old version (issue 14 F-A): on
 * nats-server 2.9.10 such a node came back holding 1 message of the views' object store where its
 * peers held 145 (3 times in 3 after a removal, 0 in 1 without), nothing logged; killing the two
 * others in turn then left every copy empty. The removal was an in-place purge of one long-lived
 * stream (ObjectStore.delete per object: filtered purges of chunk subjects, rollups of meta
 * subjects), which 2.9.x mishandles on an abrupt restart.
 *
 * Here the runner's steps go through the real NatsPublishedViews on a real 3-node cluster, R3:
 * publish, setCurrent, remove the version retention drops; a node is SIGKILLed 2–4 s later,
 * restarted 6 s after that; then every node's copy of every view stream must agree (their own /jsz,
 * checkReplicaAgreement) and every kept version must be listed and download with its checksums.
 * Rounds kill n1, n2, n3 in turn (LANEMAP_TEST_VIEWS_KILL_ROUNDS, default 2: one round may miss the
 * window; the single bucket diverged in every round, 6 of 6, so two catch it; each round costs ~15 s).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, test } from "node:test";
import { NatsPublishedViews, isViewStream } from "../../shared/adapters/nats/index.js";
import { dataPaths, versionName } from "../../shared/index.js";
import { natsMissing } from "../helpers/nats.js";
import { NODE_NAMES, killAndRestart, replicasDisagree, startNatsCluster } from "../helpers/nats-cluster.js";
import { tempDataDir, writeNumberedVersion } from "../helpers/serving-views.js";

/** Versions kept after each publish, as the runner's retention keeps them. */
const KEEP = 2;
const ROUNDS = Number(process.env["LANEMAP_TEST_VIEWS_KILL_ROUNDS"] ?? 2);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("published views on a 3-node cluster when a node dies", { skip: natsMissing() }, () => {
  test("a node SIGKILLed seconds after a publish that removed an old version comes back with the same copy of every view stream as its peers, and every kept version lists and downloads with its checksums", async () => {
    await using cluster = await startNatsCluster();
    await using source = await tempDataDir();
    await using cache = await tempDataDir();
    const views = await NatsPublishedViews.open(cluster.nc, {
      cacheDir: join(cache.dir, "cache", "views"),
      replicas: 3,
    });
    const batchViews = dataPaths(source.dir).batchViews;
    /** The runner's steps for version `v`: publish, make current, drop what retention drops. */
    async function publishRound(v: number): Promise<void> {
      const name = await writeNumberedVersion(source.dir, v);
      await views.publish(join(batchViews, name), name);
      const pointer = await views.current();
      await views.setCurrent(name, pointer?.revision ?? null);
      const listed = (await views.list()).map((x) => x.name);
      for (const old of listed.slice(0, Math.max(0, listed.length - KEEP))) await views.remove(old);
    }

    let v = 1;
    for (; v <= 3; v++) await publishRound(v);
    const failures: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      await publishRound(v++);
      await publishRound(v++);
      // Within the window the operator hit (2–6 s after the publish that removed a version).
      const node = round % NODE_NAMES.length;
      await sleep(2_000 + node * 1_000);
      await killAndRestart(cluster, node, { downMs: 6_000 });
      // A restarted node catches up within seconds; a diverged copy never does.
      const disagreed = await replicasDisagree(cluster, isViewStream);
      if (disagreed !== null) failures.push(`round ${round + 1} (${NODE_NAMES[node]} killed): ${disagreed}`);
    }
    assert.deepEqual(failures, [], "every view stream's copies agree after each restart");

    const kept = Array.from({ length: KEEP }, (_, i) => versionName(v - KEEP + i));
    assert.deepEqual(
      (await views.list()).map((x) => x.name),
      kept,
    );
    assert.equal((await views.current())?.name, kept.at(-1));
    // A fresh cache: every kept version downloaded from the cluster, checked against its manifest.
    await using fresh = await tempDataDir();
    const reader = await NatsPublishedViews.openExisting(cluster.nc, { cacheDir: join(fresh.dir, "views") });
    for (const name of kept) await reader.materialize(name);
    assert.deepEqual(await reader.damaged(), []);
  });
});
