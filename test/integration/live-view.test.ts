import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { connect } from "@nats-io/transport-node";
import { LiveView } from "../../shared/adapters/nats/index.js";
import { decodeClassRaster, type TileResult } from "../../shared/index.js";
import { liveRaster, liveResult } from "../helpers/live-results.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";

describe("the live view in JetStream KV", { skip: natsMissing() }, () => {
  test("a result written twice is one entry, readable with its raster by a follower", async () => {
    await using f = await natsFixture();
    const view = await LiveView.open(f.nc);
    await view.put({ result: liveResult("t1", "c0001r0001", 7), k: 5, raster: liveRaster });
    await view.put({ result: liveResult("t1", "c0001r0001", 7), k: 5, raster: liveRaster });
    const follower = await view.follow();
    const snap = follower.snapshot();
    assert.equal(snap.size, 1);
    const entry = snap.byTile.get("t1");
    assert.ok(entry);
    assert.equal(entry.result.ingestSeq, 7);
    const back = decodeClassRaster(await entry.raster(), 2, 2, entry.k);
    assert.deepEqual([...back.classes], [1, 1, 1, 2]);
    follower.stop();
  });

  test("list() reads every current entry, removals left out, without creating a consumer", async () => {
    await using f = await natsFixture();
    const view = await LiveView.open(f.nc);
    // More entries than one round of gets (32); one removed, one rewritten.
    for (let i = 0; i < 40; i++)
      await view.put({
        result: liveResult(`t${i}`, `c${String(i).padStart(4, "0")}r0001`, i + 1),
        k: 5,
        raster: liveRaster,
      });
    await view.remove("c0003r0001", "t3");
    await view.put({ result: liveResult("t5", "c0005r0001", 99), k: 5, raster: liveRaster });
    // Every consumer creation is a request on $JS.API.CONSUMER.CREATE (an ordered one for a KV watch).
    const spy = await connect({ servers: f.server.url, name: "consumer-spy" });
    const creates: string[] = [];
    const sub = spy.subscribe("$JS.API.CONSUMER.>", { callback: (_, m) => void creates.push(m.subject) });
    await spy.flush();
    const listed = await view.list();
    await f.nc.flush();
    await spy.flush();
    sub.unsubscribe();
    await spy.close();
    assert.deepEqual(creates, [], "no consumer was created to list it");
    assert.equal(listed.length, 39);
    assert.ok(!listed.some((e) => e.result.tileId === "t3"), "the removed entry is left out");
    assert.equal(
      listed.find((e) => e.result.tileId === "t5")?.result.ingestSeq,
      99,
      "the rewrite, not the first",
    );
    const follower = await view.follow();
    const followed = [...follower.snapshot().byTile.values()];
    follower.stop();
    const byTile = (es: readonly { result: TileResult; revision: number }[]) =>
      es.map((e) => `${e.result.tileId}@${e.revision}`).sort();
    assert.deepEqual(byTile(listed), byTile(followed), "the entries a follower holds, at their revisions");
    const back = decodeClassRaster(await listed[0]!.raster(), 2, 2, listed[0]!.k);
    assert.deepEqual([...back.classes], [1, 1, 1, 2]);
  });

  test("a follower sees later writes and removals, and old snapshots never change", async () => {
    await using f = await natsFixture();
    const view = await LiveView.open(f.nc);
    const changes: string[] = [];
    const follower = await view.follow((c) => changes.push(`${c.key}:${c.entry ? "put" : "del"}`));
    const before = follower.snapshot();
    await view.put({ result: liveResult("t1", "c0001r0001", 1), k: 5, raster: liveRaster });
    await view.put({ result: liveResult("t2", "c0001r0001", 2), k: 5, raster: liveRaster });
    await view.remove("c0001r0001", "t1");
    for (let i = 0; i < 100 && changes.length < 3; i++) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(changes, ["c0001r0001.t1:put", "c0001r0001.t2:put", "c0001r0001.t1:del"]);
    assert.equal(before.size, 0);
    const after = follower.snapshot();
    assert.deepEqual([...after.byTile.keys()], ["t2"]);
    assert.ok(after.position > before.position);
    follower.stop();
  });

  test("the view survives a nats-server restart: a new follower rebuilds the same entries", async () => {
    await using f = await natsFixture();
    const view = await LiveView.open(f.nc);
    for (let i = 1; i <= 5; i++)
      await view.put({ result: liveResult(`t${i}`, `c000${i}r0000`, i), k: 5, raster: liveRaster });
    const first = await view.follow();
    const a = [...first.snapshot().byTile.keys()].sort();
    first.stop();
    await f.server.kill();
    await f.server.restart();
    // The client reconnects by itself; wait until the bucket answers again.
    let again: Awaited<ReturnType<typeof view.follow>> | undefined;
    for (let i = 0; i < 100 && !again; i++) {
      again = await view.follow().catch(() => undefined);
      if (!again) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(again, "live view readable after restart");
    assert.deepEqual([...again.snapshot().byTile.keys()].sort(), a);
    again.stop();
  });

  test("a result rewritten with a raster spilled to the object store never purges the raster bucket, and reads its newest raster", async () => {
    await using f = await natsFixture();
    const view = await LiveView.open(f.nc);
    // Above the 768 KiB inline limit: each raster is an object of its own.
    const big = (fill: number) => new Uint8Array(800 * 1024).fill(fill);
    // A purge is a request on $JS.API.STREAM.PURGE.<stream> (an object put over an existing name
    // sends one for the old chunks; nats-server 2.9.10 then lost a node's copy: issue 14).
    const spy = await connect({ servers: f.server.url, name: "purge-spy" });
    const purges: string[] = [];
    const sub = spy.subscribe("$JS.API.STREAM.PURGE.>", { callback: (_, m) => void purges.push(m.subject) });
    await spy.flush();
    await view.put({ result: liveResult("t1", "c0001r0001", 1), k: 5, raster: big(1) });
    await view.put({ result: liveResult("t1", "c0001r0001", 1), k: 5, raster: big(1) });
    await view.put({ result: liveResult("t1", "c0001r0001", 2), k: 5, raster: big(2) });
    await f.nc.flush();
    await spy.flush();
    sub.unsubscribe();
    await spy.close();
    assert.deepEqual(purges, [], "no purge of the raster bucket");
    const entry = await view.get("c0001r0001", "t1");
    assert.ok(entry);
    assert.equal(entry.result.ingestSeq, 2);
    const back = await entry.raster();
    assert.equal(back.length, 800 * 1024);
    assert.ok(
      back.every((b) => b === 2),
      "the newest raster",
    );
  });

  test("a follower still delivering a burst of writes hears the removals made meanwhile, and ends equal to list()", async () => {
    await using f = await natsFixture();
    const view = await LiveView.open(f.nc);
    await view.put({ result: liveResult("t0", "c0000r0001", 1), k: 5, raster: liveRaster });
    const follower = await view.follow();
    // Written and removed without awaiting each (many speed workers and an `ops expire` at once), so
    // the watch is still delivering writes when the removals come: nats-server 2.9.10 then moved
    // its consumer past what it had not delivered yet, removals included (issue 14).
    const writes: Promise<unknown>[] = [];
    for (let i = 1; i <= 2_000; i++)
      writes.push(
        view.put({
          result: liveResult(`t${i}`, `c${String(i).padStart(4, "0")}r0001`, i + 1),
          k: 5,
          raster: liveRaster,
        }),
      );
    for (let i = 0; i < 100; i++) writes.push(view.remove(`c${String(i).padStart(4, "0")}r0001`, `t${i}`));
    await Promise.all(writes);
    const listed = (await view.list()).map((e) => e.result.tileId).sort();
    assert.equal(listed.length, 1_901);
    const heard = () => [...follower.snapshot().byTile.keys()].sort();
    for (let i = 0; i < 100 && heard().join() !== listed.join(); i++)
      await new Promise((r) => setTimeout(r, 25));
    const snap = follower.snapshot();
    follower.stop();
    assert.ok(!snap.byTile.has("t0") && !snap.byTile.has("t99"), "the removed results are gone");
    assert.deepEqual(
      [...snap.byTile.keys()].sort(),
      listed,
      "within 2.5 s the follower holds what the bucket holds",
    );
  });
});
