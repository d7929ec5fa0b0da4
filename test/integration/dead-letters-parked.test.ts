/**
 * A dead letter too large to travel with its headers is parked in the tile object bucket as
 * `dlq-<original sequence>`. Dead-lettering is idempotent (a worker that crashes before its ack
 * dead-letters the tile again), and a second put of that object over its name would purge the first
 * one's chunks in place: a filtered STREAM.PURGE, the removal that lost a node's copy of a
 * replicated stream on nats-server 2.9.10 (issue 14, nats-removals-node-kill.test.ts). The parked
 * object is written once.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect, headers } from "@nats-io/transport-node";
import { DeadLetterQueue, ensureStreams, ensureTileObjects } from "../../shared/adapters/nats/index.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import { tempDir, testConfig } from "./speed-fixtures.js";

describe("a dead letter parked in the tile bucket", { skip: natsMissing() }, () => {
  test("dead-lettering a large tile twice parks its bytes once, purges nothing, and the letter reads its bytes", async () => {
    await using nats = await natsFixture();
    await using dir = await tempDir("family14-parked-");
    const limits = testConfig(dir.path).stream;
    await ensureStreams(await jetstreamManager(nats.nc), limits);
    const tiles = await ensureTileObjects(nats.nc, limits);
    const dlq = await DeadLetterQueue.open(nats.nc, tiles);
    // Under max_payload (1 MiB) with the original's headers, over it with a dead letter's.
    const data = new Uint8Array(1020 * 1024).map((_, i) => i % 253);
    const letter = {
      originalSeq: 77,
      subject: "tiles.in.c0001r0001",
      headers: headers(),
      data,
      code: "TILE_DECODE" as const,
      reason: "not a GeoTIFF",
      deliveries: 1,
    };
    const spy = await connect({ servers: nats.server.url, name: "purge-spy" });
    const purges: string[] = [];
    const sub = spy.subscribe("$JS.API.STREAM.PURGE.>", { callback: (_, m) => void purges.push(m.subject) });
    await spy.flush();
    const first = await dlq.add(letter);
    const again = await dlq.add(letter);
    await nats.nc.flush();
    await spy.flush();
    sub.unsubscribe();
    await spy.close();
    assert.deepEqual(purges, [], "no purge of the tile bucket");
    assert.equal(again.seq, first.seq);
    assert.equal(again.duplicate, true);
    const { letter: listed } = await dlq.get(first.seq);
    assert.equal(listed.object, "dlq-77");
    const parked = await tiles.getBlob("dlq-77");
    assert.ok(parked);
    assert.deepEqual(parked, data);
  });
});
