/**
 * Whole jobs as a user runs them: each side's own commands in fresh processes under GNU time
 * (/usr/bin/time: CPU = user + system of the process and its children, wall, peak RSS), start-up
 * included, interleaved round by round. Three cases:
 * - **Chiapas**: the Landsat 7 scene with its 30 polygons (../shared/data): train, then classify.
 * - **generated tiles**: 2×2 tiles of 1024² × 6 bands (BENCH_E2E_GRID, BENCH_E2E_TILE): train on
 *   every tile, then classify each.
 * - **archive**: 32×32 generated tiles of 256² × 6 (BENCH_E2E_ARCHIVE_GRID; the archive bench:batch
 *   uses), classified with the model each side trained on the generated tiles (trained once, before
 *   the rounds, not timed): lanemap loads it into a fresh data directory and runs the batch lane.
 * Sides:
 * - lanemap, its CLI from dist/ (rebuilt first, so no run falls back to tsx): `lanemap train` +
 *   one `lanemap classify` per tile; for the archive `lanemap archive add` + `lanemap batch run
 *   --workers 2`. Each round starts with an empty PROJ answer cache (XDG_CACHE_HOME, see
 *   shared/crs/proj-memo.ts) and an empty code cache of the file commands' bundles (the same
 *   folder, see infra/bin/lanemap.js), so its first job pays PROJ's start-up and compiles the
 *   bundles without a cache as the first job on a machine
 *   (or on tiles it has not seen) does; on Chiapas and the generated tiles the same job then runs
 *   again with PROJ's answers cached (a second row: a job on tiles the machine has seen), and the
 *   other sides' ratios are paired with that row.
 * - ORFEO Toolbox with 2 threads (ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=2, Debian otb-bin):
 *   `otbcli_TrainImagesClassifier -classifier knn` (k = 5, every labelled pixel — `-sample.bm 0`,
 *   or OTB bounds every class to the smallest one's count — no validation split) + `otbcli_ImageClassifier` per tile; for the archive one `otbcli_ImageClassifier` over a
 *   VRT mosaic of the tiles (gdalbuildvrt, timed with it): one process instead of 1,024, each of
 *   which would pay OTB's start-up, so the fairer form to OTB. Its features are the bands alone (no
 *   NDVI, no z-scoring), so its classes are not compared.
 * - the PyData peer (rasterio + scikit-learn, one thread) on Chiapas; on the generated tiles only
 *   with BENCH_E2E_PEER_ALL=1 (its classification runs at some 25–40k px/s here, so 4 Mpx take
 *   about two minutes a round; the table's note gives the rate of the run); never on the archive.
 * An absent side is skipped with a note. BENCH_ROUNDS rounds (default 5), BENCH_E2E_ARCHIVE_ROUNDS
 * for the archive (default 3: a round takes several minutes on this machine), BENCH_E2E_CASES
 * (chiapas,tiles,archive) to run fewer cases: such a run's results go to core-e2e-<cases>.json
 * (core.bench.ts), never over the full run's core-e2e.json that the README's block is made from.
 *
 * Run alone: node --import tsx test/bench/core/e2e.ts
 */
import { spawnSync } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { generateArchive } from "../../../sample/index.js";
import { hasPeerPython, peerScript, projectRoot, sharedData } from "../../helpers/env.js";
import { minMedMax, printTable, writeResults, type Cell, type Table } from "../harness.js";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const ARCHIVE_ROUNDS = Number(process.env.BENCH_E2E_ARCHIVE_ROUNDS ?? 3);
const LANEMAP = join(projectRoot, "infra", "bin", "lanemap.js");

interface Times {
  cpuS: number;
  wallS: number;
  /** Peak resident set size of the largest process, MiB. */
  maxRssMiB: number;
}

const zero = (): Times => ({ cpuS: 0, wallS: 0, maxRssMiB: 0 });
const add = (a: Times, b: Times): Times => ({
  cpuS: a.cpuS + b.cpuS,
  wallS: a.wallS + b.wallS,
  maxRssMiB: Math.max(a.maxRssMiB, b.maxRssMiB),
});

/** Runs a command under GNU time; its CPU (user + system, children included), wall and peak RSS. */
function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv): Times & { stdout: string } {
  const out = join(tmpdir(), `lanemap-e2e-time-${process.pid}`);
  const r = spawnSync("/usr/bin/time", ["-o", out, "-f", "%e %U %S %M", cmd, ...args], {
    encoding: "utf8",
    env,
    maxBuffer: 64 * 2 ** 20,
  });
  if (r.status !== 0)
    throw new Error(
      `${cmd} ${args.join(" ")} failed: ${(r.stderr ?? "").trim().split("\n").slice(-3).join(" ")}`,
    );
  const lines = spawnSync("cat", [out], { encoding: "utf8" }).stdout.trim().split("\n");
  const [wall = NaN, user = NaN, sys = NaN, rssKiB = NaN] = (lines.pop() ?? "").split(" ").map(Number);
  return { cpuS: user + sys, wallS: wall, maxRssMiB: rssKiB / 1024, stdout: r.stdout };
}

function has(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;
}

/** Two steps of a whole job: train (or load the archive), then classify. */
interface Job {
  first: Times;
  second: Times;
  /** 1-minute load average when the round's side started. */
  load1: number;
  /** The whole job's process when the steps are stage timers inside one process (the peer). */
  whole?: Times;
  /** The peer's classification rate, pixels per second of its own predict timer. */
  predictPxPerS?: number;
}

interface Case {
  key: "chiapas" | "tiles" | "archive";
  name: string;
  tilesDir: string;
  /** Training polygons (the tiles' own, or for the archive the generated tiles' case). */
  training: string;
  tiles: string[];
}

async function tilesOf(dir: string): Promise<string[]> {
  return (await readdir(dir))
    .filter((n) => /\.(tif|gtif)$/.test(n))
    .sort()
    .map((n) => join(dir, n));
}

/** The environment of a lanemap round: no NATS, files storage, empty PROJ answer and code caches. */
function lanemapEnv(work: string, round: number): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, XDG_CACHE_HOME: join(work, `xdg-${round}`) };
  delete env["NATS_URL"];
  delete env["LANEMAP_STORAGE"];
  delete env["LANEMAP_BATCH_EXECUTOR"];
  return env;
}

/** The arguments `lanemap train` and the peer share (the peer's CLI mirrors lanemap's). */
function jobArgs(c: Case, out: string): string[] {
  return ["--tiles", c.tilesDir, "--train", c.training, "--red", "3", "--nir", "4", "--out", out];
}

function lanemapTrain(c: Case, model: string, env: NodeJS.ProcessEnv): Times {
  return timed(process.execPath, [LANEMAP, "train", ...jobArgs(c, model)], env);
}

/** `lanemap train` + one `lanemap classify` per tile. */
function lanemapJob(c: Case, work: string, round: number): Job {
  const env = lanemapEnv(work, round);
  const load1 = loadavg()[0] ?? NaN;
  const model = join(work, "lanemap-model.json");
  const first = lanemapTrain(c, model, env);
  let second = zero();
  for (const t of c.tiles)
    second = add(
      second,
      timed(
        process.execPath,
        [LANEMAP, "classify", t, "--model", model, "--out", join(work, "lanemap-classes.tif")],
        env,
      ),
    );
  return { first, second, load1 };
}

/** `lanemap archive add` into a fresh data directory + `lanemap batch run --workers 2`. */
function lanemapArchiveJob(c: Case, work: string, round: number, model: string): Job {
  const env = lanemapEnv(work, round);
  const load1 = loadavg()[0] ?? NaN;
  const data = join(work, `data-${round}`);
  const first = timed(process.execPath, [LANEMAP, "archive", "add", c.tilesDir, "--data-dir", data], env);
  const second = timed(
    process.execPath,
    [LANEMAP, "batch", "run", "--data-dir", data, "--workers", "2", "--model", model],
    env,
  );
  return { first, second, load1 };
}

const otbEnv = (): NodeJS.ProcessEnv => ({
  ...process.env,
  ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS: "2",
  OTB_LOGGER_LEVEL: "WARNING",
});

/** The training GeoJSON with an integer `code` per class (sorted names from 1): OTB needs integers. */
async function codedTraining(training: string, out: string): Promise<string> {
  const g = JSON.parse(await readFile(training, "utf8")) as {
    features: { properties: Record<string, unknown> }[];
  };
  const names = [...new Set(g.features.map((f) => String(f.properties["class"])))].sort();
  for (const f of g.features) f.properties["code"] = names.indexOf(String(f.properties["class"])) + 1;
  await writeFile(out, JSON.stringify(g));
  return out;
}

function otbTrain(c: Case, vd: string, model: string): Times {
  return timed(
    "otbcli_TrainImagesClassifier",
    [
      "-io.il",
      ...c.tiles,
      "-io.vd",
      ...c.tiles.map(() => vd),
      "-sample.vfn",
      "code",
      "-sample.mt",
      "-1",
      "-sample.mv",
      "-1",
      "-sample.vtr",
      "0",
      // Every labelled pixel, as lanemap and the peer train on: OTB's default (-sample.bm 1) cuts
      // each class down to the smallest class's count — on Chiapas 16 water pixels, so 80 of the 718
      // samples (a new user's check saw `rows: 80` in the model), a smaller and cheaper kNN job.
      "-sample.bm",
      "0",
      "-classifier",
      "knn",
      "-classifier.knn.k",
      "5",
      "-io.out",
      model,
    ],
    otbEnv(),
  );
}

function otbClassify(input: string, model: string, out: string): Times {
  return timed("otbcli_ImageClassifier", ["-in", input, "-model", model, "-out", out, "uint8"], otbEnv());
}

/** OTB's whole job with 2 threads: train on every tile, then classify each. */
async function otbJob(c: Case, work: string): Promise<Job> {
  const load1 = loadavg()[0] ?? NaN;
  const vd = await codedTraining(c.training, join(work, "coded.geojson"));
  const model = join(work, "otb-model.txt");
  const first = otbTrain(c, vd, model);
  let second = zero();
  for (const t of c.tiles) second = add(second, otbClassify(t, model, join(work, "otb-classes.tif")));
  return { first, second, load1 };
}

/** OTB on the archive: a VRT mosaic of the tiles, classified by one process with 2 threads. */
function otbArchiveJob(c: Case, work: string, model: string): Job {
  const load1 = loadavg()[0] ?? NaN;
  const vrt = join(work, "mosaic.vrt");
  const first = timed("gdalbuildvrt", ["-q", "-overwrite", vrt, ...c.tiles], process.env);
  const second = otbClassify(vrt, model, join(work, "otb-classes.tif"));
  return { first, second, load1 };
}

/** The peer's whole job in a fresh process, one thread, with its own wall-clock stage timers. */
function peerJob(c: Case, work: string): Job {
  const load1 = loadavg()[0] ?? NaN;
  const t = timed("/usr/bin/python3", [peerScript() as string, ...jobArgs(c, join(work, "peer-out"))], {
    ...process.env,
    OMP_NUM_THREADS: "1",
    OPENBLAS_NUM_THREADS: "1",
  });
  const last = JSON.parse(t.stdout.trim().split("\n").pop() ?? "{}") as {
    seconds?: Record<string, number>;
    pixels?: number;
  };
  const trainS = last.seconds?.["train"] ?? NaN;
  const totalS = last.seconds?.["total"] ?? NaN;
  const predictS = last.seconds?.["predict"] ?? NaN;
  // The peer reports no CPU split: its stage timers (wall, in process) stand in for the steps.
  return {
    first: { cpuS: trainS, wallS: trainS, maxRssMiB: t.maxRssMiB },
    second: { cpuS: totalS - trainS, wallS: totalS - trainS, maxRssMiB: t.maxRssMiB },
    load1,
    whole: { cpuS: t.cpuS, wallS: t.wallS, maxRssMiB: t.maxRssMiB },
    predictPxPerS: (last.pixels ?? NaN) / predictS,
  };
}

const total = (j: Job): Times => j.whole ?? add(j.first, j.second);

/** `lanemap --help` in a fresh process: what every command pays before its work. */
function startupRound(): Times {
  const env = { ...process.env };
  delete env["NATS_URL"];
  return timed(process.execPath, [LANEMAP, "--help"], env);
}

export async function runE2eBench(options: { grid?: number; tileSize?: number } = {}): Promise<{
  table: Table;
  results: unknown;
}> {
  const grid = options.grid ?? Number(process.env.BENCH_E2E_GRID ?? 2);
  const tileSize = options.tileSize ?? Number(process.env.BENCH_E2E_TILE ?? 1024);
  const archiveGrid = Number(process.env.BENCH_E2E_ARCHIVE_GRID ?? 32);
  const only = (process.env.BENCH_E2E_CASES ?? "chiapas,tiles,archive").split(",");
  // The CLI runs dist/ only while it is fresh (else tsx: seconds of compiling per command), so
  // the bench builds it first: an incremental tsc run, seconds when nothing changed.
  const build = spawnSync(process.execPath, [join(projectRoot, "infra", "bin", "build.js")], {
    stdio: "inherit",
  });
  if (build.status !== 0) throw new Error("npm run build failed: the bench times the CLI from dist/");
  const dir = await mkdtemp(join(tmpdir(), "lanemap-bench-e2e-"));
  try {
    const notes: string[] = [];
    const withPeer = peerScript() !== null && hasPeerPython();
    if (!withPeer)
      notes.push("The peer skipped: ../shared/peer or Debian's python3-rasterio/python3-sklearn is absent.");
    const withOtb = has("otbcli_TrainImagesClassifier") && has("otbcli_ImageClassifier");
    if (!withOtb)
      notes.push("OTB skipped: otbcli_TrainImagesClassifier is absent (apt-get install otb-bin).");
    const withVrt = has("gdalbuildvrt");
    const peerAll = process.env.BENCH_E2E_PEER_ALL === "1";

    const cases: Case[] = [];
    const scene = sharedData("chiapas-l7-labels", "LE70220491999322EDC01_stack.gtif");
    const labels = sharedData("chiapas-l7-labels", "training_data.geojson");
    if (scene && labels && only.includes("chiapas")) {
      const tilesDir = join(dir, "chiapas");
      await mkdir(tilesDir);
      // Named .tif: the peer lists *.tif only.
      await symlink(scene, join(tilesDir, "LE70220491999322EDC01_stack.tif"));
      cases.push({
        key: "chiapas",
        name: "Chiapas L7 scene (250² × 8)",
        tilesDir,
        training: labels,
        tiles: await tilesOf(tilesDir),
      });
    }
    // The generated tiles are also where the archive case's models come from.
    const gen = join(dir, "generated");
    if (only.includes("tiles") || only.includes("archive")) {
      await generateArchive({ out: gen, grid: { width: grid, height: grid }, tileSize, seed: 1 });
      const tilesDir = join(gen, "tiles");
      const generated: Case = {
        key: "tiles",
        name: `generated ${grid}×${grid} tiles of ${tileSize}² × 6`,
        tilesDir,
        training: join(gen, "training.geojson"),
        tiles: await tilesOf(tilesDir),
      };
      cases.push(generated);
      if (only.includes("archive")) {
        const arc = join(dir, "archive");
        await generateArchive({
          out: arc,
          grid: { width: archiveGrid, height: archiveGrid },
          tileSize: 256,
          seed: 2,
        });
        cases.push({
          key: "archive",
          name: `archive of ${archiveGrid}×${archiveGrid} tiles of 256² × 6`,
          tilesDir: join(arc, "tiles"),
          training: generated.training,
          tiles: await tilesOf(join(arc, "tiles")),
        });
      }
    }

    const rows: Cell[][] = [];
    const results: Record<string, unknown>[] = [];
    const startup: Times[] = [];
    // The archive's models: trained once on the generated tiles by each side, not timed.
    const archiveModels = {
      lanemap: join(dir, "archive-lanemap-model.json"),
      otb: join(dir, "archive-otb.txt"),
    };
    for (const c of cases) {
      if (c.key === "tiles" && !only.includes("tiles")) {
        // Only the archive asked for: its models, without timing the generated tiles' case.
        lanemapTrain(c, archiveModels.lanemap, lanemapEnv(dir, -1));
        if (withOtb)
          otbTrain(c, await codedTraining(c.training, join(dir, "coded.geojson")), archiveModels.otb);
        continue;
      }
      const work = join(dir, `work-${c.key}`);
      await mkdir(work);
      const rounds = c.key === "archive" ? ARCHIVE_ROUNDS : ROUNDS;
      const peerHere = withPeer && (c.key === "chiapas" || (c.key === "tiles" && peerAll));
      const otbHere = withOtb && (c.key !== "archive" || withVrt);
      // lanemap: the first job of a round (empty PROJ answer cache); lanemapCached: the same job again.
      const sides: Record<string, Job[]> = { lanemap: [], lanemapCached: [], otb: [], peer: [] };
      for (let round = 0; round < rounds; round++) {
        process.stderr.write(`e2e: ${c.name}, round ${round + 1} of ${rounds}\n`);
        if (c.key === "archive") {
          sides["lanemap"]!.push(lanemapArchiveJob(c, work, round, archiveModels.lanemap));
          if (otbHere) sides["otb"]!.push(otbArchiveJob(c, work, archiveModels.otb));
          await rm(join(work, `data-${round}`), { recursive: true, force: true });
        } else {
          sides["lanemap"]!.push(lanemapJob(c, work, round));
          sides["lanemapCached"]!.push(lanemapJob(c, work, round));
          if (peerHere) sides["peer"]!.push(peerJob(c, work));
          if (otbHere) sides["otb"]!.push(await otbJob(c, work));
          if (c.key === "chiapas") startup.push(startupRound());
        }
      }
      if (c.key === "tiles" && only.includes("archive")) {
        // The last round's models are the archive's.
        await writeFile(archiveModels.lanemap, await readFile(join(work, "lanemap-model.json")));
        if (withOtb) await writeFile(archiveModels.otb, await readFile(join(work, "otb-model.txt")));
      }
      // The reference of the ratios: lanemap with PROJ's answers cached where it ran, else its first job.
      const reference = sides["lanemapCached"]!.length ? sides["lanemapCached"]! : sides["lanemap"]!;
      const ours = reference.map(total);
      const row = (side: string, threads: string, jobs: Job[]): Cell[] => {
        const whole = jobs.map(total);
        return [
          c.name,
          side,
          threads,
          // A side timed as one process (the peer) has no CPU split: its steps' columns stay empty
          // (its own wall-clock stage timers are in a note), not set beside whole processes' CPU.
          jobs.some((j) => j.whole)
            ? null
            : minMedMax(
                jobs.map((j) => j.first.cpuS),
                2,
              ),
          jobs.some((j) => j.whole)
            ? null
            : minMedMax(
                jobs.map((j) => j.second.cpuS),
                2,
              ),
          minMedMax(
            whole.map((t) => t.cpuS),
            2,
          ),
          minMedMax(
            whole.map((t) => t.wallS),
            2,
          ),
          minMedMax(
            whole.map((t, i) => t.cpuS / ours[i]!.cpuS),
            2,
            "×",
          ),
          minMedMax(
            whole.map((t, i) => t.wallS / ours[i]!.wallS),
            2,
            "×",
          ),
        ];
      };
      rows.push(
        row(
          c.key === "archive"
            ? "lanemap archive add + batch run --workers 2 (empty PROJ answer cache)"
            : "lanemap train + classify (CLI), first job (empty PROJ answer cache)",
          c.key === "archive" ? "2" : "1",
          sides["lanemap"]!,
        ),
      );
      if (sides["lanemapCached"]!.length)
        rows.push(row("lanemap train + classify (CLI), PROJ answers cached", "1", sides["lanemapCached"]!));
      if (sides["peer"]!.length) {
        const peer = sides["peer"]!;
        rows.push(row("peer (rasterio + sklearn)", "1", peer));
        notes.push(
          `${c.name}, the peer's own stage timers (wall, in its process, after Python's start-up and imports): train ${minMedMax(
            peer.map((j) => j.first.wallS),
            2,
          )} s, classify ${minMedMax(
            peer.map((j) => j.second.wallS),
            2,
          )} s; its prediction ${minMedMax(
            peer.map((j) => j.predictPxPerS ?? NaN),
            0,
          )} px/s.`,
        );
      }
      if (sides["otb"]!.length)
        rows.push(
          row(
            c.key === "archive" ? "OTB knn (gdalbuildvrt + one ImageClassifier)" : "OTB knn",
            "2",
            sides["otb"]!,
          ),
        );
      if (c.key === "archive" && !otbHere && withOtb)
        notes.push("OTB skipped on the archive: gdalbuildvrt is absent.");
      results.push({ case: c.name, key: c.key, rounds, tiles: c.tiles.length, ...sides });
    }
    if (startup.length)
      rows.push([
        "—",
        "lanemap CLI start-up (`lanemap --help`)",
        "1",
        null,
        null,
        minMedMax(
          startup.map((s) => s.cpuS),
          2,
        ),
        minMedMax(
          startup.map((s) => s.wallS),
          2,
        ),
        null,
        null,
      ]);
    if (withPeer && !peerAll && only.includes("tiles"))
      notes.push(
        `The peer runs on Chiapas only (BENCH_E2E_PEER_ALL=1 adds the generated tiles: at its prediction rate above, their ${((grid * tileSize) ** 2 / 1e6).toFixed(0)} Mpx add minutes a round; the archive's 67 Mpx far more).`,
      );
    const loads = results.flatMap((r) =>
      ["lanemap", "lanemapCached", "otb", "peer"].flatMap((s) =>
        ((r[s] as Job[] | undefined) ?? []).map((j) => j.load1),
      ),
    );
    const table: Table = {
      title: `Whole jobs as users run them (fresh processes, start-up included), seconds, min / median / max of ${ROUNDS} interleaved rounds (the archive: ${ARCHIVE_ROUNDS})`,
      columns: [
        "case",
        "side",
        "threads",
        "train (archive: load) CPU s",
        "classify CPU s",
        "total CPU s",
        "total wall s",
        "CPU ÷ lanemap's (cached)",
        "wall ÷ lanemap's (cached)",
      ],
      rows,
      notes: [
        "Each side runs its own commands in fresh processes under GNU time; CPU s = user + system of those processes and their children (all threads), the figure that other load on a shared machine inflates least; wall s is what a user waits. Ratios are paired round by round with lanemap's job with PROJ's answers cached (on the archive: its only job) (> 1: lanemap is ahead). " +
          "lanemap: its CLI from a freshly built dist/ (the bench runs `npm run build` first), `lanemap train` then one `lanemap classify` per tile. Each round starts with an empty PROJ answer cache and an empty code cache (XDG_CACHE_HOME), so the first job's train pays PROJ's start-up (gdal3.js: WASM, GDAL, proj.db) and each of its commands compiles its bundle without V8's code cache, as the first job on a machine does — and as any fresh process does on tiles whose footprint it has not seen, since PROJ's answers depend on the tile's corners — and its classify commands reuse the answers; the job then runs again with the answers cached, as a job on tiles the machine has seen. " +
          "OTB: `otbcli_TrainImagesClassifier -classifier knn` on every labelled pixel (-sample.mt -1 -sample.mv -1 -sample.vtr 0 -sample.bm 0: without the last, OTB bounds every class to the smallest class's count, 80 of Chiapas's 718 samples), k = 5, then one `otbcli_ImageClassifier` per tile, 2 threads (ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS). " +
          "The peer is one process (train and classify), so it has only totals here; its total CPU includes Python's start-up and imports.",
        ...(only.includes("archive")
          ? [
              `The archive: ${archiveGrid * archiveGrid} tiles classified with the model each side trained on the generated tiles (before the rounds, not timed). lanemap: \`lanemap archive add\` into a fresh data directory, then \`lanemap batch run --workers 2\` (decode, classify, the DuckDB/Parquet/Arrow view and its publication). OTB: one \`otbcli_ImageClassifier\` over a VRT mosaic of the tiles (\`gdalbuildvrt\`, in the load column), 2 threads — one process rather than one per tile, whose start-up would dominate: the fairer form to OTB. Its output is one uint8 GeoTIFF.`,
            ]
          : []),
        `Load average (1 min) when each side's round started: ${minMedMax(loads, 2)} on a machine shared with other work.`,
        ...notes,
      ],
    };
    return { table, results: { rounds: ROUNDS, archiveRounds: ARCHIVE_ROUNDS, startup, cases: results } };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The results file of this run: core-e2e (the README's block) for every case, core-e2e-<cases> for
 * fewer (BENCH_E2E_CASES), so a run of Chiapas alone never replaces the full run's rows.
 */
export function e2eResultsName(): string {
  const cases = process.env.BENCH_E2E_CASES?.split(",").filter(Boolean).sort();
  return cases === undefined || cases.join(",") === "archive,chiapas,tiles"
    ? "core-e2e"
    : `core-e2e-${cases.join("-")}`;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { table, results } = await runE2eBench();
  printTable(table);
  writeResults(e2eResultsName(), results, [table]);
}
