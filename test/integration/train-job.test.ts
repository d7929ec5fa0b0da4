/**
 * Training as a job: POST /v1/models trains from the label set on the archive's tiles in a worker
 * thread, stores the model with its label-set version and accuracy in the (file) model registry, and
 * reports progress as `train-job` events; a second request while one runs is a 409, and the server
 * keeps answering while it trains.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { pino } from "pino";
import { addArchiveFolder } from "../../batch/index.js";
import { modelTrainerFor } from "../../infra/platform/trainer.js";
import { ArchiveStore, FileModelRegistry, LabelStore } from "../../shared/adapters/archive/index.js";
import { TrainPool, labelInputCrs, parseConfig, parseLabelFeatures } from "../../shared/index.js";
import { generateArchive } from "../../sample/index.js";
import { createServer, type Listening } from "../../serving/index.js";
import { validateResponse } from "../helpers/serving-openapi.js";
import { tempDataDir } from "../helpers/serving-views.js";

const TOKEN = "operator-token-0123456789";
const auth = { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" };

describe("POST /v1/models: training from the label set as a job", () => {
  let data: { dir: string } & AsyncDisposable;
  let listening: Listening;
  let pool: TrainPool;
  let registry: FileModelRegistry;
  let doc: Record<string, unknown>;
  const jobStatus = async (url: string) => {
    const res = await fetch(url);
    const body = (await res.json()) as Record<string, unknown>;
    assert.deepEqual(
      validateResponse(
        doc,
        { method: "GET", path: new URL(url).pathname },
        { status: res.status, contentType: res.headers.get("content-type") ?? "", body },
      ),
      [],
    );
    return body;
  };

  before(async () => {
    data = await tempDataDir();
    const sample = join(data.dir, "sample");
    await generateArchive({
      out: sample,
      grid: { width: 2, height: 2 },
      tileSize: 64,
      seed: 3,
      polygonsPerClass: 4,
    });
    const logger = pino({ level: "silent" });
    await addArchiveFolder(new ArchiveStore(data.dir), join(sample, "tiles"), { logger, maxPixels: 1e8 });
    const geojson: unknown = JSON.parse(await readFile(join(sample, "training.geojson"), "utf8"));
    const drafts = parseLabelFeatures(geojson, {
      crs: await labelInputCrs(geojson),
      author: "test",
      now: new Date().toISOString(),
    });
    await new LabelStore(data.dir).add(drafts);
    registry = await FileModelRegistry.open(data.dir);
    pool = new TrainPool({ timeoutMs: 120_000 });
    const config = parseConfig({ LANEMAP_DATA_DIR: data.dir, PORT: "0", LANEMAP_OPERATOR_TOKEN: TOKEN });
    const server = createServer(config, {
      logger,
      modelTrainer: modelTrainerFor({ dataDir: data.dir, registry, pool, maxPixels: config.maxPixels }),
    });
    listening = await server.listen();
    doc = (await (await fetch(`${listening.url}/openapi.json`)).json()) as Record<string, unknown>;
  });
  after(async () => {
    await listening?.close();
    await pool?.close();
    await data?.[Symbol.asyncDispose]();
  });

  test("a job trains, assesses and stores the model; a second request meanwhile is a 409; the server keeps answering", async () => {
    const ctrl = new AbortController();
    const events = await fetch(`${listening.url}/v1/events`, { signal: ctrl.signal });
    const reader = events.body!.getReader();
    let seen = "";
    const heard = (async () => {
      while (!/"state":"(succeeded|failed)"/.test(seen)) {
        const { value, done } = await reader.read();
        if (done) break;
        seen += new TextDecoder().decode(value);
      }
    })();

    const res = await fetch(`${listening.url}/v1/models`, { method: "POST", headers: auth, body: "{}" });
    assert.equal(res.status, 202);
    const accepted = (await res.json()) as { jobId: string; status: string };
    assert.equal(res.headers.get("location"), accepted.status);
    const busy = await fetch(`${listening.url}/v1/models`, { method: "POST", headers: auth });
    assert.equal(busy.status, 409);
    assert.equal(((await busy.json()) as { type: string }).type, "/problems/train-job-active");

    // While the thread trains, the event loop answers: the slowest /health of the job is recorded.
    let slowest = 0;
    let status: Record<string, unknown>;
    for (;;) {
      const t = performance.now();
      await fetch(`${listening.url}/health`).then((r) => r.arrayBuffer());
      slowest = Math.max(slowest, performance.now() - t);
      status = await jobStatus(accepted.status);
      if (status["state"] !== "running") break;
      await new Promise((r) => setTimeout(r, 50));
    }
    await heard;
    ctrl.abort();
    assert.equal(status["state"], "succeeded", JSON.stringify(status["error"]));
    console.log(
      `# training job ${String(status["elapsedMs"])} ms; slowest /health meanwhile ${slowest.toFixed(0)} ms`,
    );
    assert.ok(slowest < 2000, `the server answered /health in ${slowest} ms while training`);
    const result = status["result"] as {
      version: string;
      labelSetVersion: number;
      accuracy: {
        method: string;
        folds: number;
        groupsPerClass: Record<string, number>;
        oa: number;
        kappa: number;
        perClass: { name: string }[];
      };
      classes: { name: string }[];
    };
    assert.equal(result.labelSetVersion, 1);
    // Folds by label feature: every polygon's pixels wholly in one fold.
    assert.equal(result.accuracy.method, "group-folds");
    const groups = Object.values(result.accuracy.groupsPerClass);
    assert.equal(groups.length, result.classes.length);
    assert.equal(result.accuracy.folds, Math.min(5, ...groups));
    // The generated polygons are small: none is capped (a class may still be reported as dominating).
    const warnings = (status["result"] as { warnings: string[] }).warnings;
    assert.ok(Array.isArray(warnings));
    assert.ok(!warnings.some((w) => /max samples per feature\)$/.test(w)), JSON.stringify(warnings));
    assert.ok(result.accuracy.oa > 0.5 && result.accuracy.kappa > 0.3, JSON.stringify(result.accuracy));
    assert.deepEqual(
      result.accuracy.perClass.map((c) => c.name),
      result.classes.map((c) => c.name),
    );
    // Stored, with its label set and accuracy, and not activated.
    const entry = await registry.get(result.version);
    assert.equal(entry?.labelSet, "v1");
    assert.equal(entry?.accuracy?.oa, result.accuracy.oa);
    assert.equal(await registry.active(), null);
    // Progress arrived as events, in order.
    const phases = [...seen.matchAll(/event: train-job\ndata: (.*)\n/g)].map(
      (m) => (JSON.parse(m[1] as string) as { phase: string }).phase,
    );
    assert.deepEqual([...new Set(phases)], ["selecting", "training", "storing", "done"]);
  });

  test("a retraining with a new class keeps every known class's id (the registry's catalogue) and gives the new one the next id", async () => {
    const store = new LabelStore(data.dir);
    const first = (await registry.list()).at(-1)!;
    // A point on the first label's first vertex: inside the archive, now named "cloud" (sorts mid-list).
    const at = (await store.read()).labels[0]!.geometry;
    const [lon, lat] = (
      at.type === "Polygon"
        ? at.coordinates[0]![0]
        : at.type === "Point"
          ? at.coordinates
          : at.coordinates[0]![0]![0]
    ) as [number, number];
    await store.add(
      parseLabelFeatures(
        {
          type: "Feature",
          properties: { class: "cloud" },
          geometry: { type: "Point", coordinates: [lon, lat] },
        },
        { author: "test", now: new Date().toISOString() },
      ),
    );
    const res = await fetch(`${listening.url}/v1/models`, { method: "POST", headers: auth });
    const { status } = (await res.json()) as { status: string };
    let s: Record<string, unknown>;
    do {
      await new Promise((r) => setTimeout(r, 100));
      s = await jobStatus(status);
    } while (s["state"] === "running");
    assert.equal(s["state"], "succeeded", JSON.stringify(s["error"]));
    const classes = (s["result"] as { classes: { id: number; name: string }[] }).classes;
    for (const c of first.classes)
      assert.equal(classes.find((x) => x.name === c.name)?.id, c.id, `${c.name} keeps id ${c.id}`);
    const cloud = classes.find((c) => c.name === "cloud");
    assert.equal(cloud?.id, Math.max(...first.classes.map((c) => c.id)) + 1);
  });

  test("an unknown job id is a 404 and a bad body names the member", async () => {
    const missing = await fetch(`${listening.url}/v1/jobs/train-nothing`);
    assert.equal(missing.status, 404);
    const bad = await fetch(`${listening.url}/v1/models`, {
      method: "POST",
      headers: auth,
      body: '{"k": 0}',
    });
    assert.equal(bad.status, 400);
    assert.equal(
      ((await bad.json()) as { invalid_params: { name: string }[] }).invalid_params[0]?.name,
      "body.k",
    );
  });

  test("training with an empty label set fails the job with TRAINING_DATA", async () => {
    const empty = await tempDataDir();
    try {
      const config = parseConfig({ LANEMAP_DATA_DIR: empty.dir, PORT: "0", LANEMAP_OPERATOR_TOKEN: TOKEN });
      const server = createServer(config, {
        logger: pino({ level: "silent" }),
        modelTrainer: modelTrainerFor({
          dataDir: empty.dir,
          registry: await FileModelRegistry.open(empty.dir),
          pool,
          maxPixels: 1e8,
        }),
      });
      const l = await server.listen();
      try {
        const res = await fetch(`${l.url}/v1/models`, { method: "POST", headers: auth });
        const { status } = (await res.json()) as { status: string };
        let s: Record<string, unknown>;
        do s = (await (await fetch(status)).json()) as Record<string, unknown>;
        while (s["state"] === "running");
        assert.equal((s["error"] as { code: string }).code, "TRAINING_DATA");
        assert.match(String((s["error"] as { message: string }).message), /label set is empty/);
      } finally {
        await l.close();
      }
    } finally {
      await empty[Symbol.asyncDispose]();
    }
  });
});
