/**
 * The live view's spilled rasters in a bucket per period (issue 14): a raster over 768 KiB goes to
 * `lanemap-live-rasters-<yyyymm>` of the month it is written in, and `lanemap ops expire` drops a
 * past period's bucket whole (STREAM.DELETE) once no live entry names it, without ever purging
 * (a filtered STREAM.PURGE lost a node's copy on nats-server 2.9.10). Entries written before
 * periods keep reading the legacy `lanemap-live-rasters`. One nats-server; the clock is injected
 * (LiveView.open's `now`) rather than waited for.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, test } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { Objm } from "@nats-io/obj";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { FilePublishedViews } from "../../shared/adapters/archive/index.js";
import {
  LIVE_BUCKET,
  LIVE_RASTER_BUCKET,
  LiveView,
  liveKey,
  putObjectOnce,
} from "../../shared/adapters/nats/index.js";
import { encodeClassRaster, type ClassRaster } from "../../shared/index.js";
import { collectStatus, expireAbsorbed, formatStatus } from "../../infra/ops/index.js";
import { LiveSource } from "../../serving/view/live-source.js";
import { LruCache } from "../../serving/view/lru-cache.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import { liveResult } from "../helpers/live-results.js";
import {
  DEFAULT_GRID,
  lonLatTile,
  makeRaster,
  tempDataDir,
  writeBatchView,
} from "../helpers/serving-views.js";
import { testLogger } from "./batch-fixture.js";

/** 640×640 pixels of noise: its encoding is over the 768 KiB a KV value may hold, so it is spilled. */
const SIDE = 640;

/** A class raster of noise from `seed` (xorshift32), whose deflated bytes do not shrink. */
function noise(seed: number): ClassRaster {
  let x = seed >>> 0 || 1;
  const next = (): number => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) & 0xff;
  };
  const n = SIDE * SIDE;
  const classes = new Uint8Array(n).map(next);
  const votes = new Uint8Array(n).map(next);
  return { width: SIDE, height: SIDE, k: 255, classes, votes };
}

/** A live result of `tileId` with ingest sequence `seq` and the noise of `seed` as its raster. */
function spilled(tileId: string, cell: string, seq: number, seed: number) {
  const raster = encodeClassRaster(noise(seed));
  assert.ok(raster.length > 768 * 1024, "the raster is spilled to the object store");
  return { result: { ...liveResult(tileId, cell, seq), width: SIDE, height: SIDE }, k: 255, raster };
}

const at = (iso: string) => () => new Date(iso);
/** Bytes compared by digest: a failing deepEqual of 800 KiB arrays would spend minutes on its diff. */
const digest = (bytes: Uint8Array | undefined) =>
  bytes === undefined ? "none" : createHash("sha256").update(bytes).digest("hex");
const stream = (bucket: string) => `OBJ_${bucket}`;

/** The live raster streams on the server, sorted. */
async function rasterStreams(nc: NatsConnection): Promise<string[]> {
  const out: string[] = [];
  for await (const s of (await jetstreamManager(nc)).streams.names())
    if (s.startsWith(stream(LIVE_RASTER_BUCKET))) out.push(s);
  return out.sort();
}

/** Watches the JetStream API requests a test must (not) send, on a connection of its own. */
async function apiSpy(url: string) {
  const spy = await connect({ servers: url, name: "api-spy" });
  const purges: string[] = [];
  const deletes: string[] = [];
  spy.subscribe("$JS.API.STREAM.PURGE.>", { callback: (_, m) => void purges.push(m.subject) });
  spy.subscribe("$JS.API.STREAM.DELETE.>", { callback: (_, m) => void deletes.push(m.subject) });
  await spy.flush();
  return {
    purges,
    deletes,
    flush: () => spy.flush(),
    async [Symbol.asyncDispose]() {
      await spy.close();
    },
  };
}

describe("the live view's spilled rasters, a bucket per period", { skip: natsMissing() }, () => {
  test("ops expire drops a past period's raster bucket once no entry names it, keeps the current one, and never purges", async () => {
    await using f = await natsFixture();
    await using data = await tempDataDir();
    await using spy = await apiSpy(f.server.url);
    const logger = testLogger();
    const october = await LiveView.open(f.nc, { now: at("2026-10-20T12:00:00Z") });
    const november = await LiveView.open(f.nc, { now: at("2026-11-03T08:00:00Z") });
    await october.put(spilled("t1", "c0001r0001", 5, 1));
    await october.put(spilled("t2", "c0002r0001", 2, 2));
    await november.put(spilled("t4", "c0004r0001", 9, 4));
    const t1Again = spilled("t1", "c0001r0001", 5, 11);
    await november.put(t1Again); // t1 classified again in November
    assert.deepEqual(await rasterStreams(f.nc), [
      stream("lanemap-live-rasters-202610"),
      stream("lanemap-live-rasters-202611"),
    ]);
    // A batch view absorbing t2 (ingest sequence 2), published as the batch lane does.
    await writeBatchView(data.dir, {
      version: 1,
      watermark: 2,
      tiles: [
        lonLatTile(DEFAULT_GRID, {
          col: 0,
          row: 0,
          tileId: "b1",
          lane: "batch",
          acquired: "2026-10-01T00:00:00Z",
          ingestSeq: 1,
          raster: makeRaster(4, () => 1),
        }),
      ],
    });
    const views = new FilePublishedViews(data.dir);

    // Half an hour into November a writer's put may still name October: October counts as current.
    const boundary = await LiveView.open(f.nc, { now: at("2026-11-01T00:30:00Z") });
    const early = await expireAbsorbed({ views, live: boundary, dryRun: true, logger });
    assert.deepEqual(early.rasterBuckets?.dropped, []);
    assert.deepEqual(early.rasterBuckets?.kept, [
      { bucket: "lanemap-live-rasters-202610", why: "current" },
      { bucket: "lanemap-live-rasters-202611", why: "current" },
    ]);

    // The run that removes t2 keeps October's bucket, which t2 named when it started.
    const first = await expireAbsorbed({ views, live: november, dryRun: false, logger });
    assert.deepEqual(
      first.results.map((r) => r.tileId),
      ["t2"],
    );
    assert.deepEqual(first.rasterBuckets?.dropped, []);
    assert.deepEqual(first.rasterBuckets?.kept, [
      { bucket: "lanemap-live-rasters-202610", why: "named" },
      { bucket: "lanemap-live-rasters-202611", why: "current" },
    ]);
    assert.equal((await rasterStreams(f.nc)).length, 2);

    // The next run finds October named by no entry (t1 rewritten into November, t2 removed): dropped whole.
    const second = await expireAbsorbed({ views, live: november, dryRun: false, logger });
    assert.equal(second.removed, 0);
    assert.deepEqual(second.rasterBuckets?.dropped, ["lanemap-live-rasters-202610"]);
    assert.deepEqual(second.rasterBuckets?.kept, [{ bucket: "lanemap-live-rasters-202611", why: "current" }]);
    assert.deepEqual(await rasterStreams(f.nc), [stream("lanemap-live-rasters-202611")]);

    const t1 = await november.get("c0001r0001", "t1");
    assert.equal(t1?.rasterBucket, "lanemap-live-rasters-202611");
    assert.equal(
      digest(await t1?.raster()),
      digest(t1Again.raster),
      "the rewrite's raster, from November's bucket",
    );
    assert.ok(await (await november.get("c0004r0001", "t4"))?.raster());

    await f.nc.flush();
    await spy.flush();
    assert.deepEqual(spy.purges, [], "no purge request was sent");
    assert.deepEqual(spy.deletes, [`$JS.API.STREAM.DELETE.${stream("lanemap-live-rasters-202610")}`]);
  });

  test("an entry still naming a past period keeps its bucket, and an entry written before periods keeps reading the legacy bucket, both served by the live source", async () => {
    await using f = await natsFixture();
    await using data = await tempDataDir(); // nothing published: expire removes nothing, still reclaims
    const logger = testLogger();
    const september = await LiveView.open(f.nc, { now: at("2026-09-10T00:00:00Z") });
    const november = await LiveView.open(f.nc, { now: at("2026-11-03T08:00:00Z") });
    const kept = spilled("t1", "c0001r0001", 1, 1);
    await september.put(kept);

    // An entry as the release before periods wrote it: the raster in lanemap-live-rasters, the
    // envelope ("LMR1", u32 JSON length, the JSON) naming the object and no period.
    const legacy = spilled("t9", "c0009r0001", 3, 9);
    const key = liveKey("c0009r0001", "t9");
    const name = `${key}.${createHash("sha256").update(legacy.raster).digest("hex")}`;
    await new Objm(f.nc).create(LIVE_RASTER_BUCKET, { storage: "file" });
    await putObjectOnce(f.nc, LIVE_RASTER_BUCKET, name, legacy.raster);
    const json = new TextEncoder().encode(
      JSON.stringify({ result: legacy.result, k: 255, rasterObject: name }),
    );
    const envelope = new Uint8Array(8 + json.length);
    envelope.set([0x4c, 0x4d, 0x52, 0x31]);
    new DataView(envelope.buffer).setUint32(4, json.length, true);
    envelope.set(json, 8);
    await (await new Kvm(f.nc).open(LIVE_BUCKET)).put(key, envelope);

    const views = new FilePublishedViews(data.dir);
    const run = await expireAbsorbed({ views, live: november, dryRun: false, logger });
    assert.deepEqual(run.rasterBuckets?.dropped, []);
    assert.deepEqual(run.rasterBuckets?.kept, [
      { bucket: LIVE_RASTER_BUCKET, why: "named" },
      { bucket: "lanemap-live-rasters-202609", why: "named" },
    ]);

    // ops status names each raster bucket with its size and the results naming it.
    const status = await collectStatus({ dataDir: data.dir, nats: { nc: f.nc, url: f.server.url }, logger });
    assert.deepEqual(
      status.live?.rasterBuckets.map((b) => [b.bucket, b.period, b.named, b.bytes > 800 * 1024]),
      [
        [LIVE_RASTER_BUCKET, null, 1, true],
        ["lanemap-live-rasters-202609", "202609", 1, true],
      ],
    );
    assert.match(
      formatStatus(status),
      /rasters lanemap-live-rasters-202609 {2}0\.8 MB in \d+ message\(s\), named by 1 result/,
    );

    const source = new LiveSource({ nc: f.nc, cache: new LruCache(1 << 24, () => 1), logger });
    try {
      await source.start();
      const served = async (tileId: string) => {
        const entry = source.snapshot()?.byTile.get(tileId);
        assert.ok(entry, `${tileId} is in the live view`);
        return digest((await source.served(entry).raster()).classes);
      };
      assert.equal(await served("t1"), digest(noise(1).classes), "September's raster");
      assert.equal(await served("t9"), digest(noise(9).classes), "the legacy raster");

      // Once the legacy entry is gone, the legacy bucket goes; September's, still named, stays.
      await november.remove("c0009r0001", "t9");
      const again = await expireAbsorbed({ views, live: november, dryRun: false, logger });
      assert.deepEqual(again.rasterBuckets?.dropped, [LIVE_RASTER_BUCKET]);
      assert.deepEqual(await rasterStreams(f.nc), [stream("lanemap-live-rasters-202609")]);
      const fresh = new LruCache<ClassRaster>(1 << 24, () => 1);
      const reread = new LiveSource({ nc: f.nc, cache: fresh, logger });
      try {
        await reread.start();
        const entry = reread.snapshot()?.byTile.get("t1");
        assert.ok(entry);
        assert.equal(digest((await reread.served(entry).raster()).classes), digest(noise(1).classes));
        assert.equal(reread.snapshot()?.byTile.has("t9"), false);
      } finally {
        reread.close();
      }
    } finally {
      source.close();
    }
  });
});
