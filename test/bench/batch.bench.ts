/**
 * `npm run bench:batch [-- --rounds 5 --grid 16 --rss-grid 32]`: the batch lane on blocks of a
 * 32 x 32 archive of 256² x 6-band tiles, against the peer (rasterio + scikit-learn, ../shared/peer).
 *
 * Each round (default 5) runs both sides in fresh processes, the side that goes first alternating
 * by round (rounds.ts); ratios are paired within a round and every figure is min / median / max:
 *
 *   - the peer and `lanemap batch run` with 1 worker on the 8 x 8 block, same tiles and training
 *     polygons: valid px/s and px per CPU-second (target ≥ 3× the peer per core);
 *   - `--grid` x `--grid` (default 16 x 16) with 1 and 2 workers, which of the two goes first also
 *     alternating (target 2 workers ≥ 1.8× one), then an incremental rebuild with nothing changed
 *     (target ≥ 20× faster than full);
 *   - peak RSS of each run, and one 2-worker run on `--rss-grid` x `--rss-grid` (default the whole
 *     32 x 32, minutes; 0 skips it) to show memory stays flat as the archive grows (≤ 512 MiB);
 *   - DuckDB figures in this process after each round: data-chunk vs value-by-value appends,
 *     class-raster BLOB sizes, point lookups on the round's view;
 *   - the scheduler experiment (computed, not timed): tiles processed before the 10 x 10 block around
 *     a tile of interest is complete, per ordering, and a figure of the orders
 *     (test/results/bench/scheduler-orders.png).
 *
 * The archive is generated once into test/results/bench-data/ and reused; so are the registered data
 * directories. Runs are child processes (`node infra/bin/lanemap.js ...` under /usr/bin/time -v), so RSS
 * and CPU time are the batch process's own: run `npm run build` first (a stale dist/ falls back to tsx).
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
import { parseArgs } from "node:util";
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
import { median, minMedMax, printTable, spreadOf, writeResults, type Cell, type Table } from "./harness.js";
import { digitsFor, heldIn, loadNow, paired, positiveInt, sidesOf } from "./rounds.js";

const DATA = join(projectRoot, "test", "results", "bench-data");
const SAMPLE = join(DATA, "batch-sample-32x32");
const WORK = join(DATA, "batch-work");
const FIGURE = join(projectRoot, "test", "results", "bench", "scheduler-orders.png");
/** The generated archive's side, and the block the peer and lanemap share. */
const GRID = 32;
const SMALL = 8;
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

/**
 * A data dir holding the n x n block of the archive and the model. The largest block a run needs
 * (`registered`) is registered from its tiles; a smaller one gets the same objects (a symlink) and
 * a catalogue with its block's entries only.
 */
async function ensureDataDir(n: number, registered: number, modelPath: string): Promise<string> {
  const dir = join(WORK, `dd-${n}`);
  const catalogue = join(dir, "archive", "catalogue");
  if (n === registered) {
    const have = existsSync(catalogue) ? readdirSync(catalogue).filter((f) => f.endsWith(".json")).length : 0;
    if (have !== n * n) {
      // A block that was a symlinked subset of a larger one before is registered afresh.
      rmSync(dir, { recursive: true, force: true });
      say(`registering ${n * n} tiles into ${dir} ...`);
      const tiles = n === GRID ? join(SAMPLE, "tiles") : subsetFolder(n).dir;
      await addArchiveFolder(new ArchiveStore(dir), tiles, { logger: log, maxPixels: 1e8 });
    }
  } else {
    const objects = join(WORK, `dd-${registered}`, "archive", "objects");
    // Rebuilt whenever the block it borrows objects from may have changed.
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(catalogue, { recursive: true });
    symlinkSync(objects, join(dir, "archive", "objects"));
    for (const f of readdirSync(join(WORK, `dd-${registered}`, "archive", "catalogue"))) {
      const p = parseCellKey(f.split("-")[0] ?? "");
      if (p && p.col < n && p.row < n)
        cpSync(join(WORK, `dd-${registered}`, "archive", "catalogue", f), join(catalogue, f));
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
async function appendRates(round: number): Promise<{
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
  const chunks = () =>
    rate("chunks", (app) => {
      const types = Array.from({ length: app.columnCount }, (_, i) => app.columnType(i));
      for (let s = 0; s < N; s += 2048) {
        const part = rows.slice(s, s + 2048);
        const chunk = DuckDBDataChunk.create(types, part.length);
        chunk.setRows(part);
        app.appendDataChunk(chunk);
      }
    });
  const values = () =>
    rate("values", (app) => {
      const types = Array.from({ length: app.columnCount }, (_, i) => app.columnType(i));
      for (const r of rows) {
        r.forEach((v, i) => app.appendValue(v, types[i]));
        app.endRow();
      }
    });
  // The side that goes first alternates by round, as everywhere in the bench.
  let chunkRowsPerS: number;
  let valueRowsPerS: number;
  if (round % 2 === 0) {
    chunkRowsPerS = await chunks();
    valueRowsPerS = await values();
  } else {
    valueRowsPerS = await values();
    chunkRowsPerS = await chunks();
  }
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

/** The peer (rasterio + scikit-learn) on a block's tiles and polygons, in a fresh process. */
async function peerRun(sub: { dir: string; training: string }): Promise<PeerFigures> {
  const out = join(WORK, "peer-out");
  rmSync(out, { recursive: true, force: true });
  const m = await timed("/usr/bin/python3", [
    peerScript()!,
    "--tiles",
    sub.dir,
    "--train",
    sub.training,
    "--red",
    "3",
    "--nir",
    "4",
    "--out",
    out,
  ]);
  rmSync(out, { recursive: true, force: true });
  const last = JSON.parse(m.stdout.trim().split("\n").at(-1)!) as {
    pixels: number;
    pixels_per_s: number;
    seconds: { total: number };
  };
  return {
    pixelsPerS: last.pixels_per_s,
    validPixels: last.pixels,
    seconds: last.seconds.total,
    cpuS: m.cpuS,
    cpuPercent: m.cpuPercent,
    maxRssMiB: m.maxRssMiB,
    wallMs: m.wallMs,
  };
}

interface PeerFigures {
  pixelsPerS: number;
  validPixels: number;
  /** The peer's own total, as it reports it. */
  seconds: number;
  cpuS: number;
  cpuPercent: number;
  maxRssMiB: number;
  wallMs: number;
}

type Run = Awaited<ReturnType<typeof batchRun>>;

interface Round {
  load: number;
  order: string[];
  peer: PeerFigures | null;
  w1Small: Run;
  w1: Run;
  w2: Run;
  incremental: Run;
  appends: Awaited<ReturnType<typeof appendRates>>;
  view: Awaited<ReturnType<typeof viewFigures>>;
}

/** Valid pixels per second of the run's own duration (catalogue, classify, DuckDB, exports, publish). */
const pxPerS = (r: Run) => r.report.validPixels / (r.report.durationMs / 1000);
/** Valid pixels per CPU-second of the whole process (start-up included). */
const pxPerCpuS = (r: Run) => r.report.validPixels / r.cpuS;
const tilesPerS = (r: Run) => r.report.tiles.classified / (r.report.durationMs / 1000);

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      "figure-only": { type: "boolean" },
      rounds: { type: "string" },
      grid: { type: "string" },
      "rss-grid": { type: "string" },
    },
  });
  const rounds = positiveInt("--rounds", values.rounds, 5);
  const grid = positiveInt("--grid", values.grid, 16);
  const rssGrid = values["rss-grid"] === "0" ? 0 : positiveInt("--rss-grid", values["rss-grid"], GRID);
  if (grid < SMALL || grid > GRID || (rssGrid !== 0 && (rssGrid < grid || rssGrid > GRID)))
    throw new Error(`--grid must be in ${SMALL}..${GRID} and --rss-grid in --grid..${GRID} (or 0)`);

  const focus = { col: 21, row: 12 };
  const exp = schedulerExperiment(focus);
  drawFigure(exp, focus);
  say(`scheduler figure: ${FIGURE}`);
  if (values["figure-only"]) return;

  await ensureSample();
  const subSmall = subsetFolder(SMALL);
  const modelPath = await ensureModel(subSmall);
  const registered = Math.max(grid, rssGrid);
  const ddBig = await ensureDataDir(registered, registered, modelPath);
  const ddGrid = grid === registered ? ddBig : await ensureDataDir(grid, registered, modelPath);
  const ddSmall = await ensureDataDir(SMALL, registered, modelPath);

  const peerMissing = missing({ shared: true, peer: true }) ?? (peerScript() ? null : "peer script absent");
  if (peerMissing) say(`peer skipped: ${peerMissing}`);

  // Peak RSS on the largest archive: one run (minutes), to show memory stays flat as tiles grow.
  // It goes first, so an interrupted bench still has it with the rounds it completed.
  let big: Run | null = null;
  if (rssGrid > grid) {
    say(`${rssGrid}x${rssGrid} run, 2 workers, for peak RSS (one run) ...`);
    big = await batchRun(ddBig, 2, ["--full"]);
  }

  const done: Round[] = [];
  const write = (): Table[] => {
    const tables = report(done, { grid, big, rssGrid, rounds }, exp, focus);
    writeResults(
      "batch",
      {
        rounds: done.length,
        grid,
        rssGrid,
        perRound: done,
        big,
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
      },
      tables,
    );
    return tables;
  };
  for (let r = 0; r < rounds; r++) {
    const load = loadNow();
    const order = sidesOf(r, ["peer", "lanemap"] as const);
    say(`round ${r + 1}/${rounds}: ${order.join(" then ")} (load ${load})`);
    let peer: PeerFigures | null = null;
    let lane: Pick<Round, "w1Small" | "w1" | "w2" | "incremental"> | undefined;
    for (const side of order) {
      if (side === "peer") {
        if (peerMissing) continue;
        say(`  the peer on the ${SMALL}x${SMALL} block ...`);
        peer = await peerRun(subSmall);
      } else {
        say(`  lanemap ${SMALL}x${SMALL}, 1 worker; ${grid}x${grid}, 1 and 2 workers; nothing changed ...`);
        const w1Small = await batchRun(ddSmall, 1, ["--full"]);
        // 1 and 2 workers alternate too, so a drift in load does not tilt the scaling ratio.
        let w1: Run;
        let w2: Run;
        if (grid === SMALL) {
          // The same run as the peer's counterpart: not repeated.
          w1 = w1Small;
          w2 = await batchRun(ddGrid, 2, ["--full"]);
        } else if (r % 2 === 0) {
          w1 = await batchRun(ddGrid, 1, ["--full"]);
          w2 = await batchRun(ddGrid, 2, ["--full"]);
        } else {
          w2 = await batchRun(ddGrid, 2, ["--full"]);
          w1 = await batchRun(ddGrid, 1, ["--full"]);
        }
        const incremental = await batchRun(ddGrid, 2, ["--keep-views"]);
        lane = { w1Small, w1, w2, incremental };
      }
    }
    // Not a side of the comparison: in-process DuckDB figures, after both sides of the round.
    const appends = await appendRates(r);
    const view = await viewFigures(ddGrid);
    done.push({ load, order: [...order], peer, ...lane!, appends, view });
    // Written after every round (the tables say how many rounds they hold), printed at the end.
    if (r < rounds - 1) write();
  }
  for (const t of write()) printTable(t);
}

function report(
  done: readonly Round[],
  o: { grid: number; big: Run | null; rssGrid: number; rounds: number },
  exp: ReturnType<typeof schedulerExperiment>,
  focus: { col: number; row: number },
): Table[] {
  const n = done.length;
  const mmm = (xs: readonly number[], suffix = "") => minMedMax(xs, digitsFor(xs), suffix);
  const ratio = (xs: readonly number[]) => minMedMax(xs, xs.every((x) => x >= 10) ? 1 : 2, "×");
  const of = <T>(f: (r: Round) => T) => done.map(f);
  const G = `${o.grid}x${o.grid}`;
  const S = `${SMALL}x${SMALL}`;
  const loadNote = `1-minute load average when each round started: ${minMedMax(
    of((r) => r.load),
    2,
  )} (min / median / max), on 2 cores shared with other sessions.`;
  const tables: Table[] = [];

  // lanemap against the peer, on the same tiles and polygons.
  const peers = done.every((r) => r.peer !== null) ? of((r) => r.peer!) : null;
  const lane = of((r) => r.w1Small);
  const vsWall = peers
    ? paired(
        lane.map(pxPerS),
        peers.map((p) => p.pixelsPerS),
      )
    : [];
  const vsCpu = peers
    ? paired(
        lane.map(pxPerCpuS),
        peers.map((p) => p.validPixels / p.cpuS),
      )
    : [];
  const peerRows: Cell[][] = [
    [
      "lanemap `batch run`, 1 worker",
      mmm(lane.map((r) => r.report.durationMs / 1000)),
      mmm(lane.map(pxPerS)),
      mmm(lane.map(pxPerCpuS)),
      mmm(lane.map((r) => r.maxRssMiB)),
      spreadOf(lane.map(pxPerS)),
    ],
  ];
  if (peers)
    peerRows.push(
      [
        "peer (rasterio + scikit-learn)",
        mmm(peers.map((p) => p.seconds)),
        mmm(peers.map((p) => p.pixelsPerS)),
        mmm(peers.map((p) => p.validPixels / p.cpuS)),
        mmm(peers.map((p) => p.maxRssMiB)),
        spreadOf(peers.map((p) => p.pixelsPerS)),
      ],
      ["lanemap ÷ peer (paired)", null, ratio(vsWall), ratio(vsCpu), null, null],
    );
  tables.push({
    title: `Batch lane against the peer: the ${S} block (${SMALL * SMALL} tiles of 256² x 6 bands), one process each, ${n} interleaved rounds (min / median / max)`,
    columns: ["side", "s", "valid px/s", "valid px per CPU-second", "peak RSS MiB", "px/s spread (max/min)"],
    rows: peerRows,
    notes: [
      peers
        ? `Target: ≥ 3× the peer per core (valid px per CPU-second, paired): ${ratio(vsCpu)} (${heldIn(vsCpu.map((x) => x >= 3))}).`
        : `The peer was skipped: ${missing({ shared: true, peer: true }) ?? "peer script absent"}.`,
      "s and px/s over each side's own reported duration (lanemap: the run report's durationMs, catalogue to publish; the peer: its own total, reading, training and classifying); px per CPU-second over the whole process (user + system from /usr/bin/time -v, start-up included), the figure other load inflates least. Each side is a fresh process per round; the side that goes first alternates by round.",
      loadNote,
    ],
  });

  // 1 and 2 workers on the larger block.
  const w1 = of((r) => r.w1);
  const w2 = of((r) => r.w2);
  const scaling = paired(w2.map(pxPerS), w1.map(pxPerS));
  const scaleRow = (label: string, runs: readonly Run[]): Cell[] => [
    label,
    mmm(runs.map((r) => r.report.durationMs / 1000)),
    mmm(runs.map(tilesPerS)),
    mmm(runs.map(pxPerS)),
    mmm(runs.map(pxPerCpuS)),
    spreadOf(runs.map(pxPerS)),
  ];
  tables.push({
    title: `Batch lane throughput, ${G} (${o.grid * o.grid} tiles), 1 and 2 workers, ${n} rounds (min / median / max)`,
    columns: ["run", "in-run s", "tiles/s", "valid px/s", "valid px per CPU-second", "px/s spread (max/min)"],
    rows: [
      scaleRow("1 worker", w1),
      scaleRow("2 workers", w2),
      [
        "2 workers ÷ 1 (paired)",
        null,
        null,
        ratio(scaling),
        ratio(paired(w2.map(pxPerCpuS), w1.map(pxPerCpuS))),
        null,
      ],
    ],
    notes: [
      `Target: 2 workers ≥ 1.8× one (valid px/s, paired): ${ratio(scaling)} (${heldIn(scaling.map((x) => x >= 1.8))}). ` +
        "In-run time: catalogue, classify, DuckDB, exports, publish; 1 and 2 workers alternate which goes first by round. Two workers can only be twice one when two cores are free.",
    ],
  });

  // Peak RSS as the archive grows.
  // Counts as text, so the table does not print them with decimals.
  const rssRows: Cell[][] = [[S, `${SMALL * SMALL}`, "1", `${n}`, mmm(lane.map((r) => r.maxRssMiB))]];
  if (o.grid !== SMALL) rssRows.push([G, `${o.grid * o.grid}`, "1", `${n}`, mmm(w1.map((r) => r.maxRssMiB))]);
  rssRows.push([G, `${o.grid * o.grid}`, "2", `${n}`, mmm(w2.map((r) => r.maxRssMiB))]);
  if (o.big)
    rssRows.push([`${o.rssGrid}x${o.rssGrid}`, `${o.rssGrid * o.rssGrid}`, "2", "1", o.big.maxRssMiB]);
  const peak = Math.max(...[...lane, ...w1, ...w2, ...(o.big ? [o.big] : [])].map((r) => r.maxRssMiB));
  tables.push({
    title: "Peak RSS of the `lanemap batch run` process as the archive grows",
    columns: ["archive", "tiles", "workers", "runs", "peak RSS MiB"],
    rows: rssRows,
    notes: [
      `Target: ≤ 512 MiB and flat as the archive grows (tiles stream through the workers): highest peak ${peak.toFixed(0)} MiB (${peak <= 512 ? "met" : "missed"}).`,
    ],
  });

  // Incremental rebuild.
  const inc = of((r) => r.incremental);
  const incInRun = paired(
    w2.map((r) => r.report.durationMs),
    inc.map((r) => r.report.durationMs),
  );
  const incWall = paired(
    w2.map((r) => r.wallMs),
    inc.map((r) => r.wallMs),
  );
  tables.push({
    title: `Incremental rebuild, ${G}, 2 workers, ${n} rounds (min / median / max)`,
    columns: ["run", "classified", "reused", "in-run s", "process wall s"],
    rows: [
      [
        "full (--full)",
        minMedMax(w2.map((r) => r.report.tiles.classified)),
        minMedMax(w2.map((r) => r.report.tiles.reused)),
        mmm(w2.map((r) => r.report.durationMs / 1000)),
        mmm(w2.map((r) => r.wallMs / 1000)),
      ],
      [
        "nothing changed",
        minMedMax(inc.map((r) => r.report.tiles.classified)),
        minMedMax(inc.map((r) => r.report.tiles.reused)),
        mmm(inc.map((r) => r.report.durationMs / 1000)),
        mmm(inc.map((r) => r.wallMs / 1000)),
      ],
      ["full ÷ nothing changed (paired)", null, null, ratio(incInRun), ratio(incWall)],
    ],
    notes: [
      `Target: nothing changed ≥ 20× faster than full, in-run: ${ratio(incInRun)} (${heldIn(incInRun.map((x) => x >= 20))}); counting process start-up: ${ratio(incWall)}.`,
    ],
  });

  // DuckDB figures.
  const ap = of((r) => r.appends);
  const vw = of((r) => r.view);
  const duck = (label: string, xs: readonly number[]): Cell[] => [label, mmm(xs), spreadOf(xs)];
  tables.push({
    title: `DuckDB view figures (${G} view), ${n} rounds (min / median / max)`,
    columns: ["figure", "min / median / max", "spread (max/min)"],
    rows: [
      duck(
        "tiles rows/s, data chunks -> appender",
        ap.map((a) => a.chunkRowsPerS),
      ),
      duck(
        "tiles rows/s, value by value",
        ap.map((a) => a.valueRowsPerS),
      ),
      [
        "data chunks ÷ value by value (paired)",
        ratio(
          paired(
            ap.map((a) => a.chunkRowsPerS),
            ap.map((a) => a.valueRowsPerS),
          ),
        ),
        null,
      ],
      duck(
        "tiles+raster BLOBs/s, StagingViewStore.appendFinished (32 per commit)",
        ap.map((a) => a.finishedTilesPerS),
      ),
      duck(
        "class raster BLOB, mean bytes (256² tile)",
        vw.map((v) => v.blobs.avgBytes),
      ),
      duck(
        "point lookup by tile_id, median ms",
        vw.map((v) => v.pointLookupMs.median),
      ),
      duck(
        "point lookup by tile_id, p95 ms",
        vw.map((v) => v.pointLookupMs.p95),
      ),
      duck(
        "point lookup + decodeClassRaster, median ms",
        vw.map((v) => v.pointLookupMs.withDecodeMedian),
      ),
      duck(
        "view.duckdb MiB",
        vw.map((v) => (v.files[BATCH_VIEW_FILES.duckdb]?.bytes ?? 0) / 2 ** 20),
      ),
    ],
    notes: [
      "In the bench process after both sides of each round: 50,000 rows appended each way (the first alternating by round), 2,000 finished tiles, 350 point lookups on the round's published view.",
    ],
  });

  const around = exp.results.find((r) => r.name === "hilbert-around")?.aoiComplete ?? NaN;
  tables.push({
    title: `Scheduler: tiles processed before the 10x10 block around tile (${focus.col}, ${focus.row}) of the ${GRID}x${GRID} grid is complete`,
    columns: ["order", "tiles until AOI complete"],
    rows: exp.results.map((r) => [r.name, r.aoiComplete]),
    notes: [
      `Target: ≤ 120 for hilbert-around: ${around} (${around <= 120 ? "met" : "missed"}); Euclidean distance cannot beat ~121 (the block's corners). Computed from the orders, not timed. Figure (one panel per order, tiles coloured by processing rank, the first 100 highlighted): test/results/bench/scheduler-orders.png.`,
    ],
  });
  if (n < o.rounds)
    for (const t of tables)
      t.notes = [
        ...(t.notes ?? []),
        `Partial: ${n} of the ${o.rounds} rounds asked for had completed when these tables were written.`,
      ];
  return tables;
}

await main();
