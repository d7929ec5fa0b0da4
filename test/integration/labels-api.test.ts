/**
 * Labels as data through the API and the CLI on one data directory: every change is a new
 * label-set version, bad labels are refused naming the field, every answer matches /openapi.json,
 * and an open event stream hears each change.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { crsFromEpsg, projectPoint, WGS84 } from "../../shared/index.js";
import { projectRoot } from "../helpers/env.js";
import { validateResponse } from "../helpers/serving-openapi.js";
import { startServing, type ServingFixture } from "../helpers/serving-server.js";
import { tempDataDir } from "../helpers/serving-views.js";

const TOKEN = "operator-token-0123456789";
const CLI = join(projectRoot, "infra", "bin", "lanemap.js");
const auth = { authorization: `Bearer ${TOKEN}`, "content-type": "application/geo+json" };
const square = (lon: number, lat: number, d = 0.002) => ({
  type: "Polygon",
  coordinates: [
    [
      [lon, lat],
      [lon + d, lat],
      [lon + d, lat + d],
      [lon, lat + d],
      [lon, lat],
    ],
  ],
});

describe("labels as data: POST/GET/DELETE /v1/labels and `lanemap labels`", () => {
  let data: { dir: string } & AsyncDisposable;
  let srv: ServingFixture;
  let doc: Record<string, unknown>;
  const call = async (
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = auth,
  ) => {
    const res = await fetch(srv.url + path, {
      method,
      headers,
      body: body === undefined ? null : JSON.stringify(body),
    });
    const contentType = res.headers.get("content-type") ?? "";
    const json = (await res.json()) as Record<string, unknown>;
    assert.deepEqual(
      validateResponse(
        doc,
        { method, path: path.split("?")[0] as string },
        { status: res.status, contentType, body: json },
      ),
      [],
    );
    return { status: res.status, body: json, contentType };
  };

  before(async () => {
    data = await tempDataDir();
    srv = await startServing({ dataDir: data.dir, env: { LANEMAP_OPERATOR_TOKEN: TOKEN } });
    doc = (await srv.json("/openapi.json")).body;
  });
  after(async () => {
    await srv?.[Symbol.asyncDispose]();
    await data?.[Symbol.asyncDispose]();
  });

  test("an empty data directory answers label-set version 0 with no features", async () => {
    const r = await call("GET", "/v1/labels");
    assert.equal(r.status, 200);
    assert.match(r.contentType, /^application\/geo\+json/);
    assert.deepEqual([r.body["labelSetVersion"], r.body["features"]], [0, []]);
  });

  test("adding labels needs the operator token", async () => {
    const r = await call("POST", "/v1/labels", { type: "Feature" }, { "content-type": "application/json" });
    assert.equal(r.status, 401);
  });

  test("a Feature, then a FeatureCollection in UTM, each make one new version; the event stream hears both", async () => {
    const ctrl = new AbortController();
    const events = await fetch(`${srv.url}/v1/events`, { signal: ctrl.signal });
    const reader = events.body!.getReader();
    let seen = "";
    const heard = (async () => {
      while (!/labels-change[\s\S]*labels-change/.test(seen)) {
        const { value, done } = await reader.read();
        if (done) break;
        seen += new TextDecoder().decode(value);
      }
    })();
    const a = await call("POST", "/v1/labels", {
      type: "Feature",
      properties: { class: "water", note: "reservoir", author: "ana" },
      geometry: square(-93.3, 15.7),
    });
    assert.equal(a.status, 201);
    assert.equal(a.body["labelSetVersion"], 1);
    // Accepted (the archive can grow), with a warning: no archived tile covers it yet.
    assert.match(String((a.body["warnings"] as string[])[0]), /archive holds no tile yet/);
    const utm = crsFromEpsg(32615);
    const [x, y] = projectPoint(WGS84, utm, -93.2, 15.6);
    const b = await call("POST", "/v1/labels", {
      type: "FeatureCollection",
      crs: { type: "name", properties: { name: "urn:ogc:def:crs:EPSG::32615" } },
      features: [
        {
          type: "Feature",
          properties: { class: "forest" },
          geometry: { type: "Point", coordinates: [x, y] },
        },
        {
          type: "Feature",
          properties: { class: "urban" },
          geometry: { type: "Point", coordinates: [x + 100, y] },
        },
      ],
    });
    assert.equal(b.status, 201);
    assert.deepEqual([b.body["labelSetVersion"], b.body["count"]], [2, 2]);
    await heard;
    ctrl.abort();
    assert.match(seen, /event: labels-change\ndata: \{"labelSetVersion":1/);

    const list = await call("GET", "/v1/labels");
    const features = list.body["features"] as {
      id: string;
      geometry: { coordinates: number[] };
      properties: Record<string, unknown>;
    }[];
    assert.equal(list.body["labelSetVersion"], 2);
    assert.deepEqual(
      features.map((f) => [f.properties["class"], f.properties["author"]]),
      [
        ["water", "ana"],
        ["forest", "operator"],
        ["urban", "operator"],
      ],
    );
    const [lon, lat] = features[1]?.geometry.coordinates as [number, number];
    assert.ok(Math.abs(lon + 93.2) < 1e-6 && Math.abs(lat - 15.6) < 1e-6, `${lon}, ${lat}`);
    assert.equal(features[1]?.properties["sourceCrs"], "EPSG:32615");
    const v1 = await call("GET", "/v1/labels?version=1");
    assert.equal((v1.body["features"] as unknown[]).length, 1);
  });

  test("a bad label is a 422 problem naming the field, and makes no version", async () => {
    const r = await call("POST", "/v1/labels", {
      type: "FeatureCollection",
      features: [
        { type: "Feature", properties: { class: "water" }, geometry: square(-93, 15) },
        { type: "Feature", properties: { klass: "water" }, geometry: square(-93, 15) },
      ],
    });
    assert.equal(r.status, 422);
    assert.equal(r.body["type"], "/problems/label-invalid");
    assert.deepEqual(r.body["invalid_params"], [
      { name: "features[1].properties.class", reason: "is required" },
    ]);
    const bad = await call("POST", "/v1/labels", {
      type: "Feature",
      properties: { class: "water" },
      geometry: {
        type: "LineString",
        coordinates: [
          [0, 0],
          [1, 1],
        ],
      },
    });
    assert.equal((bad.body["invalid_params"] as { name: string }[])[0]?.name, "geometry.type");
    const bowTie = await call("POST", "/v1/labels", {
      type: "FeatureCollection",
      features: [
        { type: "Feature", properties: { class: "water" }, geometry: square(-93, 15) },
        {
          type: "Feature",
          properties: { class: "water" },
          geometry: {
            type: "Polygon",
            coordinates: [
              [
                [-93, 15],
                [-92.99, 15.01],
                [-92.99, 15],
                [-93, 15.01],
                [-93, 15],
              ],
            ],
          },
        },
      ],
    });
    assert.equal(bowTie.status, 422);
    assert.deepEqual(
      (bowTie.body["invalid_params"] as { name: string }[]).map((p) => p.name),
      ["features[1].geometry.coordinates"],
    );
    assert.match(String(bowTie.body["detail"]), /intersects itself/);
    const cased = await call("POST", "/v1/labels", {
      type: "Feature",
      properties: { class: "Water" },
      geometry: square(-93, 15),
    });
    assert.equal(cased.status, 422);
    assert.match(String(cased.body["detail"]), /use "water"/);
    const numeric = await call("POST", "/v1/labels", {
      type: "Feature",
      properties: { class: 3 },
      geometry: square(-93, 15),
    });
    assert.equal(numeric.status, 422);
    assert.match(String(numeric.body["detail"]), /class must be a string name/);
    assert.equal((await call("GET", "/v1/labels")).body["labelSetVersion"], 2);
  });

  test("a label body sent as text/plain is a 415 problem naming the Content-Type, and makes no version", async () => {
    const versionBefore = (await call("GET", "/v1/labels")).body["labelSetVersion"];
    const r = await call(
      "POST",
      "/v1/labels",
      { type: "Feature", properties: { class: "water" }, geometry: square(-93, 15) },
      { authorization: `Bearer ${TOKEN}`, "content-type": "text/plain" },
    );
    assert.equal(r.status, 415);
    assert.match(r.contentType, /^application\/problem\+json/);
    assert.equal(r.body["type"], "/problems/unsupported-media-type");
    assert.equal((r.body["invalid_params"] as { name: string }[])[0]?.name, "Content-Type");
    assert.equal((await call("GET", "/v1/labels")).body["labelSetVersion"], versionBefore);
  });

  test("DELETE removes a label as a new version; an unknown id is 404", async () => {
    const list = await call("GET", "/v1/labels");
    const id = (list.body["features"] as { id: string }[])[2]?.id as string;
    const r = await call("DELETE", `/v1/labels/${id}`);
    assert.deepEqual([r.status, r.body["labelSetVersion"]], [200, 3]);
    const again = await call("DELETE", `/v1/labels/${id}`);
    assert.equal(again.status, 404);
    assert.equal(again.body["type"], "/problems/label-not-found");
    assert.equal((await call("DELETE", "/v1/labels/not-an-id")).status, 400);
  });

  test("the CLI adds to, lists, exports and removes from the same label set the server answers", async () => {
    const file = join(data.dir, "more.geojson");
    writeFileSync(
      file,
      JSON.stringify({
        type: "Feature",
        properties: { class: "crop" },
        geometry: { type: "Point", coordinates: [-93.1, 15.5] },
      }),
    );
    // Not spawnSync: the server runs in this process and must answer while the CLI runs.
    const cli = (...args: string[]) =>
      new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
        execFile(
          process.execPath,
          [CLI, ...args, "--data-dir", data.dir],
          { encoding: "utf8" },
          (err, stdout, stderr) =>
            resolve({ status: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
        );
      });
    const add = await cli("labels", "add", file, "--author", "bo", "--json");
    assert.equal(add.status, 0, add.stderr);
    const added = JSON.parse(add.stdout) as { ids: string[]; labelSetVersion: number };
    assert.equal(added.labelSetVersion, 4);
    const served = await call("GET", "/v1/labels");
    assert.deepEqual(
      (served.body["features"] as { properties: { class: string } }[]).map((f) => f.properties.class),
      ["water", "forest", "crop"],
    );
    const list = await cli("labels", "list");
    assert.match(list.stdout, /label set v4 .*3 labels — crop 1, forest 1, water 1/);
    const out = join(data.dir, "export.geojson");
    assert.equal((await cli("labels", "export", "--out", out)).status, 0);
    const exported = JSON.parse(readFileSync(out, "utf8")) as {
      labelSetVersion: number;
      features: unknown[];
    };
    assert.deepEqual([exported.labelSetVersion, exported.features.length], [4, 3]);
    assert.equal((await cli("labels", "remove", added.ids[0] as string)).status, 0);
    const bad = await cli("labels", "add", join(data.dir, "missing.geojson"));
    assert.equal(bad.status, 2);
    writeFileSync(
      file,
      JSON.stringify({ type: "Feature", properties: {}, geometry: { type: "Point", coordinates: [0, 0] } }),
    );
    const refused = await cli("labels", "add", file);
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /properties\.class is required/);
    // A shapefile: say GeoJSON is wanted and how to convert, not "Unexpected token".
    const shp = join(data.dir, "training_data.shp");
    writeFileSync(shp, Buffer.from([0x00, 0x00, 0x27, 0x0a, 0x00, 0x00]));
    const shape = await cli("labels", "add", shp);
    assert.equal(shape.status, 1);
    assert.match(
      shape.stderr,
      /is not GeoJSON.*ogr2ogr -f GeoJSON .*training_data\.geojson .*training_data\.shp/,
    );
    assert.doesNotMatch(shape.stderr, /Unexpected token/);
    assert.equal((await call("GET", "/v1/labels")).body["labelSetVersion"], 5);
  });
});
