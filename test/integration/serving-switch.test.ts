import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import { pino } from "pino";
import { setCurrentBatch } from "../../shared/adapters/archive/index.js";
import { dataPaths, type ClassRaster } from "../../shared/index.js";
import { BatchViewSource } from "../../serving/view/batch-source.js";
import { LruCache } from "../../serving/view/lru-cache.js";
import { SnapshotManager } from "../../serving/view/snapshot.js";
import { eventually, startServing } from "../helpers/serving-server.js";
import {
  DEFAULT_GRID,
  lonLatTile,
  makeRaster,
  tempDataDir,
  writeBatchView,
  type TileFixture,
} from "../helpers/serving-views.js";

/** Version v of a 4×4-cell view: every pixel of every tile is class v, model "m-v<v>". */
function versionTiles(v: number): TileFixture[] {
  const out: TileFixture[] = [];
  for (let col = 0; col < 4; col++)
    for (let row = 0; row < 4; row++)
      out.push(
        lonLatTile(DEFAULT_GRID, {
          col,
          row,
          tileId: `v${v}-${col}-${row}`,
          lane: "batch",
          acquired: `2026-0${v}-01T10:00:00Z`,
          ingestSeq: v * 100 + col * 4 + row,
          raster: makeRaster(4, () => v),
          modelVersion: `m-v${v}`,
        }),
      );
  return out;
}

const publish = (dir: string, v: number, opts: { publish?: boolean } = {}) =>
  writeBatchView(dir, {
    version: v,
    watermark: v * 100 + 50,
    modelVersion: `m-v${v}`,
    tiles: versionTiles(v),
    ...opts,
  });

interface Snap {
  batch: { version: number } | null;
}

describe("batch view switching", () => {
  test("a version published during a stream of concurrent queries: every answer reads exactly one batch version", async () => {
    await using data = await tempDataDir();
    await publish(data.dir, 1);
    await using srv = await startServing({ dataDir: data.dir, options: { pollIntervalMs: 50 } });
    let done = false;
    const seen = new Set<number>();
    let answers = 0;
    const check = (ok: boolean, what: string) => assert.ok(ok, what);
    const loop = async (i: number) => {
      while (!done) {
        const kind = answers++ % 4;
        if (kind === 0) {
          const r = await srv.json<{
            items: { modelVersion: string; provenance: { batchVersion: number } }[];
            snapshot: Snap;
          }>("/v1/tiles?limit=100");
          const v = r.body.snapshot.batch?.version ?? 0;
          seen.add(v);
          check(r.body.items.length === 16, "16 cells");
          for (const it of r.body.items) {
            check(
              it.provenance.batchVersion === v,
              `item of batch ${it.provenance.batchVersion} in a v${v} answer`,
            );
            check(it.modelVersion === `m-v${v}`, `item of ${it.modelVersion} in a v${v} answer`);
          }
        } else if (kind === 1) {
          const r = await srv.json<{
            classes: { id: number; pixels: number }[];
            provenance: { modelVersions: string[]; batchVersion: number };
            snapshot: Snap;
          }>("/v1/stats?bbox=10.02,49.85,10.15,49.99");
          const v = r.body.snapshot.batch?.version ?? 0;
          check(r.body.provenance.batchVersion === v, "stats provenance matches its snapshot");
          check(
            JSON.stringify(r.body.provenance.modelVersions) === JSON.stringify([`m-v${v}`]),
            "stats read one model",
          );
          for (const c of r.body.classes)
            check(c.pixels === 0 || c.id === v, `class ${c.id} pixels in a v${v} answer`);
        } else if (kind === 2) {
          const r = await srv.json<{
            class: { id: number };
            provenance: { batchVersion: number; modelVersion: string };
          }>(`/v1/point?lon=10.05&lat=49.95`);
          const v = r.body.provenance.batchVersion;
          check(
            r.body.class.id === v && r.body.provenance.modelVersion === `m-v${v}`,
            "point reads its own version",
          );
        } else {
          const r = await srv.json<{
            winner: { tileId: string; provenance: { batchVersion: number } };
            candidates: unknown[];
            snapshot: Snap;
          }>(`/v1/tiles/c000${i % 4}r0001`);
          const v = r.body.snapshot.batch?.version ?? 0;
          check(r.body.winner.tileId.startsWith(`v${v}-`), "detail winner from its own version");
        }
      }
    };
    const loops = Array.from({ length: 6 }, (_, i) => loop(i));
    for (const v of [2, 3]) {
      await publish(data.dir, v);
      await eventually(() => (seen.has(v) ? true : undefined));
    }
    // Roll back to 1 while the queries keep running.
    await setCurrentBatch(data.dir, "v000001");
    const before = answers;
    await eventually(async () => {
      const r = await srv.json<{ batch: { current: string } }>("/v1/views");
      return r.body.batch.current === "v000001" && answers > before + 20 ? true : undefined;
    });
    done = true;
    await Promise.all(loops);
    assert.deepEqual([...seen].sort(), [1, 2, 3]);
  });

  test("a rollback (CURRENT pointing at an older version) is served without a restart", async () => {
    await using data = await tempDataDir();
    await publish(data.dir, 1);
    await publish(data.dir, 2);
    await using srv = await startServing({ dataDir: data.dir });
    assert.equal((await srv.json<{ snapshot: Snap }>("/v1/tiles")).body.snapshot.batch?.version, 2);
    await setCurrentBatch(data.dir, "v000001");
    const v = await eventually(async () => {
      const r = await srv.json<{ items: { modelVersion: string }[]; snapshot: Snap }>("/v1/tiles");
      return r.body.snapshot.batch?.version === 1 ? r.body : undefined;
    });
    assert.ok(v.items.every((i) => i.modelVersion === "m-v1"));
    const views = await srv.json<{
      batch: { current: string; versions: { name: string; current: boolean }[] };
    }>("/v1/views");
    assert.deepEqual(
      views.body.batch.versions.map((x) => [x.name, x.current]),
      [
        ["v000001", true],
        ["v000002", false],
      ],
    );
  });

  test("a publish is heard through the folder watch, long before the periodic check would run", async () => {
    await using data = await tempDataDir();
    await publish(data.dir, 1);
    await using srv = await startServing({ dataDir: data.dir, options: { pollIntervalMs: 3_600_000 } });
    await publish(data.dir, 2);
    const v = await eventually(async () => {
      const r = await srv.json<{ snapshot: Snap }>("/v1/tiles?limit=1");
      return r.body.snapshot.batch?.version === 2 ? 2 : undefined;
    });
    assert.equal(v, 2);
  });

  test("a version that cannot be opened leaves the previous one serving, and /v1/views says why", async () => {
    await using data = await tempDataDir();
    await publish(data.dir, 1);
    await using srv = await startServing({ dataDir: data.dir });
    const name = await publish(data.dir, 2, { publish: false });
    await writeFile(join(dataPaths(data.dir).batchViews, name, "view.duckdb"), "this is not a database");
    await setCurrentBatch(data.dir, name);
    const views = await eventually(async () => {
      const r = await srv.json<{ batch: { current: string; error: string | null } }>("/v1/views");
      return r.body.batch.error ? r.body : undefined;
    });
    assert.equal(views.batch.current, "v000001");
    assert.match(views.batch.error ?? "", /v000002/);
    assert.equal((await srv.json<{ snapshot: Snap }>("/v1/tiles")).body.snapshot.batch?.version, 1);
    assert.equal((await srv.get("/ready")).status, 200);
  });

  test("the old version stays open for the requests still reading it and closes when the last one finishes", async () => {
    await using data = await tempDataDir();
    await publish(data.dir, 1);
    const cache = new LruCache<ClassRaster>(1 << 20, (r) => r.classes.length * 2);
    const source = new BatchViewSource({
      dataDir: data.dir,
      cache,
      logger: pino({ level: "silent" }),
      pollIntervalMs: 3_600_000,
    });
    await source.start();
    const snapshots = new SnapshotManager({ batch: source, live: null });
    const inFlight = snapshots.acquire();
    const old = inFlight.snapshot.batch!;
    assert.equal(old.version, 1);
    await publish(data.dir, 2);
    await source.check();
    const fresh = snapshots.acquire();
    assert.equal(fresh.snapshot.batch?.version, 2);
    assert.equal(old.closed, false, "v1 stays open while a request reads it");
    // The in-flight request can still read rasters of its version.
    const r = inFlight.snapshot.index.byCell.get("c0000r0000")?.winner;
    assert.equal((await r!.raster()).classes[0], 1);
    inFlight.release();
    assert.equal(old.closed, true, "v1 closes when its last request finishes");
    fresh.release();
    snapshots.close();
    await source.close();
    assert.equal(fresh.snapshot.batch?.closed, true);
  });

  test("a cursor keeps paging the snapshot it started on across a publish, and an expired one is 410 Gone", async () => {
    await using data = await tempDataDir();
    await publish(data.dir, 1);
    await using srv = await startServing({ dataDir: data.dir });
    const first = await srv.json<{ items: { cell: string }[]; cursor: string; snapshot: Snap }>(
      "/v1/tiles?limit=5",
    );
    await publish(data.dir, 2);
    await eventually(async () =>
      (await srv.json<{ snapshot: Snap }>("/v1/tiles?limit=1")).body.snapshot.batch?.version === 2
        ? true
        : undefined,
    );
    const second = await srv.json<{ items: { cell: string; modelVersion: string }[]; snapshot: Snap }>(
      `/v1/tiles?limit=5&cursor=${first.body.cursor}`,
    );
    assert.equal(second.body.snapshot.batch?.version, 1);
    assert.ok(second.body.items.every((i) => i.modelVersion === "m-v1"));
    assert.ok((second.body.items[0]?.cell ?? "") > (first.body.items[4]?.cell ?? ""));

    await using noRetain = await startServing({ dataDir: data.dir, options: { cursorRetainMs: 0 } });
    const a = await noRetain.json<{ cursor: string }>("/v1/tiles?limit=5");
    await publish(data.dir, 3);
    await eventually(async () =>
      (await noRetain.json<{ snapshot: Snap }>("/v1/tiles?limit=1")).body.snapshot.batch?.version === 3
        ? true
        : undefined,
    );
    const gone = await noRetain.json<{ type: string; status: number }>(
      `/v1/tiles?limit=5&cursor=${a.body.cursor}`,
    );
    assert.equal(gone.status, 410);
    assert.equal(gone.body.type, "/problems/cursor-expired");
  });

  test("server-sent events announce a batch view switch", async () => {
    await using data = await tempDataDir();
    await publish(data.dir, 1);
    await using srv = await startServing({ dataDir: data.dir });
    const ctrl = new AbortController();
    const res = await fetch(srv.url + "/v1/events", { signal: ctrl.signal });
    assert.equal(res.headers.get("content-type"), "text/event-stream; charset=utf-8");
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
    assert.match(text, /"version":1/);
    await publish(data.dir, 2);
    await read(/event: batch-switch\ndata: .*\n\n/);
    const data2 = /event: batch-switch\ndata: (.*)\n/.exec(text)?.[1] ?? "{}";
    const ev = JSON.parse(data2) as { from: { version: number }; to: { version: number; watermark: number } };
    assert.equal(ev.from.version, 1);
    assert.equal(ev.to.version, 2);
    assert.equal(ev.to.watermark, 250);
    ctrl.abort();
  });
});
