import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { connect } from "@nats-io/transport-node";
import { decode as decodePng } from "fast-png";
import { LiveView } from "../../shared/adapters/nats/index.js";
import { natsFixture, natsMissing, startNatsServer } from "../helpers/nats.js";
import { eventually, startServing } from "../helpers/serving-server.js";
import {
  DEFAULT_GRID,
  lonLatTile,
  makeRaster,
  putLive,
  tempDataDir,
  writeBatchView,
} from "../helpers/serving-views.js";

const batchTile = (col: number, row: number, seq: number, day: number) =>
  lonLatTile(DEFAULT_GRID, {
    col,
    row,
    tileId: `b${col}${row}`,
    lane: "batch",
    acquired: `2026-01-${String(day).padStart(2, "0")}T10:00:00Z`,
    ingestSeq: seq,
    raster: makeRaster(4, () => 1),
  });
const liveTile = (id: string, col: number, row: number, seq: number, day: number, cls = 2) =>
  lonLatTile(DEFAULT_GRID, {
    col,
    row,
    tileId: id,
    lane: "live",
    acquired: `2026-01-${String(day).padStart(2, "0")}T10:00:00Z`,
    ingestSeq: seq,
    raster: makeRaster(4, () => cls),
  });

interface Item {
  cell: string;
  tileId: string;
  lane: string;
  provenance: {
    lane: string;
    batchVersion: number | null;
    watermark: number | null;
    livePosition: number | null;
    staleness: { viewAgeS: number | null };
  };
}

describe("serving with the live view", { skip: natsMissing() }, () => {
  test("live results above the watermark compete by acquisition, those at or below are absorbed, and provenance names the lane", async () => {
    await using nats = await natsFixture();
    await using data = await tempDataDir();
    await writeBatchView(data.dir, {
      version: 1,
      watermark: 100,
      tiles: [batchTile(0, 0, 10, 5), batchTile(1, 0, 11, 5), batchTile(2, 0, 12, 5)],
    });
    const view = await LiveView.open(nats.nc);
    await putLive(view, [
      liveTile("newer", 0, 0, 150, 9), // newer acquisition above W: wins
      liveTile("absorbed", 1, 0, 90, 9), // at or below W: already in the batch, never competes
      liveTile("late-old", 2, 0, 160, 1), // above W but an older scene: the batch's newer one stays
      liveTile("fresh", 0, 1, 170, 3), // a cell only the speed lane has seen
    ]);
    await using srv = await startServing({ dataDir: data.dir, nc: nats.nc });
    const list = await srv.json<{ items: Item[]; snapshot: { live: { position: number; size: number } } }>(
      "/v1/tiles",
    );
    assert.deepEqual(
      list.body.items.map((i) => [i.cell, i.tileId, i.lane]),
      [
        ["c0000r0000", "newer", "live"],
        ["c0000r0001", "fresh", "live"],
        ["c0001r0000", "b10", "batch"],
        ["c0002r0000", "b20", "batch"],
      ],
    );
    const live = list.body.items[0]!;
    assert.equal(live.provenance.lane, "live");
    assert.equal(live.provenance.batchVersion, 1);
    assert.equal(live.provenance.watermark, 100);
    assert.equal(live.provenance.staleness.viewAgeS, null);
    assert.equal(live.provenance.livePosition, list.body.snapshot.live.position);
    assert.equal(list.body.snapshot.live.size, 4);
    const batch = list.body.items[2]!;
    assert.ok((batch.provenance.staleness.viewAgeS ?? -1) >= 0);
    const d = await srv.json<{ absorbed: { tileId: string }[]; candidates: { tileId: string }[] }>(
      "/v1/tiles/c0001r0000",
    );
    assert.deepEqual(
      d.body.absorbed.map((a) => a.tileId),
      ["absorbed"],
    );
    assert.deepEqual(
      d.body.candidates.map((a) => a.tileId),
      ["b10"],
    );
    const late = await srv.json<{
      candidates: { tileId: string; lane: string }[];
      winner: { tileId: string };
    }>("/v1/tiles/c0002r0000");
    assert.deepEqual(
      late.body.candidates.map((c) => c.tileId),
      ["b20", "late-old"],
    );
    // The live winner's raster comes from the KV entry.
    const p = await srv.json<{ class: { id: number }; tileId: string; provenance: { lane: string } }>(
      "/v1/point?lon=10.02&lat=49.98",
    );
    assert.deepEqual([p.body.tileId, p.body.class.id, p.body.provenance.lane], ["newer", 2, "live"]);
    const png = decodePng(
      new Uint8Array(await (await srv.get("/v1/tiles/c0000r0000/classes.png")).arrayBuffer()),
    );
    assert.ok([...png.data].every((v) => v === 2));
    const lane = await srv.json<{ items: Item[] }>("/v1/tiles?lane=live");
    assert.deepEqual(
      lane.body.items.map((i) => i.tileId),
      ["newer", "fresh", "absorbed", "late-old"],
    );
  });

  test("a live write while serving appears without a restart and is announced as a live-change event", async () => {
    await using nats = await natsFixture();
    await using data = await tempDataDir();
    await writeBatchView(data.dir, { version: 1, watermark: 100, tiles: [batchTile(0, 0, 10, 5)] });
    await using srv = await startServing({ dataDir: data.dir, nc: nats.nc });
    const ctrl = new AbortController();
    const res = await fetch(srv.url + "/v1/events", { signal: ctrl.signal });
    const reader = res.body!.getReader();
    let text = "";
    const read = async (until: RegExp) => {
      while (!until.test(text)) {
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
    };
    await read(/event: hello/);
    const [position] = await putLive(await LiveView.open(nats.nc), [liveTile("new", 0, 0, 200, 9)]);
    await read(/event: live-change\ndata: .*\n\n/);
    const ev = JSON.parse(/event: live-change\ndata: (.*)\n/.exec(text)?.[1] ?? "{}") as {
      cell: string;
      tileId: string;
      op: string;
      position: number;
    };
    assert.deepEqual(ev, { key: "c0000r0000.new", op: "put", cell: "c0000r0000", tileId: "new", position });
    ctrl.abort();
    const winner = await eventually(async () => {
      const r = await srv.json<{ items: Item[] }>("/v1/tiles");
      return r.body.items[0]?.tileId === "new" ? r.body.items[0] : undefined;
    });
    assert.equal(winner.lane, "live");
  });

  test("/v1/views reports the live view's position, size and lag from the newest processing time", async () => {
    await using nats = await natsFixture();
    await using data = await tempDataDir();
    const processedAt = new Date(Date.now() - 60_000).toISOString();
    const t = liveTile("x", 0, 0, 5, 2);
    await putLive(await LiveView.open(nats.nc), [{ ...t, result: { ...t.result, processedAt } }]);
    await using srv = await startServing({ dataDir: data.dir, nc: nats.nc });
    const v = await srv.json<{
      live: {
        configured: boolean;
        state: string;
        position: number;
        size: number;
        newestProcessedAt: string;
        sinceNewestResultS: number;
      };
      batch: { state: string };
    }>("/v1/views");
    assert.equal(v.body.batch.state, "none-yet");
    assert.equal(v.body.live.configured, true);
    assert.equal(v.body.live.state, "following");
    assert.equal(v.body.live.size, 1);
    assert.ok(v.body.live.position >= 1);
    assert.equal(v.body.live.newestProcessedAt, processedAt);
    assert.ok(v.body.live.sinceNewestResultS >= 60);
    // Nothing published yet: the live result alone answers, with no batch in its provenance.
    const list = await srv.json<{ items: Item[] }>("/v1/tiles");
    assert.equal(list.body.items[0]?.provenance.batchVersion, null);
  });

  test("readiness: batch-only serving is ready without NATS; with NATS it is not ready while NATS is away", async () => {
    await using data = await tempDataDir();
    await writeBatchView(data.dir, { version: 1, watermark: 100, tiles: [batchTile(0, 0, 10, 5)] });
    await using batchOnly = await startServing({ dataDir: data.dir });
    const r0 = await batchOnly.json<{ ready: boolean; live: { configured: boolean } }>("/ready");
    assert.equal(r0.status, 200);
    assert.equal(r0.body.live.configured, false);

    await using server = await startNatsServer();
    const nc = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 50 });
    try {
      await using srv = await startServing({ dataDir: data.dir, nc });
      assert.equal((await srv.get("/ready")).status, 200);
      await server.kill("SIGKILL");
      const down = await eventually(async () => {
        const r = await srv.json<{ ready: boolean; live: { state: string } }>("/ready");
        return r.status === 503 ? r.body : undefined;
      });
      assert.equal(down.live.state, "disconnected");
      // Batch answers keep flowing while the live view is away.
      assert.equal((await srv.get("/v1/tiles")).status, 200);
      await server.restart();
      await eventually(async () => ((await srv.get("/ready")).status === 200 ? true : undefined));
    } finally {
      await nc.close();
    }
  });
});
