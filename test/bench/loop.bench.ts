/**
 * `npm run bench:loop`: the analyst's loop, label -> trained -> viewport reclassified, on the 8×8
 * sample of `lanemap start` (64 tiles of 128² × 6 bands), through the public API exactly as the web
 * map drives it. Each of 5 rounds adds one small "wetland" polygon somewhere new (so every round
 * trains a new model), retrains (POST /v1/models, polling the job), activates the new version with
 * the viewport as `bbox` (and its centre as `around`), and waits until every cell of the viewport
 * (the central 4×4 cells) is served from the new model: the run's interim view (progressive
 * publish), whose other cells still carry the previous view's rows. Prints min / median / max per phase and writes
 * test/results/bench/loop.json.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { startPlatform } from "../../infra/platform/platform.js";
import { ArchiveStore } from "../../shared/adapters/archive/index.js";
import { parseConfig } from "../../shared/index.js";
import { minMedMax, printTable, writeResults, type Table } from "./harness.js";

const ROUNDS = 5;
const TOKEN = "bench-operator-token-0123456789";
const auth = { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function call(method: string, url: string, body?: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(url, {
    method,
    headers: auth,
    body: body === undefined ? null : JSON.stringify(body),
  });
  const json = (await res.json()) as Record<string, unknown>;
  if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

const root = await mkdtemp(join(tmpdir(), "lanemap-bench-loop-"));
const config = parseConfig({
  LANEMAP_DATA_DIR: join(root, "data"),
  PORT: "0",
  HOST: "127.0.0.1",
  LANEMAP_OPERATOR_TOKEN: TOKEN,
  LANEMAP_FEED_INTERVAL_S: "0",
  LANEMAP_LOG_LEVEL: "silent",
});
const tStart = performance.now();
// The batch lane's own log lines mark where a run's time goes: planned (model loaded, results of
// the previous view checked for reuse), tiles classified, exports written and published.
const marks: { msg: string; t: number }[] = [];
const MARKS =
  /^batch (run started|work planned|viewport classified|interim view published|view complete|view published|run succeeded)/;
const sink = {
  write(line: string): void {
    try {
      const o = JSON.parse(line) as { msg?: string };
      if (o.msg && MARKS.test(o.msg)) marks.push({ msg: o.msg, t: performance.now() });
    } catch {
      // not a JSON log line
    }
  },
};
const platform = await startPlatform(config, pino({ level: "info" }, sink));
const since = (msg: string, from: number): number =>
  (marks.find((m) => m.t >= from && m.msg.startsWith(msg))?.t ?? NaN) - from;
const startS = (performance.now() - tStart) / 1000;
try {
  // The viewport: the central 4×4 cells, as a lon/lat box, and its centre.
  const boxes = new Map<string, { minX: number; minY: number; maxX: number; maxY: number }>();
  for await (const e of new ArchiveStore(config.dataDir).entries())
    if (e.boundsWgs84) boxes.set(e.cell, e.boundsWgs84);
  const central = [...boxes.entries()].filter(([cell]) => {
    const m = /^c(\d+)r(\d+)$/.exec(cell);
    return m !== null && Number(m[1]) >= 2 && Number(m[1]) <= 5 && Number(m[2]) >= 2 && Number(m[2]) <= 5;
  });
  const view = {
    minX: Math.min(...central.map(([, b]) => b.minX)),
    minY: Math.min(...central.map(([, b]) => b.minY)),
    maxX: Math.max(...central.map(([, b]) => b.maxX)),
    maxY: Math.max(...central.map(([, b]) => b.maxY)),
  };
  const centralCells = new Set(central.map(([cell]) => cell));
  const around = { lon: (view.minX + view.maxX) / 2, lat: (view.minY + view.maxY) / 2 };
  // Shrunk by a hair so the cells that only touch the viewport's edges are not listed.
  const e = 1e-6;
  const viewport = [view.minX + e, view.minY + e, view.maxX - e, view.maxY - e];
  const bbox = viewport.join(",");

  const rounds: Record<string, number>[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    // A square of about 19 × 19 pixels (15 % of a 128-pixel cell's side) inside a viewport cell.
    const [, b] = central[(r * 5) % central.length]!;
    const x = b.minX + (b.maxX - b.minX) * 0.4;
    const y = b.minY + (b.maxY - b.minY) * 0.4;
    const d = (b.maxX - b.minX) * 0.15;
    const t0 = performance.now();
    await call("POST", `${platform.url}/v1/labels`, {
      type: "Feature",
      properties: { class: "wetland", note: `bench round ${r + 1}` },
      geometry: {
        type: "Polygon",
        coordinates: [
          [
            [x, y],
            [x + d, y],
            [x + d, y + d],
            [x, y + d],
            [x, y],
          ],
        ],
      },
    });
    const t1 = performance.now();
    const accepted = await call("POST", `${platform.url}/v1/models`, {});
    let job: Record<string, unknown>;
    for (;;) {
      job = await call("GET", accepted["status"] as string);
      if (job["state"] !== "running") break;
      await sleep(50);
    }
    if (job["state"] !== "succeeded") throw new Error(`training failed: ${JSON.stringify(job["error"])}`);
    const t2 = performance.now();
    const result = job["result"] as {
      version: string;
      samples: number;
      timings: Record<string, number>;
      accuracy: { oa: number } | null;
    };
    const activated = await call("POST", `${platform.url}/v1/models/${result.version}/activate`, {
      around,
      bbox: viewport,
    });
    const t3 = performance.now();
    const run = activated["batchRun"] as { runId: string | null; status: string | null; skipped?: string };
    if (!run.status) throw new Error(`no batch run after activation: ${run.skipped}`);
    let runStatus: Record<string, unknown> = {};
    for (;;) {
      const page = await call("GET", `${platform.url}/v1/tiles?bbox=${bbox}&limit=1000`);
      // Only the viewport's own cells: /v1/tiles also lists the ring of cells whose lon/lat boxes
      // overlap the viewport's by a sliver (UTM tiles' boxes in WGS 84), which the map shows no more of.
      const versions = (page["items"] as { cell: string; modelVersion: string }[])
        .filter((f) => centralCells.has(f.cell))
        .map((f) => f.modelVersion);
      if (versions.length >= central.length && versions.every((v) => v === result.version)) break;
      runStatus = await call("GET", run.status);
      if (runStatus["state"] === "failed") throw new Error(`batch run failed: ${String(runStatus["error"])}`);
      await sleep(50);
    }
    const t4 = performance.now();
    // The view switches before the run records its end: wait (bounded) for its final state.
    for (let i = 0; i < 200; i++) {
      runStatus = await call("GET", run.status);
      if (runStatus["state"] !== "running" && runStatus["state"] !== "queued") break;
      await sleep(50);
    }
    const timings = result.timings;
    const started = marks.find((m) => m.t >= t2 && m.msg.startsWith("batch run started"))?.t ?? NaN;
    const planned = since("batch work planned", started);
    const classified = since("batch view complete", started);
    const interim = since("batch interim view published", started);
    const viewportDone = since("batch viewport classified", started);
    rounds.push({
      total: t4 - t0,
      label: t1 - t0,
      train: t2 - t1,
      trainSelecting: timings["selecting"] ?? NaN,
      trainDecode: timings["decode"] ?? NaN,
      trainFit: timings["train"] ?? NaN,
      trainAssess: timings["assess"] ?? NaN,
      trainStoring: timings["storing"] ?? NaN,
      activate: t3 - t2,
      reclassify: t4 - t3,
      batchRunMs:
        Date.parse(String(runStatus["finishedAt"] ?? "")) - Date.parse(String(runStatus["startedAt"] ?? "")),
      runPlan: planned,
      runClassify: classified - planned,
      runPublish: since("batch run succeeded", started) - classified,
      runInterim: interim,
      runViewport: viewportDone - planned,
      runInterimPublish: interim - viewportDone,
      samples: result.samples,
      oa: result.accuracy?.oa ?? NaN,
    });
    console.log(`round ${r + 1}: ${((t4 - t0) / 1000).toFixed(1)} s (${JSON.stringify(rounds.at(-1))})`);
  }
  const col = (k: string) => rounds.map((r) => r[k] as number);
  const row = (name: string, k: string): [string, string] => [name, minMedMax(col(k), 0, " ms")];
  const table: Table = {
    title: `Label to visible map, 8×8 sample (64 tiles of 128² × 6 bands), ${ROUNDS} rounds: min / median / max`,
    columns: ["phase", "ms"],
    rows: [
      row("**total: submit -> trained -> viewport reclassified**", "total"),
      row("POST /v1/labels (validate, append, fsync)", "label"),
      row("training job, request to stored version", "train"),
      row("  · choose tiles under the labels", "trainSelecting"),
      row("  · decode them (worker thread)", "trainDecode"),
      row("  · collect samples and fit", "trainFit"),
      row("  · 5-fold assessment", "trainAssess"),
      row("  · store in the registry", "trainStoring"),
      row("POST /v1/models/{v}/activate (+ batch trigger)", "activate"),
      row("activation -> viewport served by the new model", "reclassify"),
      row("  · the run's start -> interim view published (viewport tiles)", "runInterim"),
      row("    · classify the viewport's 16 tiles (warm threads)", "runViewport"),
      row("    · interim view: copy, carry, export, publish", "runInterimPublish"),
      row("  · the batch run (start to final publish)", "batchRunMs"),
      row("    · plan: load the model, check reuse", "runPlan"),
      row("    · classify the 64 tiles (worker threads)", "runClassify"),
      row("    · export Parquet/Arrow, publish", "runPublish"),
    ],
    notes: [
      `Samples per model: ${minMedMax(col("samples"))}; OA ${minMedMax(col("oa"), 3)}. Platform start-up (sample, first model, first batch run): ${startS.toFixed(1)} s.`,
      "Wall clock on a shared 2-core machine (the load average at the start is in the JSON). Progressive publish: the activation sends the viewport, the run classifies its 16 tiles first and publishes an interim view (the other 48 cells carry the previous view's rows), so the viewport is visible before the final view, which the run publishes when the other 48 tiles are done.",
    ],
  };
  printTable(table);
  writeResults("loop", { rounds, startS, around, viewportCells: central.length }, [table]);
} finally {
  await platform.stop();
  await rm(root, { recursive: true, force: true });
}
