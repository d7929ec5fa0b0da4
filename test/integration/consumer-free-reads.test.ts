/**
 * The objects lanemap reads whole — a published view's files (a serve switch), a model artifact
 * (every worker and serve start, `lanemap model list`'s reconcile) and an archive tile (a batch
 * run) — are read without creating a consumer: chunk by chunk with STREAM.MSG.GET; so are the
 * catalogue and the bad tiles listed (every batch run, `lanemap archive list`).
 *
 * Why: nats-server before 2.12 (Debian ships 2.9) may place an ephemeral consumer on an offline
 * peer (nats-server PR #7165); with one node of a cluster down, each of these reads then waited out
 * a 5 s consumer creation, one try in three, unlogged (issue 14, F7 and N3). A real nats-server;
 * the test listens to the JetStream API's consumer-create requests while each read runs.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import type { NatsConnection } from "@nats-io/transport-node";
import { NatsModelRegistry, NatsPublishedViews, NatsTileArchive } from "../../shared/adapters/nats/index.js";
import { BATCH_VIEW_FILES, dataPaths, serializeModel } from "../../shared/index.js";
import { badOf, entryOf } from "../helpers/archive-entries.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import { writeNumberedVersion } from "../helpers/serving-views.js";
import { tempDir, testModel } from "./speed-fixtures.js";

/** The consumer-create requests (their subjects) sent to the JetStream API while `op` runs. */
async function consumersCreatedBy<T>(
  nc: NatsConnection,
  op: () => Promise<T>,
): Promise<{ result: T; created: string[] }> {
  const created: string[] = [];
  // A plain subscription gets a copy of every request on the subject, as the server's API does.
  const sub = nc.subscribe("$JS.API.CONSUMER.>", { callback: (_err, m) => void created.push(m.subject) });
  await nc.flush();
  try {
    const result = await op();
    await nc.flush();
    return { result, created: created.filter((s) => /\.CREATE\./.test(s)) };
  } finally {
    sub.unsubscribe();
  }
}

describe("reads of whole objects create no consumer", { skip: natsMissing(), timeout: 60_000 }, () => {
  test("a serve instance materializes a published version (view.duckdb spans many chunks) with no consumer, every file as published", async () => {
    await using nats = await natsFixture();
    await using dir = await tempDir("lanemap-consumer-free-");
    const publisherDir = join(dir.path, "publisher");
    const publisher = await NatsPublishedViews.open(nats.nc, { cacheDir: join(publisherDir, "cache") });
    const name = await writeNumberedVersion(publisherDir, 1);
    const published = join(dataPaths(publisherDir).batchViews, name);
    await publisher.publish(published, name);
    const follower = await NatsPublishedViews.open(nats.nc, { cacheDir: join(dir.path, "serve", "cache") });

    const { result: folder, created } = await consumersCreatedBy(nats.nc, () => follower.materialize(name));

    assert.deepEqual(created, [], "no consumer was created to download the version");
    for (const file of [BATCH_VIEW_FILES.duckdb, BATCH_VIEW_FILES.manifest, BATCH_VIEW_FILES.model]) {
      const [mine, theirs] = await Promise.all([
        readFile(join(folder, file)),
        readFile(join(published, file)),
      ]);
      assert.ok(mine.equals(theirs), `${file} is downloaded byte for byte`);
    }
    assert.ok(
      (await readFile(join(folder, BATCH_VIEW_FILES.duckdb))).length > 128 * 1024,
      "view.duckdb spans chunks",
    );
  });

  test("a model's artifact is read with no consumer, byte for byte", async () => {
    await using nats = await natsFixture();
    const registry = await NatsModelRegistry.open(nats.nc);
    const model = await testModel();
    await registry.put(model);

    const { result: bytes, created } = await consumersCreatedBy(nats.nc, () =>
      registry.artifact(model.version),
    );

    assert.deepEqual(created, [], "no consumer was created to read the artifact");
    assert.equal(new TextDecoder().decode(bytes), serializeModel(model));
  });

  test("an archive tile of several chunks is read with no consumer, byte for byte", async () => {
    await using nats = await natsFixture();
    const archive = await NatsTileArchive.open(nats.nc, { replicas: 1 });
    const tile = new Uint8Array(randomBytes(700_000)); // six 128 KiB chunks
    const { contentHash } = await archive.putObject(tile);

    const { result: bytes, created } = await consumersCreatedBy(nats.nc, () =>
      archive.readObject(contentHash),
    );

    assert.deepEqual(created, [], "no consumer was created to read the tile");
    assert.ok(Buffer.from(bytes).equals(Buffer.from(tile)));
  });

  test("the catalogue and the bad tiles are listed with no consumer: every live entry once, removed ones left out", async () => {
    await using nats = await natsFixture();
    const archive = await NatsTileArchive.open(nats.nc, { replicas: 1 });
    // More entries than one round of last-value gets, one of them removed.
    const ids = Array.from({ length: 70 }, (_, i) => `tile.${i}`);
    for (const id of ids) await archive.register(entryOf(id, "a".repeat(64)));
    await archive.remove("tile.7");
    for (const key of ["broken.tif", "scene 7/ä.tif"]) await archive.recordBad(badOf(key, "bad"));

    const { result, created } = await consumersCreatedBy(nats.nc, async () => {
      const entries: string[] = [];
      for await (const e of archive.entries()) entries.push(e.tileId);
      const bad: string[] = [];
      for await (const b of archive.badTiles()) bad.push(b.key);
      return { entries, bad };
    });

    assert.deepEqual(created, [], "no consumer was created to list the catalogue or the bad tiles");
    assert.deepEqual(result.entries.sort(), ids.filter((id) => id !== "tile.7").sort());
    assert.deepEqual(result.bad.sort(), ["broken.tif", "scene 7/ä.tif"]);
  });
});
