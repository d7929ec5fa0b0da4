import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import fc from "fast-check";
import { decode as decodePng } from "fast-png";
import { ArchiveStore } from "../../shared/adapters/archive/index.js";
import { ARROW_STREAM_MEDIA_TYPE, decodeArrowStream } from "../../shared/adapters/arrow/index.js";
import { decodeGeoTiff, encodeGeoTiff } from "../../shared/index.js";
import { BatchRunActiveError, type BatchTrigger, type RunStatus } from "../../serving/index.js";
import { findOperation, validateResponse } from "../helpers/serving-openapi.js";
import { startServing, type ServingFixture } from "../helpers/serving-server.js";
import {
  DEFAULT_GRID,
  TEST_CLASSES,
  lonLatTile,
  makeRaster,
  tempDataDir,
  writeBatchView,
  type TileFixture,
} from "../helpers/serving-views.js";

const TOKEN = "operator-token-0123456789";

/** A BatchTrigger that keeps runs in memory: one active at a time, finished on demand. */
class InMemoryTrigger implements BatchTrigger {
  readonly runs = new Map<string, RunStatus>();
  private active: string | undefined;
  async trigger(opts: { full?: boolean }): Promise<{ runId: string }> {
    if (this.active) throw new BatchRunActiveError(this.active);
    const runId = `run-${this.runs.size + 1}`;
    this.runs.set(runId, {
      runId,
      state: "running",
      full: opts.full ?? false,
      startedAt: new Date().toISOString(),
    });
    this.active = runId;
    return { runId };
  }
  async status(runId: string): Promise<RunStatus | undefined> {
    return this.runs.get(runId);
  }
  finish(): void {
    const id = this.active;
    if (!id) return;
    const s = this.runs.get(id);
    if (s)
      this.runs.set(id, {
        ...s,
        state: "succeeded",
        finishedAt: new Date(Date.parse(s.startedAt ?? "") + 90_000).toISOString(),
        failedTiles: 3,
        publishedVersion: 2,
      });
    this.active = undefined;
  }
}

interface Exchange {
  method: string;
  path: string;
  status: number;
  contentType: string;
  body: unknown;
  bytes: Uint8Array;
}

async function exchange(
  base: string,
  method: string,
  path: string,
  init: { headers?: Record<string, string>; body?: string } = {},
): Promise<Exchange> {
  const ctrl = new AbortController();
  const res = await fetch(base + path, {
    method,
    headers: init.headers ?? {},
    body: init.body ?? null,
    signal: ctrl.signal,
  });
  const contentType = res.headers.get("content-type") ?? "";
  let bytes: Uint8Array;
  if (contentType.startsWith("text/event-stream")) {
    // An event stream never ends: read the first frame, then hang up.
    const reader = res.body!.getReader();
    const first = await reader.read();
    bytes = first.value ?? new Uint8Array();
    ctrl.abort();
  } else bytes = new Uint8Array(await res.arrayBuffer());
  const text = new TextDecoder().decode(bytes);
  const body = /json/.test(contentType) ? (JSON.parse(text) as unknown) : text;
  return { method, path: path.split("?")[0] ?? path, status: res.status, contentType, body, bytes };
}

describe("the serving API over a published batch view", () => {
  let dataDir: { dir: string } & AsyncDisposable;
  let srv: ServingFixture;
  let trigger: InMemoryTrigger;
  let doc: Record<string, unknown>;
  let sourceBytes: Uint8Array;
  const tiles: TileFixture[] = [];

  before(async () => {
    dataDir = await tempDataDir();
    const archive = new ArchiveStore(dataDir.dir);
    sourceBytes = encodeGeoTiff({
      width: 4,
      height: 4,
      bands: [new Uint8Array(16).fill(7)],
      epsg: 4326,
      geoTransform: [10.04, 0.01, 0, 49.96, 0, -0.01],
    });
    const { contentHash } = await archive.putObject(sourceBytes);
    for (let col = 0; col < 3; col++)
      for (let row = 0; row < 3; row++) {
        const t = lonLatTile(DEFAULT_GRID, {
          col,
          row,
          tileId: `t${col}${row}`,
          lane: "batch",
          acquired: `2026-01-0${1 + row}T10:00:00Z`,
          ingestSeq: 1 + col * 3 + row,
          raster: makeRaster(
            4,
            (c, r) => (c + r + col) % 5,
            5,
            (c) => 2 + (c % 4),
          ),
        });
        tiles.push(col === 1 && row === 1 ? { ...t, result: { ...t.result, contentHash } } : t);
      }
    // An older acquisition of cell c0000r0000 that the newer t00 supersedes.
    tiles.push(
      lonLatTile(DEFAULT_GRID, {
        col: 0,
        row: 0,
        tileId: "old00",
        lane: "batch",
        acquired: "2025-12-01T10:00:00Z",
        ingestSeq: 0,
        raster: makeRaster(4, () => 1),
      }),
    );
    await writeBatchView(dataDir.dir, { version: 1, watermark: 100, tiles });
    trigger = new InMemoryTrigger();
    srv = await startServing({
      dataDir: dataDir.dir,
      batchTrigger: trigger,
      env: { LANEMAP_OPERATOR_TOKEN: TOKEN, LANEMAP_CORS_ORIGINS: "https://map.example" },
    });
    doc = (await srv.json("/openapi.json")).body;
  });

  after(async () => {
    await srv[Symbol.asyncDispose]();
    await dataDir[Symbol.asyncDispose]();
  });

  test("every endpoint's real responses match the OpenAPI document, and every documented operation is exercised", async () => {
    const auth = { authorization: `Bearer ${TOKEN}` };
    const json = { "content-type": "application/json" };
    const poly = JSON.stringify({
      type: "Polygon",
      coordinates: [
        [
          [10, 49.9],
          [10.1, 49.9],
          [10.05, 50],
          [10, 49.9],
        ],
      ],
    });
    const first = await srv.json<{ cursor: string }>("/v1/tiles?limit=2");
    const stacFirst = await srv.json<{ links: { rel: string; href: string }[] }>("/stac/search?limit=2");
    const stacNext = stacFirst.body.links.find((l) => l.rel === "next")?.href ?? "";
    const requests: [string, string, { headers?: Record<string, string>; body?: string }?][] = [
      ["GET", "/health"],
      ["GET", "/ready"],
      ["GET", "/metrics"],
      ["GET", "/openapi.json"],
      ["GET", "/v1/tiles"],
      ["GET", "/v1/tiles?f=geojson"],
      ["GET", "/v1/tiles", { headers: { accept: ARROW_STREAM_MEDIA_TYPE } }],
      ["GET", `/v1/tiles?limit=2&cursor=${first.body.cursor}`],
      ["GET", "/v1/tiles?lane=batch&bbox=10,49.9,10.05,50&datetime=2026-01-01T00:00:00Z/..&class=crop"],
      ["GET", "/v1/tiles", { headers: { accept: "image/png" } }],
      ["GET", "/v1/tiles/c0001r0001"],
      ["GET", "/v1/tiles/old00"],
      ["GET", "/v1/tiles/c0001r0001", { headers: { accept: "application/geo+json" } }],
      ["GET", "/v1/tiles/c0009r0009"],
      ["GET", "/v1/tiles/t11/classes.png"],
      ["GET", "/v1/tiles/t11/age.png"],
      ["GET", "/v1/tiles/c0002r0002/classes.tif"],
      ["GET", "/v1/tiles/c0002r0002/classes.tif.aux.xml"],
      ["GET", "/v1/tiles/t11/source.tif"],
      ["GET", "/v1/tiles/t00/source.tif"],
      ["GET", "/v1/tiles/t11/source.png"],
      ["GET", "/v1/tiles/t11/source.png?bidx=9"],
      ["GET", "/v1/tiles/t00/source.png"],
      ["GET", "/v1/tiles/t11/confidence.png"],
      ["GET", "/v1/point?lon=10.045&lat=49.955"],
      ["GET", "/v1/point?lon=10.045&lat=49.955&f=geojson"],
      ["GET", "/v1/point?lon=0&lat=0"],
      ["GET", "/v1/point?lon=x&lat=0"],
      ["GET", "/v1/stats?bbox=10,49.9,10.05,50"],
      ["GET", "/v1/stats?bbox=10,49.9,10.05,50", { headers: { accept: ARROW_STREAM_MEDIA_TYPE } }],
      ["POST", "/v1/stats", { headers: json, body: poly }],
      ["POST", "/v1/stats", { headers: { "content-type": "text/plain" }, body: poly }],
      ["POST", "/v1/stats", { headers: json, body: "x".repeat(1_100_000) }],
      ["GET", "/v1/views"],
      ["POST", "/v1/batch/runs"],
      ["POST", "/v1/batch/runs", { headers: { authorization: "Bearer wrong-token-wrong-token" } }],
      ["POST", "/v1/batch/runs?full=true", { headers: auth }],
      ["POST", "/v1/batch/runs", { headers: auth }],
      ["GET", "/v1/batch/runs/run-1"],
      ["GET", "/v1/batch/runs/run-99"],
      ["GET", "/v1/models"],
      ["GET", "/v1/models/0123456789abcdef"],
      ["POST", "/v1/models/0123456789abcdef/activate", { headers: auth }],
      ["POST", "/v1/models", { headers: auth }],
      ["GET", "/v1/jobs/train-unknown"],
      [
        "POST",
        "/v1/labels",
        {
          headers: { ...auth, ...json },
          body: JSON.stringify({
            type: "Feature",
            properties: { class: "crop" },
            geometry: { type: "Point", coordinates: [10.02, 49.95] },
          }),
        },
      ],
      ["POST", "/v1/labels", { headers: { ...auth, ...json }, body: JSON.stringify({ type: "Feature" }) }],
      ["GET", "/v1/labels"],
      ["DELETE", "/v1/labels/lbl-000000000000", { headers: auth }],
      ["GET", "/v1/events"],
      ["GET", "/stac"],
      ["GET", "/stac/conformance"],
      ["GET", "/stac/collections"],
      ["GET", "/stac/collections/lanemap-tiles"],
      ["GET", "/stac/collections/nope"],
      ["GET", "/stac/collections/lanemap-tiles/items?limit=3"],
      ["GET", "/stac/collections/lanemap-tiles/items/t11"],
      ["GET", "/stac/search?limit=2"],
      ["GET", stacNext.replace(srv.url, "")],
      ["POST", "/stac/search", { headers: json, body: JSON.stringify({ limit: 2, datetime: "2026-01-02" }) }],
      ["POST", "/stac/search", { headers: json, body: JSON.stringify({ bbox: [1, 2, 3] }) }],
      ["GET", "/nope"],
      ["DELETE", "/v1/tiles"],
    ];
    const seen = new Set<string>();
    const problems: string[] = [];
    for (const [method, path, init] of requests) {
      const x = await exchange(srv.url, method, path, init);
      const found = findOperation(doc, method, x.path);
      if (found) seen.add(`${method.toLowerCase()} ${found.template}`);
      if (found) problems.push(...validateResponse(doc, { method, path: x.path }, x));
      else {
        // Routes outside the document answer with problems only.
        assert.ok(x.status === 404 || x.status === 405, `${method} ${path} -> ${x.status}`);
        assert.match(x.contentType, /^application\/problem\+json/);
      }
    }
    assert.deepEqual(problems, []);
    const documented = Object.entries(doc["paths"] as Record<string, Record<string, unknown>>).flatMap(
      ([p, ops]) => Object.keys(ops).map((m) => `${m} ${p}`),
    );
    assert.deepEqual(
      documented.filter((d) => !seen.has(d)),
      [],
    );
  });

  test("a malformed parameter of any endpoint is a 400 problem naming it", async () => {
    const auth = { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" };
    const poly = (coordinates: unknown) => JSON.stringify({ type: "Polygon", coordinates });
    const cases: [string, string, string, { headers?: Record<string, string>; body?: string }?][] = [
      ["GET", "/v1/tiles?bbox=1,2,3", "bbox"],
      ["GET", "/v1/tiles?bbox=a,b,c,d", "bbox"],
      ["GET", "/v1/tiles?bbox=11,51,12,50", "bbox"],
      ["GET", "/v1/tiles?bbox=0,-91,1,1", "bbox"],
      ["GET", "/v1/tiles?bbox=1,2,3,4&bbox=1,2,3,4", "bbox"],
      ["GET", "/v1/tiles?datetime=yesterday", "datetime"],
      ["GET", "/v1/tiles?datetime=2026-02-30", "datetime"],
      ["GET", "/v1/tiles?datetime=../..", "datetime"],
      ["GET", "/v1/tiles?datetime=2026-02-01T00:00:00Z/2026-01-01T00:00:00Z", "datetime"],
      ["GET", "/v1/tiles?limit=0", "limit"],
      ["GET", "/v1/tiles?limit=abc", "limit"],
      ["GET", "/v1/tiles?limit=10001", "limit"],
      ["GET", "/v1/tiles?lane=fast", "lane"],
      ["GET", "/v1/tiles?class=999", "class"],
      ["GET", "/v1/tiles?class=marsh", "class"],
      ["GET", "/v1/tiles?class=%3Cscript%3E", "class"],
      ["GET", "/v1/tiles?cursor=!!!", "cursor"],
      ["GET", "/v1/tiles?cursor=abc", "cursor"],
      ["GET", "/v1/tiles?f=xml", "f"],
      ["GET", "/v1/tiles?bbx=1,2,3,4", "bbx"],
      ["GET", "/v1/tiles/%20bad", "id"],
      ["GET", "/v1/tiles/c0001r0001?f=arrow", "f"],
      ["GET", "/v1/tiles/c0001r0001/classes.png?size=9", "size"],
      ["GET", "/v1/tiles/..%2F..%2Fetc/source.tif", "id"],
      ["GET", "/v1/point", "lon"],
      ["GET", "/v1/point?lon=200&lat=0", "lon"],
      ["GET", "/v1/point?lon=1&lat=abc", "lat"],
      ["GET", "/v1/point?lon=&lat=1", "lon"],
      ["GET", "/v1/stats", "bbox"],
      ["GET", "/v1/stats?bbox=1,1,2,2&f=geojson", "f"],
      ["POST", "/v1/stats", "body", { headers: { "content-type": "application/json" }, body: "{not json" }],
      ["POST", "/v1/stats", "body.type", { headers: { "content-type": "application/json" }, body: "{}" }],
      [
        "POST",
        "/v1/stats",
        "body.coordinates.0",
        {
          headers: { "content-type": "application/json" },
          body: poly([
            [
              [0, 0],
              [1, 0],
              [1, 1],
            ],
          ]),
        },
      ],
      [
        "POST",
        "/v1/stats",
        "body.coordinates.0",
        {
          headers: { "content-type": "application/json" },
          body: poly([
            [
              [0, 0],
              [1, 0],
              [1, 1],
              [0, 1],
            ],
          ]),
        },
      ],
      [
        "POST",
        "/v1/stats",
        "body.coordinates.0.1",
        {
          headers: { "content-type": "application/json" },
          body: poly([
            [
              [0, 0],
              [200, 0],
              [1, 1],
              [0, 0],
            ],
          ]),
        },
      ],
      [
        "POST",
        "/v1/stats",
        "body.geometry",
        {
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ type: "Feature", properties: {} }),
        },
      ],
      ["POST", "/v1/stats", "Content-Type", { headers: { "content-type": "text/plain" }, body: "x" }],
      ["POST", "/v1/batch/runs?full=maybe", "full", { headers: auth }],
      ["POST", "/v1/batch/runs", "body.full", { headers: auth, body: JSON.stringify({ full: "yes" }) }],
      ["GET", "/v1/batch/runs/bad%20id", "id"],
      ["GET", "/v1/views?verbose=1", "verbose"],
      ["GET", "/v1/events?since=3", "since"],
      ["GET", "/stac/search?limit=0", "limit"],
      ["GET", "/stac/search?token=zz", "token"],
      ["GET", "/stac/search?collections=other", "collections"],
      ["POST", "/stac/search", "body.bbox", { headers: auth, body: JSON.stringify({ bbox: [1, 2, 3] }) }],
      ["POST", "/stac/search", "body.limit", { headers: auth, body: JSON.stringify({ limit: 0 }) }],
      [
        "POST",
        "/stac/search",
        "body.datetime",
        { headers: auth, body: JSON.stringify({ datetime: "soon" }) },
      ],
      ["POST", "/stac/search", "body.ids", { headers: auth, body: JSON.stringify({ ids: "t11" }) }],
      ["POST", "/stac/search", "body.token", { headers: auth, body: JSON.stringify({ token: "zz" }) }],
      ["POST", "/stac/search", "body.filter", { headers: auth, body: JSON.stringify({ filter: {} }) }],
      [
        "POST",
        "/stac/search",
        "body.collections",
        { headers: auth, body: JSON.stringify({ collections: ["other"] }) },
      ],
      [
        "POST",
        "/stac/search",
        "body.intersects",
        {
          headers: auth,
          body: JSON.stringify({
            bbox: [0, 0, 1, 1],
            intersects: JSON.parse(
              poly([
                [
                  [0, 0],
                  [1, 0],
                  [0, 1],
                  [0, 0],
                ],
              ]),
            ),
          }),
        },
      ],
      [
        "POST",
        "/stac/search",
        "body.intersects.coordinates.0",
        {
          headers: auth,
          body: JSON.stringify({
            intersects: JSON.parse(
              poly([
                [
                  [0, 0],
                  [1, 0],
                  [0, 1],
                  [1, 1],
                ],
              ]),
            ),
          }),
        },
      ],
      ["GET", "/stac/collections/lanemap-tiles/items?bbox=x", "bbox"],
      ["GET", "/stac/collections/lanemap%20tiles", "collectionId"],
    ];
    for (const [method, path, name, init] of cases) {
      const x = await exchange(srv.url, method, path, init);
      assert.ok(x.status === 400 || x.status === 415, `${method} ${path}: status ${x.status}`);
      assert.match(x.contentType, /^application\/problem\+json/, `${method} ${path}`);
      const body = x.body as {
        invalid_params?: { name: string; reason: string }[];
        status: number;
        type: string;
        title: string;
        detail: string;
      };
      assert.equal(body.status, x.status);
      assert.ok(body.type && body.title && body.detail, `${method} ${path}: problem members`);
      const names = (body.invalid_params ?? []).map((p) => p.name);
      assert.ok(names.includes(name), `${method} ${path}: expected ${name} in ${JSON.stringify(names)}`);
    }
  });

  test("unknown ids, collections, runs and routes are 404 problems, a wrong method is 405", async () => {
    for (const path of [
      "/v1/tiles/c0042r0042",
      "/v1/tiles/nosuchtile/classes.png",
      "/stac/collections/other",
      "/v1/batch/runs/run-404",
      "/v2/tiles",
      "/v1",
    ]) {
      const x = await exchange(srv.url, "GET", path);
      assert.equal(x.status, 404, path);
      assert.match(x.contentType, /^application\/problem\+json/);
    }
    const put = await exchange(srv.url, "PUT", "/v1/stats");
    assert.equal(put.status, 405);
    const allow = (await fetch(srv.url + "/v1/stats", { method: "PUT" })).headers.get("allow") ?? "";
    assert.match(allow, /GET/);
    assert.match(allow, /POST/);
  });

  test("the operator endpoint answers 401 without a token, 403 with a wrong one, 202 then 409 while a run is active", async () => {
    const post = (headers: Record<string, string>) =>
      exchange(srv.url, "POST", "/v1/batch/runs", { headers });
    const none = await post({});
    assert.equal(none.status, 401);
    assert.ok((await fetch(srv.url + "/v1/batch/runs", { method: "POST" })).headers.get("www-authenticate"));
    assert.equal((await post({ authorization: "Bearer not-the-operator-token" })).status, 403);
    assert.equal((await post({ authorization: `Basic ${TOKEN}` })).status, 401);
    trigger.finish();
    const ok = await post({ authorization: `Bearer ${TOKEN}` });
    assert.equal(ok.status, 202);
    const { runId, status } = ok.body as { runId: string; status: string };
    const busy = await post({ authorization: `Bearer ${TOKEN}` });
    assert.equal(busy.status, 409);
    assert.equal((busy.body as { active_run_id?: string }).active_run_id, runId);
    const s = await srv.json<RunStatus>(new URL(status).pathname);
    assert.equal(s.body.state, "running");
    trigger.finish();
    assert.equal((await srv.json<RunStatus>(new URL(status).pathname)).body.publishedVersion, 2);
  });

  test("without a batch trigger or without an operator token, operator runs are 503 problems", async () => {
    await using noTrigger = await startServing({
      dataDir: dataDir.dir,
      env: { LANEMAP_OPERATOR_TOKEN: TOKEN },
    });
    const a = await exchange(noTrigger.url, "POST", "/v1/batch/runs", {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(a.status, 503);
    assert.equal((a.body as { type: string }).type, "/problems/batch-unavailable");
    await using noToken = await startServing({ dataDir: dataDir.dir, batchTrigger: new InMemoryTrigger() });
    const b = await exchange(noToken.url, "POST", "/v1/batch/runs", {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(b.status, 503);
    assert.equal((b.body as { type: string }).type, "/problems/operator-disabled");
  });

  test("Arrow answers parse with apache-arrow to the same rows as the JSON answers", async () => {
    const j = await srv.json<{ items: Record<string, unknown>[]; snapshot: { id: string } }>(
      "/v1/tiles?lane=batch",
    );
    const a = await exchange(srv.url, "GET", "/v1/tiles?lane=batch", {
      headers: { accept: ARROW_STREAM_MEDIA_TYPE },
    });
    assert.equal(a.contentType, ARROW_STREAM_MEDIA_TYPE);
    const decoded = decodeArrowStream(a.bytes);
    assert.equal(decoded.rows.length, j.body.items.length);
    for (const [i, item] of j.body.items.entries()) {
      const row = decoded.rows[i] as Record<string, unknown>;
      const p = item["provenance"] as {
        batchVersion: number;
        watermark: number;
        livePosition: null;
        staleness: { viewAgeS: number };
      };
      const bbox = item["bbox"] as number[];
      assert.deepEqual(
        {
          cell: row["cell"],
          tileId: row["tileId"],
          lane: row["lane"],
          acquired: new Date(row["acquired"] as number).toISOString(),
          ingestSeq: row["ingestSeq"],
          processedAt: new Date(row["processedAt"] as number).toISOString(),
          modelVersion: row["modelVersion"],
          contentHash: row["contentHash"],
          width: row["width"],
          height: row["height"],
          epsg: row["epsg"],
          bbox: [row["minLon"], row["minLat"], row["maxLon"], row["maxLat"]],
          validPixels: row["validPixels"],
          counts: row["counts"],
          areasM2: row["areasM2"],
          dominantClass: row["dominantClass"],
          dominantClassName: row["dominantClassName"],
          meanConfidence: row["meanConfidence"],
          batchVersion: row["batchVersion"],
          watermark: row["watermark"],
          livePosition: row["livePosition"],
        },
        {
          cell: item["cell"],
          tileId: item["tileId"],
          lane: item["lane"],
          acquired: item["acquired"],
          ingestSeq: item["ingestSeq"],
          processedAt: item["processedAt"],
          modelVersion: item["modelVersion"],
          contentHash: item["contentHash"],
          width: item["width"],
          height: item["height"],
          epsg: item["epsg"],
          bbox,
          validPixels: item["validPixels"],
          counts: item["counts"],
          areasM2: item["areasM2"],
          dominantClass: item["dominantClass"],
          dominantClassName: item["dominantClassName"],
          meanConfidence: item["meanConfidence"],
          batchVersion: p.batchVersion,
          watermark: p.watermark,
          livePosition: p.livePosition,
        },
      );
    }
    assert.equal(
      (JSON.parse(decoded.metadata["lanemap:snapshot"] ?? "{}") as { batch: { version: number } }).batch
        .version,
      1,
    );

    const sj = await srv.json<{ classes: Record<string, unknown>[] }>("/v1/stats?bbox=10,49.9,10.05,50");
    const sa = decodeArrowStream(
      (await exchange(srv.url, "GET", "/v1/stats?bbox=10,49.9,10.05,50&f=arrow")).bytes,
    );
    assert.deepEqual(sa.rows, sj.body.classes);
  });

  test("class rasters render as a palette PNG and a colour-table GeoTIFF that decode to the stored classes", async () => {
    const t11 = tiles.find((t) => t.result.tileId === "t11")!;
    const png = await exchange(srv.url, "GET", "/v1/tiles/c0001r0001/classes.png");
    assert.equal(png.status, 200);
    const img = decodePng(png.bytes);
    assert.deepEqual([...img.data], [...t11.raster.classes]);
    const palette = img.palette!;
    assert.deepEqual(palette[0]?.slice(0, 4), [0, 0, 0, 0], "class 0 is transparent");
    assert.deepEqual(palette[1]?.slice(0, 3), [0x1f, 0x78, 0xb4], "water has the model's colour");
    const tif = await exchange(srv.url, "GET", "/v1/tiles/t11/classes.tif");
    const raster = await decodeGeoTiff(tif.bytes);
    assert.deepEqual([...(raster.bands[0] as Uint8Array)], [...t11.raster.classes]);
    assert.deepEqual([...(raster.geoTransform ?? [])], [...t11.result.geoTransform]);
    assert.equal(raster.crs?.epsg, 4326);
    assert.equal(raster.nodata[0], 0);
  });

  test("source.tif serves the archived bytes of the tile's content hash, and 404 when they are not archived", async () => {
    const src = await exchange(srv.url, "GET", "/v1/tiles/c0001r0001/source.tif");
    assert.equal(src.status, 200);
    assert.deepEqual(src.bytes, sourceBytes);
    assert.equal((await exchange(srv.url, "GET", "/v1/tiles/t00/source.tif")).status, 404);
  });

  test("paging by cursor returns every cell once and in order, and a cursor of another query is refused", async () => {
    const all = await srv.json<{ items: { cell: string }[] }>("/v1/tiles");
    const cells: string[] = [];
    let path = "/v1/tiles?limit=4";
    for (;;) {
      const page = await srv.json<{ items: { cell: string }[]; next: string | null; cursor: string | null }>(
        path,
      );
      cells.push(...page.body.items.map((i) => i.cell));
      if (!page.body.next) break;
      assert.equal(page.res.headers.get("link"), `<${page.body.next}>; rel="next"`);
      path = new URL(page.body.next).pathname + new URL(page.body.next).search;
    }
    assert.deepEqual(
      cells,
      all.body.items.map((i) => i.cell),
    );
    assert.equal(new Set(cells).size, 9);
    const first = await srv.json<{ cursor: string }>("/v1/tiles?limit=4");
    const other = await srv.json<{ invalid_params: { name: string }[] }>(
      `/v1/tiles?limit=4&lane=batch&cursor=${first.body.cursor}`,
    );
    assert.equal(other.status, 400);
    assert.equal(other.body.invalid_params[0]?.name, "cursor");
    const stac: string[] = [];
    let next: string | undefined = "/stac/search?limit=4";
    while (next) {
      const page: { body: { features: { id: string }[]; links: { rel: string; href: string }[] } } =
        await srv.json(next);
      stac.push(...page.body.features.map((f) => f.id));
      const href = page.body.links.find((l) => l.rel === "next")?.href;
      next = href ? href.replace(srv.url, "") : undefined;
    }
    assert.deepEqual(stac, ["t00", "t01", "t02", "t10", "t11", "t12", "t20", "t21", "t22"]);
  });

  test("POST /stac/search filters by ids, intersects, datetime and bbox, and pages by POSTing the next link's body", async () => {
    type Page = {
      features: { id: string; bbox: number[] }[];
      links: {
        rel: string;
        href: string;
        method?: string;
        body?: Record<string, unknown>;
        merge?: boolean;
      }[];
    };
    const search = async (body: unknown) => {
      const res = await fetch(`${srv.url}/stac/search`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      assert.equal(res.status, 200);
      assert.match(res.headers.get("content-type") ?? "", /^application\/geo\+json/);
      return (await res.json()) as Page;
    };
    const ids = (p: Page) => p.features.map((f) => f.id);
    // Paging: the next link says POST, carries the token in its body and asks for a merge.
    const request: Record<string, unknown> = { limit: 4 };
    const seen: string[] = [];
    for (let page = await search(request); ;) {
      seen.push(...ids(page));
      const next = page.links.find((l) => l.rel === "next");
      if (!next) break;
      assert.equal(next.method, "POST");
      assert.equal(next.merge, true);
      assert.equal(next.href, `${srv.url}/stac/search`);
      page = await search({ ...request, ...next.body });
    }
    assert.deepEqual(seen, ["t00", "t01", "t02", "t10", "t11", "t12", "t20", "t21", "t22"]);
    // A token belongs to its query: POSTed with other filters it is refused, naming body.token.
    const first = await search({ limit: 4 });
    const token = first.links.find((l) => l.rel === "next")?.body?.["token"];
    const wrong = await fetch(`${srv.url}/stac/search`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ limit: 4, datetime: "2026-01-02", token }),
    });
    assert.equal(wrong.status, 400);
    assert.equal(
      ((await wrong.json()) as { invalid_params: { name: string }[] }).invalid_params[0]?.name,
      "body.token",
    );

    assert.deepEqual(ids(await search({ ids: ["t21", "t11", "old00"] })), ["t11", "t21"]);
    assert.deepEqual(ids(await search({ datetime: "2026-01-02" })), ["t01", "t11", "t21"]);
    assert.deepEqual(ids(await search({ collections: ["lanemap-tiles"], datetime: "../2026-01-01" })), [
      "t00",
      "t10",
      "t20",
    ]);
    // A small triangle in the middle of t11's box meets t11 alone; the same as a bbox agrees.
    const [minX, minY, maxX, maxY] = (await search({ ids: ["t11"] })).features[0]?.bbox ?? [];
    assert.ok(minX !== undefined && minY !== undefined && maxX !== undefined && maxY !== undefined);
    const cx = (minX + maxX) / 2;
    const cy = (minY + maxY) / 2;
    const d = (maxX - minX) / 10;
    const triangle = {
      type: "Polygon",
      coordinates: [
        [
          [cx - d, cy - d],
          [cx + d, cy - d],
          [cx, cy + d],
          [cx - d, cy - d],
        ],
      ],
    };
    assert.deepEqual(ids(await search({ intersects: triangle })), ["t11"]);
    assert.deepEqual(ids(await search({ bbox: [cx - d, cy - d, cx + d, cy + d] })), ["t11"]);
    // A polygon with a hole that holds t11's whole box meets its eight neighbours, not t11.
    const w = maxX - minX;
    const h = maxY - minY;
    const ring = (x0: number, y0: number, x1: number, y1: number) => [
      [x0, y0],
      [x1, y0],
      [x1, y1],
      [x0, y1],
      [x0, y0],
    ];
    const donut = {
      type: "Polygon",
      coordinates: [
        ring(minX - w / 2, minY - h / 2, maxX + w / 2, maxY + h / 2),
        ring(minX - w / 100, minY - h / 100, maxX + w / 100, maxY + h / 100),
      ],
    };
    const around = ids(await search({ intersects: donut }));
    assert.equal(around.includes("t11"), false);
    assert.equal(around.length, 8);
    // The landing page advertises both search methods.
    const landing = await srv.json<{ links: { rel: string; method?: string }[] }>("/stac");
    assert.deepEqual(
      landing.body.links.filter((l) => l.rel === "search").map((l) => l.method),
      ["GET", "POST"],
    );
  });

  test("tile detail lists the cell's candidates and names the winner; a superseded tile id resolves to its cell", async () => {
    const d = await srv.json<{
      cell: string;
      requestedTileId: string | null;
      winner: { tileId: string };
      candidates: { tileId: string }[];
    }>("/v1/tiles/old00");
    assert.equal(d.body.cell, "c0000r0000");
    assert.equal(d.body.requestedTileId, "old00");
    assert.equal(d.body.winner.tileId, "t00");
    assert.deepEqual(
      d.body.candidates.map((c) => c.tileId),
      ["t00"],
    );
    const png = decodePng((await exchange(srv.url, "GET", "/v1/tiles/old00/classes.png")).bytes);
    assert.ok(
      [...png.data].every((v) => v === 1),
      "a tile id renders that very tile",
    );
  });

  test("a point on nodata answers class 0 'not classified' with confidence 0", async () => {
    // t11 (col 1, row 1): pixel (0, 0) has class (0 + 0 + 1) % 5 = 1; pixel (3, 0) has class 4; pixel (3, 1) class 0.
    const at = (c: number, r: number) =>
      `/v1/point?lon=${10.04 + (c + 0.5) * 0.01}&lat=${49.96 - (r + 0.5) * 0.01}`;
    const water = await srv.json<{ class: { id: number; name: string }; confidence: number; tileId: string }>(
      at(0, 0),
    );
    assert.deepEqual(water.body.class, { id: 1, name: "water" });
    assert.equal(water.body.tileId, "t11");
    assert.equal(water.body.confidence, 2 / 5);
    const nodata = await srv.json<{ class: { id: number; name: string }; confidence: number }>(at(3, 1));
    assert.deepEqual(nodata.body.class, { id: 0, name: "not classified" });
    assert.equal(nodata.body.confidence, 0);
  });

  test("security headers are set, CORS answers configured origins only, and bodies over 1 MB are 413 problems", async () => {
    const res = await srv.get("/v1/tiles", { origin: "https://map.example" });
    assert.match(res.headers.get("content-security-policy") ?? "", /script-src 'self'/);
    assert.equal(res.headers.get("x-content-type-options"), "nosniff");
    assert.equal(res.headers.get("access-control-allow-origin"), "https://map.example");
    const other = await srv.get("/v1/tiles", { origin: "https://evil.example" });
    assert.equal(other.headers.get("access-control-allow-origin"), null);
    const pre = await fetch(srv.url + "/v1/stats", {
      method: "OPTIONS",
      headers: { origin: "https://map.example", "access-control-request-method": "POST" },
    });
    assert.equal(pre.status, 204);
    assert.match(pre.headers.get("access-control-allow-methods") ?? "", /POST/);
    const big = await exchange(srv.url, "POST", "/v1/stats", {
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ type: "Polygon", coordinates: [[[0, 0]]], pad: "x".repeat(1_100_000) }),
    });
    assert.equal(big.status, 413);
    assert.match(big.contentType, /^application\/problem\+json/);
    assert.equal((big.body as { invalid_params: { name: string }[] }).invalid_params[0]?.name, "body");
  });

  test("an area over LANEMAP_STATS_MAX_PIXELS is refused with 422 naming the limit and the estimate", async () => {
    await using small = await startServing({ dataDir: dataDir.dir, env: { LANEMAP_STATS_MAX_PIXELS: "40" } });
    const r = await small.json<{ limit: number; estimated_pixels: number; detail: string }>(
      "/v1/stats?bbox=9,49,11,51",
    );
    assert.equal(r.status, 422);
    assert.equal(r.body.limit, 40);
    assert.equal(r.body.estimated_pixels, 9 * 16);
    assert.match(r.body.detail, /144/);
    assert.equal((await small.json("/v1/stats?bbox=10,49.96,10.04,50")).status, 200);
  });

  test("metrics expose request durations by route and the snapshot's versions", async () => {
    await srv.get("/v1/tiles");
    const text = await (await srv.get("/metrics")).text();
    assert.match(
      text,
      /lanemap_http_request_duration_seconds_count\{method="GET",route="\/v1\/tiles",status="200"\} \d+/,
    );
    assert.match(text, /lanemap_batch_view_version 1/);
    assert.match(text, /lanemap_batch_view_watermark 100/);
  });

  test("metrics count the batch runs serving triggered by status, with duration and failed tiles, and describe the published view", async () => {
    const scrape = async () => await (await srv.get("/metrics")).text();
    const value = (text: string, series: string): number => {
      const line = text.split("\n").find((l) => l.startsWith(`${series} `));
      return line === undefined ? NaN : Number(line.slice(series.length + 1));
    };
    trigger.finish();
    const before = await scrape();
    const succeeded = value(before, 'lanemap_batch_runs_total{status="succeeded"}');
    const timed = value(before, 'lanemap_batch_run_duration_seconds_count{status="succeeded"}');
    const failedTiles = value(before, "lanemap_batch_run_failed_tiles_total");
    assert.ok(succeeded >= 0 && timed >= 0 && failedTiles >= 0);
    const ok = await exchange(srv.url, "POST", "/v1/batch/runs", {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(ok.status, 202);
    // Still running: nothing counted yet.
    assert.equal(value(await scrape(), 'lanemap_batch_runs_total{status="succeeded"}'), succeeded);
    trigger.finish();
    // The scrape itself asks about the open run; the next scrapes do not count it again.
    for (let i = 0; i < 2; i++) {
      const after = await scrape();
      assert.equal(value(after, 'lanemap_batch_runs_total{status="succeeded"}'), succeeded + 1);
      assert.equal(value(after, 'lanemap_batch_run_duration_seconds_count{status="succeeded"}'), timed + 1);
      assert.ok(value(after, 'lanemap_batch_run_duration_seconds_bucket{le="120",status="succeeded"}') >= 1);
      assert.equal(value(after, "lanemap_batch_run_failed_tiles_total"), failedTiles + 3);
      assert.equal(value(after, "lanemap_batch_run_last_failed_tiles"), 3);
      assert.equal(value(after, 'lanemap_batch_runs_total{status="failed"}'), 0);
    }
    // The published view's own record: its publish time, build time and failed tiles.
    const views = await srv.json<{ batch: { versions: { startedAt: string; finishedAt: string }[] } }>(
      "/v1/views",
    );
    const v = views.body.batch.versions[0];
    assert.ok(v);
    const text = await scrape();
    assert.equal(
      value(text, "lanemap_batch_last_publish_timestamp_seconds"),
      Date.parse(v.finishedAt) / 1000,
    );
    assert.equal(
      value(text, "lanemap_batch_view_build_duration_seconds"),
      (Date.parse(v.finishedAt) - Date.parse(v.startedAt)) / 1000,
    );
    assert.equal(value(text, "lanemap_batch_view_failed_tiles"), 0);
  });

  test("fuzzed query strings and paths never produce a 5xx, and every 4xx is a problem", async () => {
    const keys = [
      "bbox",
      "datetime",
      "class",
      "limit",
      "cursor",
      "lane",
      "f",
      "lon",
      "lat",
      "token",
      "collections",
      "full",
      "x",
    ];
    const value = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.constantFrom(
        "1,2,3,4",
        "-180,-90,180,90",
        "..",
        "2026-01-01T00:00:00Z/..",
        "NaN",
        "1e309",
        "%",
        "%zz",
        "0",
        "-1",
      ),
      fc.array(fc.double(), { minLength: 1, maxLength: 5 }).map((a) => a.join(",")),
    );
    const endpoints = [
      "/v1/tiles",
      "/v1/tiles/c0001r0001",
      "/v1/tiles/t11/classes.png",
      "/v1/point",
      "/v1/stats",
      "/v1/views",
      "/stac/search",
      "/stac/collections/lanemap-tiles/items",
    ];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...endpoints),
        fc.array(fc.tuple(fc.constantFrom(...keys), value), { maxLength: 4 }),
        fc.string({ maxLength: 12 }),
        async (endpoint, params, segment) => {
          const qs = params.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join("&");
          for (const path of [`${endpoint}?${qs}`, `/v1/tiles/${encodeURIComponent(segment) || "_"}?${qs}`]) {
            const res = await fetch(srv.url + path);
            const text = await res.text();
            assert.ok(res.status < 500, `${path} -> ${res.status} ${text}`);
            if (res.status >= 400)
              assert.match(res.headers.get("content-type") ?? "", /^application\/problem\+json/, path);
          }
        },
      ),
      { numRuns: 150 },
    );
    const bodies = fc.oneof(
      fc.json(),
      fc.string({ maxLength: 200 }),
      fc.jsonValue().map((v) => JSON.stringify({ type: "Polygon", coordinates: v })),
    );
    await fc.assert(
      fc.asyncProperty(bodies, async (body) => {
        const res = await fetch(srv.url + "/v1/stats", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body,
        });
        await res.arrayBuffer();
        assert.ok(res.status < 500, `POST /v1/stats ${body} -> ${res.status}`);
      }),
      { numRuns: 100 },
    );
  });

  test("the classes the snapshot's model lists name the dominant classes", async () => {
    const r = await srv.json<{ items: { dominantClass: number; dominantClassName: string }[] }>("/v1/tiles");
    for (const i of r.body.items)
      assert.equal(
        i.dominantClassName,
        TEST_CLASSES.find((c) => c.id === i.dominantClass)?.name ?? "not classified",
      );
  });
});
