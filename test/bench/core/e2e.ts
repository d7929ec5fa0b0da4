/**
 * Whole jobs — train from labelled polygons, then classify every pixel of every tile — on two
 * cases: the Chiapas Landsat 7 scene with its 30 polygons (../shared/data), and generated tiles
 * (default 2×2 tiles of 1024² × 6 bands; BENCH_E2E_GRID and BENCH_E2E_TILE change them). Sides, interleaved round by round (ROUNDS rounds):
 * - lanemap in this process: decode, train, classify; CPU time (user + system) and wall, split into
 *   train and classify. Node's and tsx's start-up is not in it: it is measured on its own (`lanemap
 *   --help` in a fresh process) and reported in its own row, since the CLI pays it once per command.
 * - the PyData peer (rasterio + scikit-learn, n_jobs = 1), a fresh process per round;
 * - ORFEO Toolbox with 2 threads: `otbcli_TrainImagesClassifier -classifier knn` (k = 5, every
 *   labelled pixel, no validation split) and `otbcli_ImageClassifier` per tile (Debian otb-bin); its
 *   features are the bands alone (no NDVI, no z-scoring), so its classes are not compared.
 * CPU and wall seconds of child processes come from GNU time (/usr/bin/time). An absent side is
 * skipped with a note.
 *
 * Run alone: node --import tsx test/bench/core/e2e.ts
 */
import { spawnSync } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { pathToFileURL } from "node:url";
import { createClassifier, createFeatureSpec, decodeGeoTiff, trainModel } from "../../../shared/index.js";
import { generateArchive } from "../../../sample/index.js";
import { hasPeerPython, peerScript, projectRoot, sharedData } from "../../helpers/env.js";
import { minMedMax, printTable, writeResults, type Cell, type Table } from "../harness.js";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);

interface Times {
  cpuS: number;
  wallS: number;
  /** The command's standard output. */
  stdout?: string;
}

/** Runs a command under GNU time; its CPU (user + system, children included) and wall seconds. */
function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Times {
  const out = join(tmpdir(), `lanemap-e2e-time-${process.pid}`);
  const r = spawnSync("/usr/bin/time", ["-o", out, "-f", "%e %U %S", cmd, ...args], {
    encoding: "utf8",
    env,
  });
  if (r.status !== 0)
    throw new Error(`${cmd} failed: ${(r.stderr ?? "").trim().split("\n").slice(-3).join(" ")}`);
  const lines = spawnSync("cat", [out], { encoding: "utf8" }).stdout.trim().split("\n");
  const [wall = NaN, user = NaN, sys = NaN] = (lines.pop() ?? "").split(" ").map(Number);
  return { cpuS: user + sys, wallS: wall, stdout: r.stdout };
}

function has(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;
}

interface Case {
  name: string;
  tilesDir: string;
  training: string;
  pixels: number;
}

/** lanemap's whole job in this process. */
async function lanemapJob(c: Case): Promise<{ train: Times; classify: Times; pixels: number }> {
  const names = (await readdir(c.tilesDir)).filter((n) => /\.(tif|gtif)$/.test(n)).sort();
  const cpu = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  };
  const c0 = cpu();
  const w0 = performance.now();
  const rasters = [];
  for (const n of names)
    rasters.push(await decodeGeoTiff(new Uint8Array(await readFile(join(c.tilesDir, n)))));
  const model = trainModel(
    rasters,
    { kind: "geojson", geojson: JSON.parse(await readFile(c.training, "utf8")) as unknown },
    {
      features: createFeatureSpec(rasters[0]?.bands.length ?? 0, { red: 3, nir: 4 }),
      source: basename(c.training),
      tileNames: names,
    },
  );
  rasters.length = 0;
  const classifier = createClassifier(model);
  const c1 = cpu();
  const w1 = performance.now();
  let pixels = 0;
  for (const n of names) {
    const raster = await decodeGeoTiff(new Uint8Array(await readFile(join(c.tilesDir, n))));
    pixels += classifier.classify(raster).validPixels;
  }
  return {
    train: { cpuS: c1 - c0, wallS: (w1 - w0) / 1000 },
    classify: { cpuS: cpu() - c1, wallS: (performance.now() - w1) / 1000 },
    pixels,
  };
}

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

/** OTB's whole job with 2 threads: train on every tile, then classify each. */
async function otbJob(c: Case, work: string): Promise<{ train: Times; classify: Times }> {
  const env = { ...process.env, ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS: "2", OTB_LOGGER_LEVEL: "WARNING" };
  const tiles = (await readdir(c.tilesDir))
    .filter((n) => /\.(tif|gtif)$/.test(n))
    .sort()
    .map((n) => join(c.tilesDir, n));
  const vd = await codedTraining(c.training, join(work, "coded.geojson"));
  const model = join(work, "otb-model.txt");
  const train = timed(
    "otbcli_TrainImagesClassifier",
    [
      "-io.il",
      ...tiles,
      "-io.vd",
      ...tiles.map(() => vd),
      "-sample.vfn",
      "code",
      "-sample.mt",
      "-1",
      "-sample.mv",
      "-1",
      "-sample.vtr",
      "0",
      "-classifier",
      "knn",
      "-classifier.knn.k",
      "5",
      "-io.out",
      model,
    ],
    env,
  );
  const classify: Times = { cpuS: 0, wallS: 0 };
  for (const t of tiles) {
    const r = timed(
      "otbcli_ImageClassifier",
      ["-in", t, "-model", model, "-out", join(work, "otb-classes.tif"), "uint8"],
      env,
    );
    classify.cpuS += r.cpuS;
    classify.wallS += r.wallS;
  }
  return { train, classify };
}

/**
 * The peer's whole job in a fresh process, one thread; with its own wall-clock stage timers
 * (`seconds.train`, `seconds.total`, from its last output line).
 */
function peerJob(c: Case, work: string): Times & { trainS: number; totalS: number } {
  const t = timed(
    "/usr/bin/python3",
    [
      peerScript() as string,
      "--tiles",
      c.tilesDir,
      "--train",
      c.training,
      "--red",
      "3",
      "--nir",
      "4",
      "--out",
      join(work, "peer-out"),
    ],
    { ...process.env, OMP_NUM_THREADS: "1", OPENBLAS_NUM_THREADS: "1" },
  );
  const last = JSON.parse(t.stdout?.trim().split("\n").pop() ?? "{}") as { seconds?: Record<string, number> };
  return {
    cpuS: t.cpuS,
    wallS: t.wallS,
    trainS: last.seconds?.["train"] ?? NaN,
    totalS: last.seconds?.["total"] ?? NaN,
  };
}

export async function runE2eBench(options: { grid?: number; tileSize?: number } = {}): Promise<{
  table: Table;
  results: unknown;
}> {
  const grid = options.grid ?? Number(process.env.BENCH_E2E_GRID ?? 2);
  const tileSize = options.tileSize ?? Number(process.env.BENCH_E2E_TILE ?? 1024);
  const dir = await mkdtemp(join(tmpdir(), "lanemap-bench-e2e-"));
  try {
    const cases: Case[] = [];
    const scene = sharedData("chiapas-l7-labels", "LE70220491999322EDC01_stack.gtif");
    const labels = sharedData("chiapas-l7-labels", "training_data.geojson");
    if (scene && labels) {
      const tilesDir = join(dir, "chiapas");
      await mkdir(tilesDir);
      // Named .tif: the peer lists *.tif only.
      await symlink(scene, join(tilesDir, "LE70220491999322EDC01_stack.tif"));
      cases.push({ name: "Chiapas L7 scene (250² × 6)", tilesDir, training: labels, pixels: 0 });
    }
    const gen = join(dir, "generated");
    await generateArchive({ out: gen, grid: { width: grid, height: grid }, tileSize, seed: 1 });
    cases.push({
      name: `generated ${grid}×${grid} tiles of ${tileSize}² × 6`,
      tilesDir: join(gen, "tiles"),
      training: join(gen, "training.geojson"),
      pixels: 0,
    });

    const notes: string[] = [];
    const withPeer = peerScript() !== null && hasPeerPython();
    if (!withPeer)
      notes.push("The peer skipped: ../shared/peer or Debian's python3-rasterio/python3-sklearn is absent.");
    const withOtb = has("otbcli_TrainImagesClassifier") && has("otbcli_ImageClassifier");
    if (!withOtb)
      notes.push("OTB skipped: otbcli_TrainImagesClassifier is absent (apt-get install otb-bin).");

    // Node + tsx start-up, which every CLI command pays once (lanemap --help: loads the whole CLI).
    const startup: Times[] = [];
    const rows: Cell[][] = [];
    const results: Record<string, unknown>[] = [];
    for (const c of cases) {
      const work = join(dir, `work-${cases.indexOf(c)}`);
      await mkdir(work);
      const ours: { train: Times; classify: Times }[] = [];
      const peer: (Times & { trainS: number; totalS: number })[] = [];
      const otb: { train: Times; classify: Times }[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const job = await lanemapJob(c);
        c.pixels = job.pixels;
        ours.push(job);
        if (withPeer) peer.push(peerJob(c, work));
        if (withOtb) otb.push(await otbJob(c, work));
        if (cases.indexOf(c) === 0)
          startup.push(timed(process.execPath, [join(projectRoot, "infra", "bin", "lanemap.js"), "--help"]));
      }
      const cpuTotal = (xs: { train: Times; classify: Times }[]) =>
        xs.map((x) => x.train.cpuS + x.classify.cpuS);
      const wallTotal = (xs: { train: Times; classify: Times }[]) =>
        xs.map((x) => x.train.wallS + x.classify.wallS);
      const oursCpu = cpuTotal(ours);
      const row = (
        side: string,
        train: number[],
        classify: number[],
        cpu: number[],
        wall: number[],
        threads: string,
      ): Cell[] => [
        c.name,
        side,
        threads,
        train.length ? minMedMax(train, 2) : null,
        classify.length ? minMedMax(classify, 2) : null,
        cpu.length ? minMedMax(cpu, 2) : null,
        wall.length ? minMedMax(wall, 2) : null,
        cpu.length
          ? minMedMax(
              cpu.map((x, i) => x / (oursCpu[i] as number)),
              2,
              "×",
            )
          : null,
      ];
      rows.push(
        row(
          "lanemap (in process)",
          ours.map((x) => x.train.cpuS),
          ours.map((x) => x.classify.cpuS),
          oursCpu,
          wallTotal(ours),
          "1",
        ),
      );
      if (withPeer)
        rows.push(
          row(
            "peer (rasterio + sklearn)",
            peer.map((x) => x.trainS),
            peer.map((x) => x.totalS - x.trainS),
            peer.map((x) => x.cpuS),
            peer.map((x) => x.wallS),
            "1",
          ),
        );
      if (withOtb)
        rows.push(
          row(
            "OTB knn",
            otb.map((x) => x.train.cpuS),
            otb.map((x) => x.classify.cpuS),
            cpuTotal(otb),
            wallTotal(otb),
            "2",
          ),
        );
      results.push({ case: c.name, pixels: c.pixels, lanemap: ours, peer, otb });
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
      ]);
    const table: Table = {
      title: `Whole jobs (train + classify), seconds, min / median / max of ${ROUNDS} interleaved rounds`,
      columns: [
        "case",
        "side",
        "threads",
        "train CPU s",
        "classify CPU s",
        "total CPU s",
        "total wall s",
        "CPU ÷ lanemap's",
      ],
      rows,
      notes: [
        "CPU s = user + system of the side's process (all its threads), the figure that other load on a shared machine does not inflate; wall s is what a user waits and is inflated by that load. " +
          "lanemap's figures are in process, after the first round in a warm process; the CLI pays its start-up row once per command on top. " +
          "The peer's train and classify columns are its own in-process wall-clock stage timers (it reports no CPU split); its total CPU includes Python's start-up and imports. OTB trains on every labelled pixel (-sample.mt -1 -sample.mv -1 -sample.vtr 0) with k = 5 and classifies each tile in its own otbcli_ImageClassifier process, 2 threads (ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS).",
        ...notes,
      ],
    };
    return { table, results: { rounds: ROUNDS, startup, cases: results } };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { table, results } = await runE2eBench();
  printTable(table);
  writeResults("core-e2e", results, [table]);
}
