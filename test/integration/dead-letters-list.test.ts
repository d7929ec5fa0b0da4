/**
 * `DeadLetterQueue.list()` reads the dead-letter stream's messages with the stream API, not a
 * consumer: nats-server 2.9 may place a consumer on an offline peer of a cluster (nats-server
 * PR #7165), and with one node down `lanemap dlq list` then stalled, at random (issue 14). The
 * listing must still be whole and in order when letters were removed between others.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect, headers } from "@nats-io/transport-node";
import { DeadLetterQueue, ensureStreams } from "../../shared/adapters/nats/index.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import { tempDir, testConfig } from "./speed-fixtures.js";

/** More letters than one window of in-flight gets (16), so the listing takes several windows. */
const LETTERS = 45;

describe("listing the dead letters", { skip: natsMissing() }, () => {
  test("every letter left after removals is listed oldest first, and no consumer is created for it", async () => {
    await using nats = await natsFixture();
    await using dir = await tempDir();
    await ensureStreams(await jetstreamManager(nats.nc), testConfig(dir.path).stream);
    const dlq = await DeadLetterQueue.open(nats.nc);
    for (let i = 1; i <= LETTERS; i++)
      await dlq.add({
        originalSeq: 1000 + i,
        subject: `tiles.in.c${String(i).padStart(4, "0")}r0000`,
        headers: headers(),
        data: new Uint8Array(i),
        code: "TILE_DECODE",
        reason: `letter ${i}`,
        deliveries: 2,
      });
    // Removed: the oldest, a run longer than a window (5-24) and a few single ones between others.
    const removed = new Set([1, ...Array.from({ length: 20 }, (_, i) => 5 + i), 30, 32, LETTERS]);
    for (const seq of removed) await dlq.remove(seq);

    // Every consumer creation on the server is a request on $JS.API.CONSUMER.CREATE / DURABLE.CREATE.
    const spy = await connect({ servers: nats.server.url, name: "consumer-spy" });
    try {
      const creates: string[] = [];
      const sub = spy.subscribe("$JS.API.CONSUMER.>", { callback: (_, m) => void creates.push(m.subject) });
      await spy.flush();
      const letters = await dlq.list();
      await nats.nc.flush();
      await spy.flush();
      sub.unsubscribe();

      const kept = Array.from({ length: LETTERS }, (_, i) => i + 1).filter((s) => !removed.has(s));
      assert.deepEqual(
        letters.map((l) => l.seq),
        kept,
        "every letter left, oldest first",
      );
      const third = letters.find((l) => l.seq === 3);
      assert.equal(third?.originalSeq, 1003);
      assert.equal(third?.cell, "c0003r0000");
      assert.equal(third?.reason, "letter 3");
      assert.equal(third?.code, "TILE_DECODE");
      assert.equal(third?.deliveries, 2);
      assert.equal(third?.bytes, 3, "the size of the letter's payload");
      assert.deepEqual(creates, [], "no consumer was created to list them");
    } finally {
      await spy.close();
    }
  });

  test("a queue whose stream does not exist yet lists nothing and creates nothing", async () => {
    await using nats = await natsFixture();
    const dlq = await DeadLetterQueue.open(nats.nc);
    assert.deepEqual(await dlq.list(), []);
    const jsm = await jetstreamManager(nats.nc);
    assert.deepEqual(await jsm.streams.names().next(), []);
  });
});
