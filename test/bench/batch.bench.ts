/**
 * `npm run bench:batch`: the batch lane on a 32 x 32 archive of 256² x 6-band tiles.
 *
 *   - throughput (tiles/s, px/s, px per CPU-second) with 1 and 2 workers, against the peer
 *     (rasterio + scikit-learn) on the same tiles and training polygons;
 *   - peak RSS of the `lanemap batch run` process at 8 x 8, 16 x 16 and 32 x 32 tiles (flat = streaming);
 *   - an incremental rebuild with nothing changed against a full one;
 *   - DuckDB figures: data-chunk vs value-by-value appends, class-raster BLOB sizes, point lookups;
 *   - the scheduler experiment: tiles processed before the 10 x 10 block around a tile of interest is
 *     complete, per ordering, and a figure of the orders (test/results/bench/scheduler-orders.png).
 *
 * The archive is generated once into test/results/bench-data/ and reused; so are the registered data
 * directories. Runs are child processes (`node infra/bin/lanemap.js ...` under /usr/bin/time -v), so RSS
 * and CPU time are the batch process's own.
 */
import { spawn } from "node:child_process";
import {
  cpSync,
  existsSync,
  linkSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import {
  DuckDBDataChunk,
  listValue,
  timestampValue,
  type DuckDBBlobValue,
  type DuckDBValue,
} from "@duckdb/node-api";
import { encode as encodePng } from "fast-png";
import { pino } from "pino";
import { addArchiveFolder, type RunReport } from "../../batch/index.js";
import { StagingViewStore } from "../../batch/view-store.js";
import { ArchiveStore, readCurrentBatch } from "../../shared/adapters/archive/index.js";
import { DuckDbDatabase } from "../../shared/adapters/duckdb/index.js";
import {
  BATCH_VIEW_DDL,
  BATCH_VIEW_FILES,
  aoiCompletion,
  blockAround,
  cellKey,
  createFeatureSpec,
  createRandom,
  decodeClassRaster,
  decodeGeoTiff,
  encodeClassRaster,
  orderTiles,
  parseCellKey,
  saveModelFile,
  trainModel,
  type GridTile,
  type Ordering,
  type ClassifiedTile,
} from "../../shared/internal.js";
import { SAMPLE_NIR_BAND, SAMPLE_RED_BAND, generateArchive } from "../../sample/index.js";
import { missing, peerScript, projectRoot } from "../helpers/env.js";
import { median, printTable, writeResults, type Cell } from "./harness.js";

const DATA = join(projectRoot, "test", "results", "bench-data");
const SAMPLE = join(DATA, "batch-sample-32x32");
const WORK = join(DATA, "batch-work");
const FIGURE = join(projectRoot, "test", "results", "bench", "scheduler-orders.png");
const GRID = 32;
const log = pino({ level: "warn" });

function say(msg: string): void {
  process.stderr.write(`[bench:batch] ${msg}\n`);
}

// ---------------------------------------------------------------------------------------------
// Data
// ---------------------------------------------------------------------------------------------

async function ensureSample(): Promise<void> {
  if (existsSync(join(SAMPLE, "archive.json"))) return;
  say(`generating the ${GRID}x${GRID} archive (256² x 6 bands) into ${SAMPLE} ...`);
  await generateArchive({
    out: SAMPLE,
    grid: { width: GRID, height: GRID },
    tileSize: 256,
    seed: 1,
    overwrite: true,
    onTile: (done, total) => done % 128 === 0 && say(`  ${done}/${total}`),
  });
}

/** A folder with hard links to the tiles of the n x n north-west block, and its training polygons. */
function subsetFolder(n: number): { dir: string; training: string } {
  const dir = join(DATA, `batch-sub-${n}x${n}`);
  const training = join(DATA, `batch-training-${n}x${n}.geojson`);
  const inBlock = (cell: string) => {
    const p = parseCellKey(cell);
    return p !== null && p.col < n && p.row < n;
  };
  if (!existsSync(training)) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    for (const f of readdirSync(join(SAMPLE, "tiles")))
      if (inBlock(f.replace(/\.tif$/, ""))) linkSync(join(SAMPLE, "tiles", f), join(dir, f));
    const all = JSON.parse(readFileSync(join(SAMPLE, "training.geojson"), "utf8")) as {
      features: { properties: { cell: string } }[];
    };
    writeFileSync(
      training,
      JSON.stringify({ ...all, features: all.features.filter((f) => inBlock(f.properties.cell)) }),
    );
  }
  return { dir, training };
}

/** The model: trained from the polygons of the 8 x 8 block on its tiles (the peer gets the same). */
async function ensureModel(sub: { dir: string; training: string }): Promise<string> {
  const path = join(DATA, "batch-model-8x8.json");
  if (existsSync(path)) return path;
  say("training the model on the 8x8 block ...");
  const names = readdirSync(sub.dir).sort();
  const rasters = await Promise.all(
    names.map(async (n) => decodeGeoTiff(new Uint8Array(readFileSync(join(sub.dir, n))))),
  );
  const model = trainModel(
    rasters,
    { kind: "geojson", geojson: JSON.parse(readFileSync(sub.training, "utf8")) },
    {
      features: createFeatureSpec(rasters[0]!.bandCount, { red: SAMPLE_RED_BAND, nir: SAMPLE_NIR_BAND }),
      source: "batch-training-8x8.geojson",
      tileNames: names,
    },
  );
  await saveModelFile(path, model);
  return path;
}

/** A data dir holding the n x n block of the archive (n = 32: the whole archive) and the model. */
async function ensureDataDir(n: number, modelPath: string): Promise<string> {
  const full = join(WORK, `dd-${GRID}`);
  const dir = join(WORK, `dd-${n}`);
  const catalogue = join(dir, "archive", "catalogue");
  if (n === GRID) {
    const have = existsSync(catalogue) ? readdirSync(catalogue).filter((f) => f.endsWith(".json")).length : 0;
    if (have !== GRID * GRID) {
      say(`registering ${GRID * GRID} tiles into ${full} ...`);
      await addArchiveFolder(new ArchiveStore(full), join(SAMPLE, "tiles"), { logger: log, maxPixels: 1e8 });
    }
  } else if (!existsSync(catalogue)) {
    // Same objects (a symlink), a catalogue with the block's entries only.
    mkdirSync(catalogue, { recursive: true });
    symlinkSync(join(full, "archive", "objects"), join(dir, "archive", "objects"));
    for (const f of readdirSync(join(full, "archive", "catalogue"))) {
      const p = parseCellKey(f.split("-")[0] ?? "");
      if (p && p.col < n && p.row < n) cpSync(join(full, "archive", "catalogue", f), join(catalogue, f));
    }
  }
  rmSync(join(dir, "models"), { recursive: true, force: true });
  mkdirSync(join(dir, "models"), { recursive: true });
  cpSync(modelPath, join(dir, "models", "model.json"));
  return dir;
}

// ---------------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------------

interface Measured {
  readonly stdout: string;
  readonly wallMs: number;
  readonly maxRssMiB: number;
  readonly cpuS: number;
  readonly cpuPercent: number;
}

function timed(cmd: string, args: string[], env: Record<string, string> = {}): Promise<Measured> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn("/usr/bin/time", ["-v", cmd, ...args], {
      cwd: projectRoot,
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
        return reject(new Error(`${cmd} ${args.join(" ")} exited with ${code}:\n${err.slice(-3000)}`));
      const num = (re: RegExp) => Number(re.exec(err)?.[1] ?? NaN);
      resolve({
        stdout: out,
        wallMs,
        maxRssMiB: num(/Maximum resident set size \(kbytes\): (\d+)/) / 1024,
        cpuS: num(/User time \(seconds\): ([\d.]+)/) + num(/System time \(seconds\): ([\d.]+)/),
        cpuPercent: num(/Percent of CPU this job got: (\d+)%/),
      });
    });
  });
}

async function batchRun(
  dataDir: string,
  workers: number,
  extra: string[] = [],
): Promise<{ report: RunReport } & Measured> {
  // Full runs start from no view at all; the incremental run keeps the previous one to reuse.
  if (!extra.includes("--keep-views")) rmSync(join(dataDir, "views"), { recursive: true, force: true });
  const args = extra.filter((a) => a !== "--keep-views");
  const m = await timed(
    process.execPath,
    [
      join(projectRoot, "infra", "bin", "lanemap.js"),
      "batch",
      "run",
      "--json",
      "--data-dir",
      dataDir,
      "--workers",
      String(workers),
      ...args,
    ],
    { LANEMAP_LOG_LEVEL: "warn", LANEMAP_BATCH_ORDER: "hilbert" },
  );
  return { ...m, report: JSON.parse(m.stdout) as RunReport };
}

// ---------------------------------------------------------------------------------------------
// DuckDB figures
// ---------------------------------------------------------------------------------------------

/** Rows/s appending `tiles` rows through data chunks (our path) and value by value. */
async function appendRates(): Promise<{
  chunkRowsPerS: number;
  valueRowsPerS: number;
  finishedTilesPerS: number;
}> {
  const dir = join(WORK, "append");
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const N = 50_000;
  const rnd = createRandom(5);
  const rows: DuckDBValue[][] = [];
  for (let i = 0; i < N; i++)
    rows.push([
      `tile-${i}`,
      cellKey(i % 1000, Math.floor(i / 1000)),
      timestampValue(BigInt(Date.UTC(2024, 0, 1) + i * 1000) * 1000n),
      BigInt(i),
      "ab".repeat(32),
      "0123456789abcdef",
      256,
      256,
      listValue([500000 + i, 30, 0, 4000000, 0, -30]),
      32615,
      null,
      -93,
      36,
      -92.9,
      36.1,
      65536n,
      listValue([0n, BigInt(rnd.int(30000)), BigInt(rnd.int(30000)), 5n, 6n]),
      listValue([0, 1.5, 2.5, 3.5, 4.5]),
      1 + rnd.int(4),
      rnd.next(),
      timestampValue(BigInt(Date.now()) * 1000n),
      false,
    ]);
  const rate = async (name: string, fill: (app: Awaited<ReturnType<DuckDbDatabase["appender"]>>) => void) => {
    const db = await DuckDbDatabase.open(join(dir, `${name}.duckdb`), { threads: 2 });
    try {
      await db.run(BATCH_VIEW_DDL[0]);
      const app = await db.appender("tiles");
      const t0 = performance.now();
      fill(app);
      app.flushSync();
      app.closeSync();
      return N / ((performance.now() - t0) / 1000);
    } finally {
      db.closeSync();
    }
  };
  const chunkRowsPerS = await rate("chunks", (app) => {
    const types = Array.from({ length: app.columnCount }, (_, i) => app.columnType(i));
    for (let s = 0; s < N; s += 2048) {
      const part = rows.slice(s, s + 2048);
      const chunk = DuckDBDataChunk.create(types, part.length);
      chunk.setRows(part);
      app.appendDataChunk(chunk);
    }
  });
  const valueRowsPerS = await rate("values", (app) => {
    const types = Array.from({ length: app.columnCount }, (_, i) => app.columnType(i));
    for (const r of rows) {
      r.forEach((v, i) => app.appendValue(v, types[i]));
      app.endRow();
    }
  });
  // The real path: StagingViewStore.appendFinished, rows + ~realistic raster BLOBs, committed.
  const store = await StagingViewStore.open(join(dir, "finished.duckdb"));
  const M = 2000;
  const tiles: ClassifiedTile[] = [];
  for (let i = 0; i < M; i++) {
    const classes = new Uint8Array(256 * 256).map((_, p) => 1 + ((p >> 9) % 4));
    const votes = classes.map(() => 3 + rnd.int(3));
    tiles.push({
      k: 5,
      raster: encodeClassRaster({ width: 256, height: 256, classes, votes, k: 5 }),
      result: {
        lane: "batch",
        tileId: `t${i}`,
        cell: cellKey(i % 50, Math.floor(i / 50)),
        acquired: "2024-01-01T00:00:00.000Z",
        ingestSeq: 0,
        contentHash: "c".repeat(64),
        modelVersion: "m",
        width: 256,
        height: 256,
        geoTransform: [0, 30, 0, 0, 0, -30],
        epsg: 32615,
        proj4: null,
        boundsWgs84: null,
        validPixels: 65536,
        counts: [0, 1, 2, 3, 4],
        areasM2: [0, 1, 2, 3, 4],
        dominantClass: 1,
        meanConfidence: 0.8,
        processedAt: "2024-01-01T00:00:00.000Z",
      },
    });
  }
  const t0 = performance.now();
  for (let i = 0; i < M; i += 32) await store.appendFinished(tiles.slice(i, i + 32));
  const finishedTilesPerS = M / ((performance.now() - t0) / 1000);
  await store.closeCheckpointed();
  rmSync(dir, { recursive: true, force: true });
  return { chunkRowsPerS, valueRowsPerS, finishedTilesPerS };
}

/** Raster BLOB sizes and point-lookup latency on a published view. */
async function viewFigures(dataDir: string) {
  const v = await readCurrentBatch(dataDir);
  if (!v) throw new Error("no published view");
  const db = await DuckDbDatabase.open(join(v.dir, BATCH_VIEW_FILES.duckdb), { readOnly: true });
  try {
    const [sizes] = await db.allJS<{ n: number; avg: number; min: number; max: number; total: number }>(
      "SELECT count(*) AS n, avg(octet_length(raster)) AS avg, min(octet_length(raster)) AS min, max(octet_length(raster)) AS max, sum(octet_length(raster)) AS total FROM rasters",
    );
    const ids = (
      await db.all<{ tile_id: string; width: number; height: number }>(
        "SELECT tile_id, width, height FROM tiles",
      )
    ).map((r) => r);
    const rnd = createRandom(11);
    const lookup: number[] = [];
    const withDecode: number[] = [];
    for (let i = 0; i < 400; i++) {
      const t = ids[rnd.int(ids.length)]!;
      const t0 = performance.now();
      const [row] = await db.all<{ raster: DuckDBBlobValue; k: number }>(
        "SELECT raster, k FROM rasters WHERE tile_id = $1",
        [t.tile_id],
      );
      const t1 = performance.now();
      decodeClassRaster(row!.raster.bytes, t.width, t.height, row!.k);
      const t2 = performance.now();
      if (i >= 50) {
        lookup.push(t1 - t0);
        withDecode.push(t2 - t0);
      }
    }
    lookup.sort((a, b) => a - b);
    return {
      blobs: {
        count: Number(sizes!.n),
        avgBytes: Number(sizes!.avg),
        minBytes: Number(sizes!.min),
        maxBytes: Number(sizes!.max),
        totalMiB: Number(sizes!.total) / 2 ** 20,
      },
      pointLookupMs: {
        median: median(lookup),
        p95: lookup[Math.floor(lookup.length * 0.95)] ?? NaN,
        withDecodeMedian: median(withDecode),
      },
      files: v.manifest.files,
    };
  } finally {
    db.closeSync();
  }
}

// ---------------------------------------------------------------------------------------------
// Scheduler experiment and figure
// ---------------------------------------------------------------------------------------------

const ORDERS = ["natural", "random", "hilbert", "distance", "hilbert-around"] as const;

function schedulerExperiment(focus: { col: number; row: number }) {
  const tiles: GridTile[] = [];
  for (let row = 0; row < GRID; row++)
    for (let col = 0; col < GRID; col++) tiles.push({ id: cellKey(col, row), col, row });
  const block = blockAround(focus.col, focus.row, 10, GRID, GRID);
  const blockIds = block.cells.map((c) => cellKey(c.col, c.row));
  const orderings: Record<(typeof ORDERS)[number], Ordering> = {
    natural: { kind: "natural" },
    random: { kind: "random", seed: 1 },
    hilbert: { kind: "hilbert" },
    distance: { kind: "distance", around: block.centre },
    "hilbert-around": { kind: "hilbert-around", around: block.centre },
  };
  return {
    block,
    results: ORDERS.map((name) => {
      const ordered = orderTiles(tiles, orderings[name]);
      return {
        name,
        ordered,
        aoiComplete: aoiCompletion(
          ordered.map((t) => t.id),
          blockIds,
        ),
      };
    }),
  };
}

// A 5x7 bitmap font for the panel captions (only the characters used).
const FONT: Record<string, string[]> = {
  a: ["     ", "     ", " ### ", "    #", " ####", "#   #", " ####"],
  c: ["     ", "     ", " ### ", "#    ", "#    ", "#    ", " ### "],
  d: ["    #", "    #", " ####", "#   #", "#   #", "#   #", " ####"],
  e: ["     ", "     ", " ### ", "#   #", "#####", "#    ", " ### "],
  h: ["#    ", "#    ", "#### ", "#   #", "#   #", "#   #", "#   #"],
  i: ["  #  ", "     ", " ##  ", "  #  ", "  #  ", "  #  ", " ### "],
  l: [" ##  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "],
  m: ["     ", "     ", "## # ", "# # #", "# # #", "# # #", "# # #"],
  n: ["     ", "     ", "#### ", "#   #", "#   #", "#   #", "#   #"],
  o: ["     ", "     ", " ### ", "#   #", "#   #", "#   #", " ### "],
  r: ["     ", "     ", "# ## ", "##   ", "#    ", "#    ", "#    "],
  s: ["     ", "     ", " ####", "#    ", " ### ", "    #", "#### "],
  t: [" #   ", " #   ", "#### ", " #   ", " #   ", " #  #", "  ## "],
  u: ["     ", "     ", "#   #", "#   #", "#   #", "#  ##", " ## #"],
  b: ["#    ", "#    ", "#### ", "#   #", "#   #", "#   #", "#### "],
  "-": ["     ", "     ", "     ", " ### ", "     ", "     ", "     "],
  "=": ["     ", "     ", "#####", "     ", "#####", "     ", "     "],
  " ": ["     ", "     ", "     ", "     ", "     ", "     ", "     "],
  "0": [" ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### "],
  "1": ["  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "],
  "2": [" ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####"],
  "3": ["#####", "   # ", "  #  ", "   # ", "    #", "#   #", " ### "],
  "4": ["   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # "],
  "5": ["#####", "#    ", "#### ", "    #", "    #", "#   #", " ### "],
  "6": ["  ## ", " #   ", "#    ", "#### ", "#   #", "#   #", " ### "],
  "7": ["#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   "],
  "8": [" ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### "],
  "9": [" ### ", "#   #", "#   #", " ####", "    #", "   # ", " ##  "],
};

/** A colour ramp through `stops`, t in [0, 1]. */
function ramp(stops: readonly (readonly number[])[], t: number): [number, number, number] {
  const x = Math.min(0.9999, Math.max(0, t)) * (stops.length - 1);
  const i = Math.floor(x);
  const f = x - i;
  const a = stops[i]!;
  const b = stops[i + 1]!;
  return [0, 1, 2].map((k) => Math.round(a[k]! + (b[k]! - a[k]!) * f)) as [number, number, number];
}
/** Viridis-like, washed out: the rank of the tiles after the first 100. */
const LATER = [
  [68, 1, 84],
  [59, 82, 139],
  [33, 145, 140],
  [94, 201, 98],
  [253, 231, 37],
].map((c) => c.map((v) => Math.round(v * 0.3 + 255 * 0.7)));
/** Inferno-like, full strength: the first 100 tiles, dark (first) to bright (100th). */
const FIRST = [
  [20, 11, 52],
  [120, 28, 109],
  [212, 72, 66],
  [250, 160, 20],
  [252, 255, 164],
];

function drawFigure(exp: ReturnType<typeof schedulerExperiment>, focus: { col: number; row: number }): void {
  const cellPx = 9;
  const panel = GRID * cellPx;
  const gap = 18;
  const top = 30;
  const width = ORDERS.length * panel + (ORDERS.length + 1) * gap;
  const height = panel + top + gap;
  const img = new Uint8Array(width * height * 3).fill(255);
  const px = (x: number, y: number, c: readonly number[]) => {
    if (x < 0 || y < 0 || x >= width || y >= height) return;
    img.set(c, (y * width + x) * 3);
  };
  const text = (s: string, x0: number, y0: number) => {
    let x = x0;
    for (const ch of s) {
      const g = FONT[ch] ?? FONT[" "]!;
      g.forEach((line, gy) => {
        for (let gx = 0; gx < 5; gx++)
          if (line[gx] === "#")
            for (let dy = 0; dy < 2; dy++)
              for (let dx = 0; dx < 2; dx++) px(x + gx * 2 + dx, y0 + gy * 2 + dy, [0, 0, 0]);
      });
      x += 12;
    }
  };
  const n = GRID * GRID;
  exp.results.forEach((res, p) => {
    const ox = gap + p * (panel + gap);
    const oy = top;
    text(`${res.name} ${res.aoiComplete}`, ox, 6);
    res.ordered.forEach((t, rank) => {
      // The first 100 tiles on a strong ramp of their own; the rest washed out by overall rank.
      const colour = rank < 100 ? ramp(FIRST, rank / 99) : ramp(LATER, rank / (n - 1));
      for (let y = 0; y < cellPx - 1; y++)
        for (let x = 0; x < cellPx - 1; x++) px(ox + t.col * cellPx + x, oy + t.row * cellPx + y, colour);
    });
    // The AOI block's outline and the tile of interest.
    const b = exp.block;
    const x0 = ox + b.colStart * cellPx - 1;
    const y0 = oy + b.rowStart * cellPx - 1;
    const x1 = ox + b.colEnd * cellPx - 1;
    const y1 = oy + b.rowEnd * cellPx - 1;
    for (let x = x0; x <= x1; x++) {
      px(x, y0, [220, 20, 60]);
      px(x, y1, [220, 20, 60]);
    }
    for (let y = y0; y <= y1; y++) {
      px(x0, y, [220, 20, 60]);
      px(x1, y, [220, 20, 60]);
    }
    for (let y = 1; y < cellPx - 2; y++)
      for (let x = 1; x < cellPx - 2; x++) {
        const edge = x === 1 || y === 1 || x === cellPx - 3 || y === cellPx - 3;
        px(ox + focus.col * cellPx + x, oy + focus.row * cellPx + y, edge ? [255, 255, 255] : [0, 0, 0]);
      }
  });
  mkdirSync(join(FIGURE, ".."), { recursive: true });
  writeFileSync(FIGURE, encodePng({ width, height, data: img, channels: 3, depth: 8 }));
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const focus = { col: 21, row: 12 };
  const exp = schedulerExperiment(focus);
  drawFigure(exp, focus);
  say(`scheduler figure: ${FIGURE}`);
  if (process.argv.includes("--figure-only")) return;

  await ensureSample();
  const sub8 = subsetFolder(8);
  const modelPath = await ensureModel(sub8);
  const dd32 = await ensureDataDir(32, modelPath);
  const dd16 = await ensureDataDir(16, modelPath);
  const dd8 = await ensureDataDir(8, modelPath);

  say("DuckDB append rates ...");
  const appends = await appendRates();

  say("8x8 runs (1 and 2 workers) ...");
  const r8w1 = await batchRun(dd8, 1, ["--full"]);
  const r8w2 = await batchRun(dd8, 2, ["--full"]);
  say("16x16 run (2 workers) ...");
  const r16w2 = await batchRun(dd16, 2, ["--full"]);
  say("32x32 runs (1 and 2 workers; minutes) ...");
  const r32w1 = await batchRun(dd32, 1, ["--full"]);
  const r32w2 = await batchRun(dd32, 2, ["--full"]);
  say("32x32 incremental run, nothing changed ...");
  const r32inc = await batchRun(dd32, 2, ["--keep-views"]);
  const view = await viewFigures(dd32);

  let peer: {
    pixelsPerS: number;
    validPixels: number;
    seconds: number;
    cpuS: number;
    cpuPercent: number;
    maxRssMiB: number;
  } | null = null;
  const peerMissing = missing({ shared: true, peer: true });
  if (!peerMissing && peerScript()) {
    say("the peer on the 8x8 block (about a minute) ...");
    const out = join(WORK, "peer-out");
    rmSync(out, { recursive: true, force: true });
    const m = await timed("/usr/bin/python3", [
      peerScript()!,
      "--tiles",
      sub8.dir,
      "--train",
      sub8.training,
      "--red",
      "3",
      "--nir",
      "4",
      "--out",
      out,
    ]);
    const last = JSON.parse(m.stdout.trim().split("\n").at(-1)!) as {
      pixels: number;
      pixels_per_s: number;
      seconds: { total: number };
    };
    peer = {
      pixelsPerS: last.pixels_per_s,
      validPixels: last.pixels,
      seconds: last.seconds.total,
      cpuS: m.cpuS,
      cpuPercent: m.cpuPercent,
      maxRssMiB: m.maxRssMiB,
    };
    rmSync(out, { recursive: true, force: true });
  } else say(`peer skipped: ${peerMissing ?? "peer script absent"}`);

  const row = (label: string, r: Awaited<ReturnType<typeof batchRun>>): Cell[] => {
    const s = r.report.durationMs / 1000;
    return [
      label,
      r.report.workers,
      r.report.tiles.classified,
      s,
      r.report.tiles.classified / s,
      r.report.validPixels / s,
      r.report.validPixels / r.cpuS,
      r.maxRssMiB,
    ];
  };
  const rows: Cell[][] = [
    row("lanemap 8x8", r8w1),
    row("lanemap 8x8", r8w2),
    row("lanemap 16x16", r16w2),
    row("lanemap 32x32", r32w1),
    row("lanemap 32x32", r32w2),
  ];
  if (peer)
    rows.push([
      "peer 8x8 (rasterio+sklearn)",
      1,
      64,
      peer.seconds,
      64 / peer.seconds,
      peer.pixelsPerS,
      peer.validPixels / peer.cpuS,
      peer.maxRssMiB,
    ]);
  const speedup2 =
    r32w2.report.validPixels / r32w2.report.durationMs / (r32w1.report.validPixels / r32w1.report.durationMs);
  const perCore = r8w1.report.validPixels / r8w1.cpuS / (peer ? peer.validPixels / peer.cpuS : NaN);
  const perCoreWall = r8w1.report.validPixels / (r8w1.report.durationMs / 1000) / (peer?.pixelsPerS ?? NaN);
  const incrementalFactor = r32w2.report.durationMs / r32inc.report.durationMs;
  printTable({
    title: "Batch lane throughput (end to end in-run time: catalogue, classify, DuckDB, exports, publish)",
    columns: ["run", "workers", "tiles", "s", "tiles/s", "valid px/s", "valid px/CPU-s", "peak RSS MiB"],
    rows,
    notes: [
      `2 workers vs 1 (32x32): ${speedup2.toFixed(2)}x. lanemap 1 worker vs peer, 8x8: ${perCoreWall.toFixed(1)}x px/s (wall), ${perCore.toFixed(1)}x px per CPU-second.`,
      "The machine has 2 cores shared with other sessions; figures are noisy.",
    ],
  });
  printTable({
    title: "Peak RSS of `lanemap batch run` as the archive grows (2 workers)",
    columns: ["archive", "tiles", "peak RSS MiB"],
    rows: [
      ["8x8", r8w2.report.tiles.total, r8w2.maxRssMiB],
      ["16x16", r16w2.report.tiles.total, r16w2.maxRssMiB],
      ["32x32", r32w2.report.tiles.total, r32w2.maxRssMiB],
    ],
  });
  printTable({
    title: "Incremental rebuild, 32x32",
    columns: ["run", "classified", "reused", "in-run s", "process wall s"],
    rows: [
      [
        "full (--full)",
        r32w2.report.tiles.classified,
        r32w2.report.tiles.reused,
        r32w2.report.durationMs / 1000,
        r32w2.wallMs / 1000,
      ],
      [
        "nothing changed",
        r32inc.report.tiles.classified,
        r32inc.report.tiles.reused,
        r32inc.report.durationMs / 1000,
        r32inc.wallMs / 1000,
      ],
    ],
    notes: [
      `nothing-changed is ${incrementalFactor.toFixed(0)}x faster in-run (${(r32w2.wallMs / r32inc.wallMs).toFixed(1)}x counting process start-up).`,
    ],
  });
  printTable({
    title: "DuckDB view figures (32x32 view)",
    columns: ["figure", "value"],
    rows: [
      ["tiles rows/s, data chunks -> appender", appends.chunkRowsPerS],
      ["tiles rows/s, value by value", appends.valueRowsPerS],
      ["tiles+raster BLOBs/s, StagingViewStore.appendFinished (32 per commit)", appends.finishedTilesPerS],
      ["class raster BLOB, mean bytes (256² tile)", view.blobs.avgBytes],
      ["class raster BLOB, min / max bytes", `${view.blobs.minBytes} / ${view.blobs.maxBytes}`],
      ["point lookup by tile_id, median ms", view.pointLookupMs.median],
      ["point lookup by tile_id, p95 ms", view.pointLookupMs.p95],
      ["point lookup + decodeClassRaster, median ms", view.pointLookupMs.withDecodeMedian],
      ["view.duckdb MiB", (view.files[BATCH_VIEW_FILES.duckdb]?.bytes ?? 0) / 2 ** 20],
    ],
  });
  printTable({
    title: `Scheduler: tiles processed before the 10x10 block around tile (${focus.col}, ${focus.row}) of the 32x32 grid is complete`,
    columns: ["order", "tiles until AOI complete"],
    rows: exp.results.map((r) => [r.name, r.aoiComplete]),
    notes: [`figure: ${FIGURE}`],
  });

  writeResults("batch", {
    runs: { r8w1, r8w2, r16w2, r32w1, r32w2, r32inc },
    peer,
    ratios: {
      twoWorkers: speedup2,
      vsPeerPerCpuSecond: perCore,
      vsPeerWall: perCoreWall,
      incremental: incrementalFactor,
    },
    appends,
    view,
    scheduler: {
      focus,
      block: {
        colStart: exp.block.colStart,
        colEnd: exp.block.colEnd,
        rowStart: exp.block.rowStart,
        rowEnd: exp.block.rowEnd,
      },
      results: exp.results.map((r) => ({ order: r.name, aoiComplete: r.aoiComplete })),
    },
  });
}

await main();
