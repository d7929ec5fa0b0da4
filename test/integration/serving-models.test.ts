import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { FileModelRegistry } from "../../shared/adapters/archive/index.js";
import { assessAccuracy, confusionMatrix } from "../../shared/internal.js";
import { validateResponse } from "../helpers/serving-openapi.js";
import { startServing } from "../helpers/serving-server.js";
import { tempDataDir } from "../helpers/serving-views.js";
import { tinyModel } from "../helpers/models.js";

const TOKEN = "operator-token-0123456789";

describe("the model registry over HTTP", () => {
  test("GET /v1/models lists versions with classes, accuracy and the active flag; GET one; activate switches", async () => {
    await using data = await tempDataDir();
    const registry = await FileModelRegistry.open(data.dir);
    const first = tinyModel(["forest", "water"]);
    const second = tinyModel(["forest", "water", "wetland"], { ids: [1, 2, 3] });
    const accuracy = assessAccuracy(confusionMatrix([1, 1, 2, 2], [1, 2, 2, 2], [1, 2]), ["forest", "water"]);
    await registry.put(first, { trainedBy: "ana", accuracy });
    await registry.put(second, { trainedBy: "ben", labelSet: "labels-2" });
    await registry.activate(first.version);
    await using srv = await startServing({ dataDir: data.dir, env: { LANEMAP_OPERATOR_TOKEN: TOKEN } });
    const doc = (await srv.json("/openapi.json")).body;
    const check = (method: string, path: string, status: number, body: unknown) =>
      assert.deepEqual(
        validateResponse(doc, { method, path }, { status, contentType: "application/json", body }),
        [],
      );

    const list = await srv.json<{
      backend: string;
      active: { version: string; revision: number };
      models: {
        version: string;
        active: boolean;
        classes: { id: number; name: string }[];
        accuracy: { oa: number; kappa: number; perClass: { name: string; f1: number }[] } | null;
        trainedBy: string;
      }[];
    }>("/v1/models");
    assert.equal(list.status, 200);
    check("GET", "/v1/models", 200, list.body);
    assert.equal(list.body.backend, "files");
    assert.deepEqual(list.body.active.version, first.version);
    assert.deepEqual(
      list.body.models
        .map((m) => [m.version, m.active, m.trainedBy, m.classes.map((c) => `${c.id} ${c.name}`)])
        .sort(),
      [
        [first.version, true, "ana", ["1 forest", "2 water"]],
        [second.version, false, "ben", ["1 forest", "2 water", "3 wetland"]],
      ].sort(),
    );
    const withReport = list.body.models.find((m) => m.version === first.version);
    assert.equal(withReport?.accuracy?.oa, 0.75);
    assert.deepEqual(
      withReport?.accuracy?.perClass.map((c) => c.name),
      ["forest", "water"],
    );
    assert.equal(list.body.models.find((m) => m.version === second.version)?.accuracy, null);

    const one = await srv.json<{
      version: string;
      samplesPerClass: Record<string, number>;
      labelSet: string;
    }>(`/v1/models/${second.version}`);
    assert.equal(one.status, 200);
    check("GET", `/v1/models/${second.version}`, 200, one.body);
    assert.equal(one.body.labelSet, "labels-2");
    assert.deepEqual(one.body.samplesPerClass, { forest: 2, water: 2, wetland: 2 });

    const unknown = await srv.get("/v1/models/0123456789abcdef");
    assert.equal(unknown.status, 404);
    assert.match(unknown.headers.get("content-type") ?? "", /application\/problem\+json/);
    const malformed = await srv.get("/v1/models/not-a-version");
    assert.equal(malformed.status, 400);

    const post = (path: string, token?: string) =>
      fetch(srv.url + path, {
        method: "POST",
        headers: token ? { authorization: `Bearer ${token}` } : {},
      });
    assert.equal((await post(`/v1/models/${second.version}/activate`)).status, 401);
    assert.equal((await post(`/v1/models/${second.version}/activate`, "wrong")).status, 403);
    assert.equal((await registry.active())?.version, first.version, "refused callers change nothing");
    const missing = await post("/v1/models/0123456789abcdef/activate", TOKEN);
    assert.equal(missing.status, 404);
    assert.match(missing.headers.get("content-type") ?? "", /application\/problem\+json/);
    const activated = await post(`/v1/models/${second.version}/activate`, TOKEN);
    assert.equal(activated.status, 200);
    const pointer = (await activated.json()) as { version: string; revision: number };
    check("POST", `/v1/models/${second.version}/activate`, 200, pointer);
    assert.deepEqual([pointer.version, pointer.revision], [second.version, 2]);
    assert.equal((await registry.active())?.version, second.version, "the file registry's pointer moved");
    const after = await srv.json<{ models: { version: string; active: boolean }[] }>("/v1/models");
    assert.deepEqual(
      after.body.models.filter((m) => m.active).map((m) => m.version),
      [second.version],
    );
  });
});
