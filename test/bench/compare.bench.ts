/**
 * `npm run bench:compare`: one tree against another on a shared machine, interleaved round by round,
 * so both sides see the same load and the after/before ratio of a round is fair even when the
 * absolute figures are not. Written for issue 13 (per-pixel compositing): "before" is the tree just
 * before the composite merge, "after" is this tree.
 *
 *   serve   each round runs `test/bench/serve.bench.ts` once in each tree (a fresh process each,
 *           LANEMAP_BENCH_SECONDS per case, default 4) and reads the serve.json it writes there;
 *   batch   each round runs `lanemap batch run --full` (each tree's own CLI, compiled dist/) with 1
 *           and 2 workers on the same generated clear archive (one acquisition per cell, no QA band),
 *           under /usr/bin/time -v for CPU seconds; and, on this tree alone in the same rounds, an
 *           archive with a Landsat C2 QA_PIXEL band: one acquisition per cell ("QA, 1 per cell") and
 *           the same plus a newer acquisition of every cell at 35 % cloud (`lanemap start`'s feeder
 *           cover), so the composite has work to do ("QA + 35 % cloud, 2 per cell").
 *
 * The side that goes first alternates from round to round (before/after, then after/before), so a
 * drift in load favours neither. Every measure is min / median / max over the rounds, and the paired
 * ratio after / before is taken within a round. Each side registers the archive and trains its model
 * with its own CLI (`lanemap archive add`, `lanemap train --activate`), so data directories and
 * models are in each tree's own format.
 *
 * Usage: npm run bench:compare -- [serve] [batch] [--before DIR] [--rounds N] [--grid N]
 *   (default: both sections, --before $LANEMAP_BENCH_BEFORE or ../bench13-before, 5 rounds, an 8 x 8
 *   grid of 256² x 6-band tiles). Results: test/results/bench/compare-serve.json and compare-batch.json.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join, resolve } from "node:path";
import { SAMPLE_QA_BAND_NAME, generateArchive, generateTile } from "../../sample/index.js";
import { projectRoot } from "../helpers/env.js";
import { median, minMedMax, printTable, writeResults, type Cell, type Table } from "./harness.js";

const args = process.argv.slice(2);
const option = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const sections = args.filter((a, i) => !a.startsWith("--") && !args[i - 1]?.startsWith("--"));
const wants = (s: string): boolean => sections.length === 0 || sections.includes(s);
const BEFORE = resolve(
  option("--before") ?? process.env["LANEMAP_BENCH_BEFORE"] ?? join(projectRoot, "..", "bench13-before"),
);
const AFTER = resolve(projectRoot);
const ROUNDS = Number(option("--rounds") ?? 5);
const GRID = Number(option("--grid") ?? 8);
const TILE = 256;
const SERVE_SECONDS = process.env["LANEMAP_BENCH_SECONDS"] ?? "4";
/** `lanemap start`'s feeder cover (infra/platform FEED_CLOUD_COVER). */
const CLOUD_COVER = 0.35;
const DATA = join(projectRoot, "test", "results", "bench-data", `compare-${GRID}x${GRID}`);

type Side = "before" | "after";
const TREES: Record<Side, string> = { before: BEFORE, after: AFTER };

function say(msg: string): void {
  process.stderr.write(`[bench:compare ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

/** The commit a tree has checked out, and its subject. */
function commitOf(tree: string): { commit: string; subject: string } {
  const r = spawnSync("git", ["-C", tree, "log", "-1", "--format=%h%n%s"], { encoding: "utf8" });
  const [commit = "?", subject = "?"] = r.stdout.trim().split("\n");
  return { commit, subject };
}

/** The side order of round `i`: alternating, so a drift in load favours neither side. */
function sidesOf(i: number): Side[] {
  return i % 2 === 0 ? ["before", "after"] : ["after", "before"];
}

/** The 1-minute load average, sampled when a round starts. */
const loadDuring: number[] = [];

interface Measured {
  readonly stdout: string;
  readonly wallMs: number;
  readonly cpuS: number;
  readonly maxRssMiB: number;
}

/** Runs a command under /usr/bin/time -v; its CPU seconds (user + system) and peak RSS. */
function timed(
  cwd: string,
  cmd: string,
  argv: string[],
  env: Record<string, string> = {},
): Promise<Measured> {
  return new Promise((resolveRun, reject) => {
    const t0 = performance.now();
    const child = spawn("/usr/bin/time", ["-v", cmd, ...argv], {
      cwd,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("exit", (code) => {
      const wallMs = performance.now() - t0;
      if (code !== 0)
        return reject(
          new Error(`${cmd} ${argv.join(" ")} in ${cwd} exited with ${code}:\n${err.slice(-3000)}`),
        );
      const num = (re: RegExp) => Number(re.exec(err)?.[1] ?? NaN);
      resolveRun({
        stdout: out,
        wallMs,
        cpuS: num(/User time \(seconds\): ([\d.]+)/) + num(/System time \(seconds\): ([\d.]+)/),
        maxRssMiB: num(/Maximum resident set size \(kbytes\): (\d+)/) / 1024,
      });
    });
  });
}

/** `lanemap ...` with a tree's own CLI (its dist/ when fresh, as a user runs it). */
function lanemap(tree: string, argv: string[]): Promise<Measured> {
  return timed(tree, process.execPath, [join(tree, "infra", "bin", "lanemap.js"), ...argv], {
    LANEMAP_LOG_LEVEL: "warn",
    LANEMAP_BATCH_ORDER: "hilbert",
  });
}

/** Figures as min / median / max, and the paired after / before ratios the same way. */
function stat(xs: readonly number[]): { min: number; median: number; max: number; runs: number[] } {
  return { min: Math.min(...xs), median: median(xs), max: Math.max(...xs), runs: [...xs] };
}
function digitsFor(xs: readonly number[]): number {
  const m = Math.abs(median(xs));
  return m >= 100 ? 0 : m >= 10 ? 1 : 2;
}
function ratios(after: readonly number[], before: readonly number[]): number[] {
  return after.map((a, i) => a / (before[i] ?? NaN));
}

// ---------------------------------------------------------------------------------------------
// serve
// ---------------------------------------------------------------------------------------------

interface ServeMeasure {
  rps: number;
  p50: number;
  p99: number;
  ratio: number;
}

/** The serve measures compared, by serve.json's case name, with the figure taken from each. */
const SERVE_MEASURES: { label: string; key: string; field: keyof ServeMeasure; target?: string }[] = [
  { label: "bare Express req/s", key: "bare", field: "rps" },
  { label: "point req/s", key: "point", field: "rps" },
  { label: "point × bare Express", key: "point", field: "ratio", target: "≥ 0.40" },
  { label: "point p99 ms", key: "point", field: "p99" },
  { label: "tile detail req/s", key: "tile detail", field: "rps" },
  { label: "bbox list (1,000 cells) req/s", key: "bbox list (1,000 cells)", field: "rps" },
  { label: "stats (10,000 cells) req/s", key: "stats (10,000 cells)", field: "rps" },
  { label: "stats (10,000 cells) p50 ms", key: "stats (10,000 cells)", field: "p50" },
  { label: "stats (10,000 cells) p99 ms", key: "stats (10,000 cells)", field: "p99", target: "≤ 100" },
  { label: "bare @ 2,000 req/s p99 ms", key: "bare @ 2,000 req/s", field: "p99" },
  { label: "point @ 2,000 req/s p99 ms", key: "point @ 2,000 req/s", field: "p99" },
];

async function serveOnce(tree: string): Promise<Record<string, ServeMeasure>> {
  const json = join(tree, "test", "results", "bench", "serve.json");
  rmSync(json, { force: true });
  // One round per process: the rounds are interleaved here, tree by tree. This tree's serve.bench.ts
  // would otherwise run five of its own; a before tree's that predates `--rounds` ignores its arguments.
  const script = join(tree, "test", "bench", "serve.bench.ts");
  await timed(tree, process.execPath, ["--import", "tsx", script, "--rounds", "1"], {
    LANEMAP_BENCH_SECONDS: SERVE_SECONDS,
  });
  return (JSON.parse(readFileSync(json, "utf8")) as { data: { results: Record<string, ServeMeasure> } }).data
    .results;
}

async function serveSection(): Promise<void> {
  const runs: Record<Side, Record<string, ServeMeasure>[]> = { before: [], after: [] };
  for (let i = 0; i < ROUNDS; i++) {
    loadDuring.push(Math.round((loadavg()[0] ?? NaN) * 100) / 100);
    for (const side of sidesOf(i)) {
      say(`serve round ${i + 1}/${ROUNDS}: ${side} (load ${loadavg()[0]?.toFixed(2)})`);
      runs[side].push(await serveOnce(TREES[side]));
    }
  }
  const series = (side: Side, m: (typeof SERVE_MEASURES)[number]) =>
    runs[side].map((r) => r[m.key]?.[m.field] ?? NaN);
  const rows: Cell[][] = SERVE_MEASURES.map((m) => {
    const b = series("before", m);
    const a = series("after", m);
    const d = digitsFor([...a, ...b]);
    const met = (xs: number[]) =>
      m.target === undefined
        ? ""
        : xs.every((x) => (m.target!.startsWith("≥") ? x >= 0.4 : x <= 100))
          ? " ✔"
          : ` ✘ (${xs.filter((x) => !(m.target!.startsWith("≥") ? x >= 0.4 : x <= 100)).length} of ${xs.length} runs)`;
    return [
      m.label,
      minMedMax(b, d) + met(b),
      minMedMax(a, d) + met(a),
      minMedMax(ratios(a, b), 2, "×"),
      m.target ?? "",
    ];
  });
  const table: Table = {
    title: `Serving before and after per-pixel compositing: bench:serve, ${ROUNDS} interleaved runs per side (min / median / max)`,
    columns: ["measure", "before", "after", "after ÷ before (paired)", "target"],
    rows,
    notes: [
      `Each run is one \`npm run bench:serve\` process in its tree (100×100 cells of 64² class rasters, autocannon ${SERVE_SECONDS} s per case, server and bare Express in child processes); the side that runs first alternates by round. ✔ / ✘: the issue 13 target held in every run / missed in the runs counted.`,
      `1-minute load average when each round started: ${minMedMax(loadDuring, 2)} (min / median / max), on 2 cores shared with other sessions.`,
    ],
  };
  printTable(table);
  writeResults(
    "compare-serve",
    {
      before: { tree: BEFORE, ...commitOf(BEFORE) },
      after: { tree: AFTER, ...commitOf(AFTER) },
      seconds: Number(SERVE_SECONDS),
      rounds: ROUNDS,
      loadDuring,
      measures: Object.fromEntries(
        SERVE_MEASURES.map((m) => {
          const b = series("before", m);
          const a = series("after", m);
          return [m.label, { before: stat(b), after: stat(a), ratio: stat(ratios(a, b)) }];
        }),
      ),
      runs,
    },
    [table],
  );
  loadDuring.length = 0;
}

// ---------------------------------------------------------------------------------------------
// batch
// ---------------------------------------------------------------------------------------------

interface Report {
  tiles: { classified: number; total: number; failed: number };
  cells: number;
  pixels: number;
  validPixels: number;
  durationMs: number;
  workers: number;
}

/** A batch run's figures: rates over the run's own duration, CPU over the whole process. */
interface BatchFigures {
  tiles: number;
  cells: number;
  validPixels: number;
  seconds: number;
  wallS: number;
  cpuS: number;
  maxRssMiB: number;
  pxPerS: number;
  pxPerCpuS: number;
  tilesPerS: number;
  cellPxPerS: number;
}

/**
 * The archives: `clear` (generateArchive as it was before issue 13: one acquisition per cell, no QA
 * band, the field's own ~3 % cloud as nodata), `qa` (the same cells with a QA_PIXEL band) and `fresh`
 * (a newer acquisition of every cell, QA band, 35 % cloud, a month later).
 */
async function ensureArchives(): Promise<{ clear: string; qa: string; fresh: string; training: string }> {
  const clear = join(DATA, "clear");
  const qa = join(DATA, "qa");
  const fresh = join(DATA, "fresh");
  if (!existsSync(join(fresh, "done"))) {
    rmSync(DATA, { recursive: true, force: true });
    say(
      `generating ${GRID}x${GRID} tiles of ${TILE}² x 6 bands (clear, QA, fresh 35 % cloud) into ${DATA} ...`,
    );
    const grid = { width: GRID, height: GRID };
    await generateArchive({ out: clear, grid, tileSize: TILE, seed: 1, overwrite: true });
    await generateArchive({ out: qa, grid, tileSize: TILE, seed: 1, overwrite: true, quality: true });
    const manifest = JSON.parse(readFileSync(join(qa, "archive.json"), "utf8")) as {
      tiles: { cell: string; col: number; row: number; acquired: string }[];
    };
    mkdirSync(fresh, { recursive: true });
    for (const t of manifest.tiles) {
      const acquired = new Date(Date.parse(t.acquired) + 30 * 86_400_000)
        .toISOString()
        .replace(/\.\d+Z$/, "Z");
      const tile = generateTile({
        seed: 1,
        col: t.col,
        row: t.row,
        tileSize: TILE,
        acquired,
        quality: true,
        cloudCover: CLOUD_COVER,
      });
      // Another file of the same cell: the sidecar names the cell, the tile id follows from the time.
      writeFileSync(join(fresh, `${t.cell}-fresh.tif`), tile.bytes);
      writeFileSync(join(fresh, `${t.cell}-fresh.json`), JSON.stringify({ cell: t.cell, acquired }));
    }
    writeFileSync(join(fresh, "done"), "");
  }
  return { clear, qa, fresh, training: join(clear, "training.geojson") };
}

/** A data directory registered and trained by `tree`'s own CLI (reused when it is there). */
async function ensureDataDir(
  name: string,
  tree: string,
  folders: readonly string[],
  training: string,
  quality: boolean,
): Promise<string> {
  const dir = join(DATA, `dd-${name}`);
  if (existsSync(join(dir, "ready"))) return dir;
  rmSync(dir, { recursive: true, force: true });
  say(`registering and training ${name} with ${tree} ...`);
  for (const f of folders) await lanemap(tree, ["archive", "add", f, "--data-dir", dir]);
  const qaBand = quality ? ["--quality", `7:landsat-c2-qa-pixel`] : [];
  await lanemap(tree, [
    "train",
    "--tiles",
    folders[0]!,
    "--train",
    training,
    ...qaBand,
    "--data-dir",
    dir,
    "--activate",
  ]);
  writeFileSync(join(dir, "ready"), "");
  return dir;
}

async function batchOnce(tree: string, dataDir: string, workers: number): Promise<BatchFigures> {
  rmSync(join(dataDir, "views"), { recursive: true, force: true });
  const m = await lanemap(tree, [
    "batch",
    "run",
    "--json",
    "--full",
    "--data-dir",
    dataDir,
    "--workers",
    String(workers),
  ]);
  const r = JSON.parse(m.stdout) as Report;
  if (r.tiles.failed > 0) throw new Error(`${tree}: ${r.tiles.failed} tiles failed in ${dataDir}`);
  const seconds = r.durationMs / 1000;
  return {
    tiles: r.tiles.classified,
    cells: r.cells,
    validPixels: r.validPixels,
    seconds,
    wallS: m.wallMs / 1000,
    cpuS: m.cpuS,
    maxRssMiB: m.maxRssMiB,
    pxPerS: r.validPixels / seconds,
    pxPerCpuS: r.validPixels / m.cpuS,
    tilesPerS: r.tiles.classified / seconds,
    cellPxPerS: (r.cells * TILE * TILE) / seconds,
  };
}

type Variant = "before" | "after" | "after-qa1" | "after-qa2";
const VARIANT_LABEL: Record<Variant, string> = {
  before: "before, clear",
  after: "after, clear",
  "after-qa1": "after, QA band, 1 acquisition per cell",
  "after-qa2": "after, QA + 35 % cloud, 2 per cell",
};

async function batchSection(): Promise<void> {
  const a = await ensureArchives();
  const dirs: Record<Variant, string> = {
    before: await ensureDataDir("before-clear", BEFORE, [a.clear + "/tiles"], a.training, false),
    after: await ensureDataDir("after-clear", AFTER, [a.clear + "/tiles"], a.training, false),
    "after-qa1": await ensureDataDir("after-qa1", AFTER, [a.qa + "/tiles"], a.training, true),
    "after-qa2": await ensureDataDir("after-qa2", AFTER, [a.qa + "/tiles", a.fresh], a.training, true),
  };
  const runs: Record<string, BatchFigures[]> = {};
  // A warm-up run per tree (page cache, dist/ loaded once), not counted.
  for (const v of ["before", "after"] as const) await batchOnce(TREES[v], dirs[v], 2);
  for (let i = 0; i < ROUNDS; i++) {
    loadDuring.push(Math.round((loadavg()[0] ?? NaN) * 100) / 100);
    for (const w of WORKERS) {
      const order: Variant[] = [...sidesOf(i), "after-qa1", "after-qa2"];
      for (const v of order) {
        say(`batch round ${i + 1}/${ROUNDS}, ${w} worker(s): ${v} (load ${loadavg()[0]?.toFixed(2)})`);
        const f = await batchOnce(v === "before" ? BEFORE : AFTER, dirs[v], w);
        (runs[batchKey(v, w)] ??= []).push(f);
      }
    }
  }
  const tables = batchTables(runs, loadDuring);
  for (const t of tables) printTable(t);
  writeResults(
    "compare-batch",
    {
      before: { tree: BEFORE, ...commitOf(BEFORE) },
      after: { tree: AFTER, ...commitOf(AFTER) },
      grid: GRID,
      tileSize: TILE,
      rounds: ROUNDS,
      cloudCover: CLOUD_COVER,
      qaBand: SAMPLE_QA_BAND_NAME,
      loadDuring,
      figures: Object.fromEntries(
        Object.entries(runs).map(([k, rs]) => [
          k,
          Object.fromEntries(
            (Object.keys(rs[0] ?? {}) as (keyof BatchFigures)[]).map((f) => [f, stat(rs.map((r) => r[f]))]),
          ),
        ]),
      ),
      pairedPxPerS: Object.fromEntries(
        WORKERS.map((w) => [
          w,
          stat(ratios(pickOf(runs, "after", w, "pxPerS"), pickOf(runs, "before", w, "pxPerS"))),
        ]),
      ),
      pairedPxPerCpuS: Object.fromEntries(
        WORKERS.map((w) => [
          w,
          stat(ratios(pickOf(runs, "after", w, "pxPerCpuS"), pickOf(runs, "before", w, "pxPerCpuS"))),
        ]),
      ),
      runs,
    },
    tables,
  );
  loadDuring.length = 0;
}

const WORKERS = [1, 2] as const;
const batchKey = (v: Variant, w: number): string => `${v}/${w}`;
function pickOf(
  runs: Record<string, BatchFigures[]>,
  v: Variant,
  w: number,
  f: keyof BatchFigures,
): number[] {
  return (runs[batchKey(v, w)] ?? []).map((r) => r[f]);
}

/** The batch tables, from the runs alone (so `--retable` can rebuild them from a results file). */
function batchTables(runs: Record<string, BatchFigures[]>, load: readonly number[]): Table[] {
  const pick = (v: Variant, w: number, f: keyof BatchFigures) => pickOf(runs, v, w, f);
  const rounds = (runs[batchKey("before", 1)] ?? []).length;
  const MEASURES: { label: string; field: keyof BatchFigures }[] = [
    { label: "valid px/s", field: "pxPerS" },
    { label: "valid px per CPU-second", field: "pxPerCpuS" },
    { label: "tiles/s", field: "tilesPerS" },
    { label: "in-run s", field: "seconds" },
    { label: "peak RSS MiB", field: "maxRssMiB" },
  ];
  const compareRows: Cell[][] = [];
  const costRows: Cell[][] = [];
  for (const w of WORKERS)
    for (const m of MEASURES) {
      const b = pick("before", w, m.field);
      const af = pick("after", w, m.field);
      const d = digitsFor([...b, ...af]);
      compareRows.push([
        String(w),
        m.label,
        minMedMax(b, d),
        minMedMax(af, d),
        minMedMax(ratios(af, b), 3, "×"),
        m.field === "pxPerS" ? "≥ 0.90× (within 10 %)" : "",
      ]);
    }
  for (const w of WORKERS)
    for (const v of ["after", "after-qa1", "after-qa2"] as const) {
      const px = pick(v, w, "pxPerS");
      const cpu = pick(v, w, "pxPerCpuS");
      const tiles = pick(v, w, "tilesPerS");
      const cellPx = pick(v, w, "cellPxPerS");
      const first = runs[batchKey(v, w)]?.[0];
      costRows.push([
        String(w),
        VARIANT_LABEL[v],
        first ? `${first.tiles} / ${first.cells}` : "—",
        minMedMax(tiles, 2),
        minMedMax(px),
        minMedMax(cpu),
        minMedMax(cellPx),
        minMedMax(ratios(cellPx, pick("after", w, "cellPxPerS")), 2, "×"),
      ]);
    }
  // The issue 13 target, judged on the paired median (a single round's ratio carries the load's noise).
  const verdicts = WORKERS.map((w) => {
    const wall = median(ratios(pick("after", w, "pxPerS"), pick("before", w, "pxPerS")));
    const cpu = median(ratios(pick("after", w, "pxPerCpuS"), pick("before", w, "pxPerCpuS")));
    const ok = (r: number) => (r >= 0.9 ? "met" : "MISSED");
    return `${w} worker${w > 1 ? "s" : ""}: px/s ${wall.toFixed(3)}× (${ok(wall)}), px per CPU-second ${cpu.toFixed(3)}× (${ok(cpu)})`;
  });
  const side = Math.round(Math.sqrt(runs[batchKey("before", 1)]?.[0]?.cells ?? GRID * GRID));
  const px = `${side}×${side} tiles of ${TILE}² × 6 bands (${((side * side * TILE * TILE) / 1e6).toFixed(1)} Mpx)`;
  const loadNote = `1-minute load average when each round started: ${minMedMax(load, 2)} (min / median / max), on 2 cores shared with other sessions.`;
  const compare: Table = {
    title: `Batch lane before and after per-pixel compositing, clear scenes: \`lanemap batch run --full\` on ${px}, ${rounds} interleaved runs per side (min / median / max)`,
    columns: ["workers", "measure", "before", "after", "after ÷ before (paired)", "target"],
    rows: compareRows,
    notes: [
      `target: batch px/s within 10 % of before on clear scenes (paired median after ÷ before ≥ 0.90): ${verdicts.join("; ")}.`,
      "Clear: one acquisition per cell, no QA band (the generator's own ~3 % cloud as nodata), so every cell's composite is its only scene. Each side registered the archive and trained its model (all training polygons, k = 5) with its own CLI; runs use each tree's compiled dist/ in a fresh process, the side that runs first alternating by round.",
      "valid px/s and tiles/s over the run's own duration (the report's durationMs: catalogue, classify, DuckDB, exports, publish); px per CPU-second over the whole process (user + system from /usr/bin/time -v, start-up included), the figure other load inflates least.",
      loadNote,
    ],
  };
  const cost: Table = {
    title: "What compositing costs when it has work to do (this tree only, same rounds)",
    columns: [
      "workers",
      "archive",
      "tiles / cells",
      "tiles/s",
      "valid px/s",
      "valid px per CPU-second",
      "cell px/s",
      "cell px/s ÷ clear (paired)",
    ],
    rows: costRows,
    notes: [
      `QA band: the same cells with a Landsat C2 QA_PIXEL band (cloud, dilated cloud and shadow flagged, read as a mask, model trained with \`--quality 7:landsat-c2-qa-pixel\`); 2 per cell adds a newer acquisition of every cell a month later at ${CLOUD_COVER * 100} % cloud (\`lanemap start\`'s feeder cover), so each cell's composite takes the fresh scene's valid pixels and fills its clouds from the older one.`,
      "cell px/s: composite pixels of the published view (cells × 256²) per second of the run; valid px counts every classified tile's valid pixels, so the 2-per-cell archive counts both scenes.",
    ],
  };
  return [compare, cost];
}

/**
 * `--retable FILE`: rebuilds a compare-batch results file's tables from its runs (after a change to
 * how they are shown), keeping its figures, machine facts and dates as measured.
 */
function retable(file: string): void {
  const r = JSON.parse(readFileSync(file, "utf8")) as {
    tables: Table[];
    data: { runs: Record<string, BatchFigures[]>; loadDuring: number[] };
  };
  r.tables = batchTables(r.data.runs, r.data.loadDuring);
  for (const t of r.tables) printTable(t);
  writeFileSync(file, JSON.stringify(r, null, 2) + "\n");
}

if (!existsSync(join(BEFORE, "infra", "bin", "lanemap.js")))
  throw new Error(
    `no "before" tree at ${BEFORE}: make one (git worktree add <dir> <commit>; npm run build there) and pass --before <dir>`,
  );
const retableFile = option("--retable");
if (retableFile) {
  retable(resolve(retableFile));
  process.exit(0);
}
say(`before: ${BEFORE} (${commitOf(BEFORE).commit}), after: ${AFTER} (${commitOf(AFTER).commit})`);
if (wants("serve")) await serveSection();
if (wants("batch")) await batchSection();
