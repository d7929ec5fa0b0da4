/**
 * Cluster test (3-node JetStream cluster on loopback, one node SIGKILLed): object reads answer
 * promptly every time, not two times in three.
 *
 * Why: nats.js reads an object through an ephemeral ordered consumer, which nats-server before
 * 2.12 (Debian ships 2.9.10) may place on the offline peer (nats-server PR #7165), and so did the
 * catalogue scan (`lanemap archive list`, every batch run); such a read
 * stalled until given up after 10 s, and `lanemap worker` failed its start on "reading model
 * <version>'s artifact: timeout" (issue 14). readObjectBytes reads with the stream API, which the
 * stream's leader answers. 20 reads in a row would meet the dead peer almost surely.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { Objm } from "@nats-io/obj";
import {
  CATALOGUE_BUCKET,
  MODEL_BUCKET,
  MODEL_OBJECT_BUCKET,
  NatsModelRegistry,
  NatsTileArchive,
  kvStreamName,
  TILE_OBJECT_BUCKET,
  objectStoreStreamName,
  tileObjectsReader,
} from "../../shared/adapters/nats/index.js";
import { entryOf } from "../helpers/archive-entries.js";
import { startNatsCluster, type NatsCluster } from "../helpers/nats-cluster.js";
import { natsMissing } from "../helpers/nats.js";
import { testModel } from "./speed-fixtures.js";

/** Reads of each object in a row with the node down. */
const READS = 20;
/** A read slower than this fails the test (a read behind a consumer on the dead peer took 10 s). */
const READ_BOUND_MS = 2_000;
/** The node killed. */
const DEAD = 2;

/** Resolves once `stream` answers STREAM.INFO with a leader (a new one elected after the kill). */
async function waitForLeader(cluster: NatsCluster, stream: string): Promise<void> {
  const jsm = await jetstreamManager(cluster.nc, { checkAPI: false, timeout: 2_000 });
  const until = Date.now() + 30_000;
  for (;;) {
    const info = await jsm.streams.info(stream).catch(() => null);
    if (info?.cluster?.leader) return;
    if (Date.now() > until) throw new Error(`stream ${stream} has no leader 30 s after the kill`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe(
  "cluster test: object reads with one node of a 3-node cluster SIGKILLed",
  { skip: natsMissing() },
  () => {
    let cluster: NatsCluster;
    let registry: NatsModelRegistry;
    let modelVersion: string;
    let artifact: Uint8Array;
    let archive: NatsTileArchive;
    const tileIds = Array.from({ length: 40 }, (_, i) => `tile-${i}`);
    const tile = new Uint8Array(randomBytes(5 * 128 * 1024 + 999)); // 6 chunks

    before(async () => {
      cluster = await startNatsCluster();
      registry = await NatsModelRegistry.open(cluster.nc, { replicas: 3 });
      const model = await testModel();
      await registry.put(model);
      modelVersion = model.version;
      artifact = await registry.artifact(modelVersion);
      const tiles = await new Objm(cluster.nc).create(TILE_OBJECT_BUCKET, { replicas: 3 });
      await tiles.putBlob({ name: "tile-1", options: { max_chunk_size: 128 * 1024 } }, tile);
      archive = await NatsTileArchive.open(cluster.nc, { replicas: 3 });
      for (const id of tileIds) await archive.register(entryOf(id, "a".repeat(64)));
      await cluster.kill(DEAD);
      await cluster.waitForMetaLeader();
      // KV values are read through their stream's leader (leader-reads.ts): the model records'
      // stream elects too, or the first artifact read waits out its election (5.4 s at load 13).
      await waitForLeader(cluster, kvStreamName(MODEL_BUCKET));
      await waitForLeader(cluster, objectStoreStreamName(MODEL_OBJECT_BUCKET));
      await waitForLeader(cluster, objectStoreStreamName(TILE_OBJECT_BUCKET));
      await waitForLeader(cluster, kvStreamName(CATALOGUE_BUCKET));
    });

    after(async () => {
      await cluster?.[Symbol.asyncDispose]();
    });

    test(`a model artifact is read ${READS} times in a row, each in under ${READ_BOUND_MS} ms`, async () => {
      for (let i = 1; i <= READS; i++) {
        const t0 = performance.now();
        const read = await registry.artifact(modelVersion);
        const ms = performance.now() - t0;
        assert.ok(Buffer.from(read).equals(Buffer.from(artifact)), `read ${i}: the artifact's bytes`);
        assert.ok(ms < READ_BOUND_MS, `read ${i} took ${ms.toFixed(0)} ms`);
      }
    });

    test(`a 6-chunk tile object is read ${READS} times in a row, each in under ${READ_BOUND_MS} ms`, async () => {
      const objects = await tileObjectsReader(cluster.nc);
      for (let i = 1; i <= READS; i++) {
        const t0 = performance.now();
        const read = await objects.getBlob("tile-1");
        const ms = performance.now() - t0;
        assert.ok(read && Buffer.from(read).equals(Buffer.from(tile)), `read ${i}: the tile's bytes`);
        assert.ok(ms < READ_BOUND_MS, `read ${i} took ${ms.toFixed(0)} ms`);
      }
    });

    test(`the catalogue of ${tileIds.length} tiles is listed ${READS} times in a row, each in under ${READ_BOUND_MS} ms`, async () => {
      for (let i = 1; i <= READS; i++) {
        const t0 = performance.now();
        const listed: string[] = [];
        for await (const e of archive.entries()) listed.push(e.tileId);
        const ms = performance.now() - t0;
        assert.deepEqual(listed.sort(), [...tileIds].sort(), `listing ${i}: every tile once`);
        assert.ok(ms < READ_BOUND_MS, `listing ${i} took ${ms.toFixed(0)} ms`);
      }
    });
  },
);
