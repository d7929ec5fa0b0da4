/**
 * GeoTIFF decode benchmark: median milliseconds per megapixel, per encoding, for
 *  - geotiff.js as shipped (its own decoders; measured in a child process so lanemap's registered
 *    decoders cannot leak in),
 *  - geotiff.js's readRasters with lanemap's decoders registered (the codec gain alone),
 *  - lanemap's decodeGeoTiff (codecs + direct block assembly),
 *  - GDAL itself, in process: python3-gdal opening the file and reading every band of the whole
 *    image into memory (`Dataset.ReadRaster`, GDAL's block cache capped so nothing is reused), which is
 *    what lanemap's figure measures too. (Timing gdal_translate's wall clock minus a separately measured
 *    start-up moved 3.6x between runs.)
 * All sides are timed in CPU time (user + system) of their own process, so load elsewhere on a
 * shared machine does not count, interleaved round by round; min / median / max over the rounds.
 * Inputs are made from real data with GDAL: the rasterio RGB Landsat scene upsampled (cubic) to
 * 4.4 Mpx x 3 bands, and rio-tiler's 7.1 Mpx int16 COG, in each compression.
 *
 * Run alone: node --import tsx test/bench/core/decode.ts
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { fromArrayBuffer } from "geotiff";
import { decodeGeoTiff, registerFastDecoders } from "../../../shared/internal.js";
import { hasGdal, projectRoot, sharedData } from "../../helpers/env.js";
import { type Cell, type Table, median, minMedMax, printTable, writeResults } from "../harness.js";

interface Case {
  readonly dataset: string;
  readonly encoding: string;
  readonly file: string;
}

const RUNS = { rounds: 7, gdal: 7, stock: 3 } as const;

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 256 * 2 ** 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderr}`);
  return r.stdout;
}

/** Builds the benchmark inputs in `dir` from the real samples. */
function makeInputs(dir: string): Case[] {
  const rgb = sharedData("encodings", "RGB.byte.tif");
  const cog = sharedData("encodings", "cog_int16.tif");
  if (rgb === null || cog === null) throw new Error("../shared/data is absent");
  const rgbBig = join(dir, "rgb-4mpx.tif");
  run("gdal_translate", ["-q", "-r", "cubic", "-outsize", "2200", "2000", rgb, rgbBig]);
  const tiled = ["-co", "TILED=YES", "-co", "BLOCKXSIZE=256", "-co", "BLOCKYSIZE=256"];
  const encodings: [string, string[], boolean][] = [
    ["deflate", ["-co", "COMPRESS=DEFLATE", "-co", "PREDICTOR=2"], true],
    ["lzw", ["-co", "COMPRESS=LZW", "-co", "PREDICTOR=2"], true],
    ["none", [], true],
    ["packbits", ["-co", "COMPRESS=PACKBITS"], true],
    ["jpeg", ["-co", "COMPRESS=JPEG", "-co", "JPEG_QUALITY=90"], false],
  ];
  const cases: Case[] = [];
  for (const [name, co, int16Too] of encodings) {
    const a = join(dir, `rgb-${name}.tif`);
    run("gdal_translate", ["-q", ...tiled, ...co, rgbBig, a]);
    cases.push({ dataset: "Landsat RGB 2200x2000x3 u8", encoding: name, file: a });
    if (int16Too && (name === "deflate" || name === "lzw")) {
      const b = join(dir, `cog-${name}.tif`);
      run("gdal_translate", ["-q", ...tiled, ...co, cog, b]);
      cases.push({ dataset: "COG 2658x2667x1 i16", encoding: name, file: b });
    }
  }
  return cases;
}

/** One warm-up read and one timed read of the whole image with GDAL's Python bindings. */
const GDAL_READ = String.raw`
import json, sys, time
from osgeo import gdal
gdal.UseExceptions()
gdal.SetCacheMax(1 << 20)
def once():
    ds = gdal.Open(sys.argv[1])
    data = ds.ReadRaster()
    ds = None
    return len(data)
once()
w0, c0 = time.perf_counter(), time.process_time()
once()
print(json.dumps({"cpuMs": (time.process_time() - c0) * 1000, "wallMs": (time.perf_counter() - w0) * 1000}))
`;

let gdalPython: boolean | undefined;
/** True when Debian's python3 has GDAL's bindings (python3-gdal). */
function hasGdalPython(): boolean {
  gdalPython ??=
    spawnSync("/usr/bin/python3", ["-c", "from osgeo import gdal"], { stdio: "ignore" }).status === 0;
  return gdalPython;
}

/** CPU milliseconds of GDAL reading all of `file` into memory, in a fresh Python process. */
function gdalOnce(file: string): number {
  const r = spawnSync("/usr/bin/python3", ["-c", GDAL_READ, file], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`GDAL read of ${file} failed: ${r.stderr}`);
  return (JSON.parse(r.stdout.trim()) as { cpuMs: number }).cpuMs;
}

/** CPU milliseconds (user + system) of one call. */
async function cpuMs(fn: () => unknown): Promise<number> {
  const c0 = process.cpuUsage();
  await fn();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000;
}

/**
 * CPU milliseconds of several sides, run in alternation (one run of each per round) so that all of
 * them see the same load on a shared machine; one warm-up round first. A side returning a number
 * reports its own time (a child process); otherwise this process's CPU time is taken.
 */
async function interleaved(fns: readonly (() => unknown)[], rounds: number): Promise<number[][]> {
  const times: number[][] = fns.map(() => []);
  for (let round = -1; round < rounds; round++) {
    for (let i = 0; i < fns.length; i++) {
      let own: unknown;
      const ms = await cpuMs(async () => {
        own = await (fns[i] as () => unknown)();
      });
      if (round >= 0) (times[i] as number[]).push(typeof own === "number" ? own : ms);
    }
  }
  return times;
}

/** Median CPU ms of geotiff.js as shipped, decoding `file` in a fresh Node process. */
function stockMs(file: string): number {
  const code = `
    import { fromArrayBuffer } from "geotiff";
    import { readFileSync } from "node:fs";
    const b = readFileSync(${JSON.stringify(file)});
    const ab = b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
    const once = async () => { const t = await fromArrayBuffer(ab); await (await t.getImage(0)).readRasters(); };
    await once();
    const times = [];
    for (let i = 0; i < ${RUNS.stock}; i++) { const c0 = process.cpuUsage(); await once(); const c = process.cpuUsage(c0); times.push((c.user + c.system) / 1000); }
    times.sort((a, b) => a - b);
    console.log(JSON.stringify(times[times.length >> 1]));`;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", code], {
    cwd: projectRoot,
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`stock geotiff.js run failed: ${r.stderr}`);
  return Number(r.stdout.trim());
}

/** Runs the benchmark and returns its table and raw figures. */
export async function runDecodeBench(): Promise<{ table: Table; results: unknown }> {
  if (!hasGdal() || sharedData("encodings") === null)
    throw new Error("the decode benchmark needs GDAL and ../shared/data");
  const dir = mkdtempSync(join(tmpdir(), "lanemap-bench-decode-"));
  try {
    registerFastDecoders();
    const withGdal = hasGdalPython();
    const cases = makeInputs(dir);
    const rows: Cell[][] = [];
    const results: Record<string, unknown>[] = [];
    for (const c of cases) {
      const bytes = new Uint8Array(readFileSync(c.file));
      const probe = await decodeGeoTiff(bytes);
      const mpx = (probe.width * probe.height) / 1e6;
      const ab = bytes.slice().buffer;
      const [lanemap = [], withDecoders = [], gdal = []] = await interleaved(
        [
          async () => {
            await decodeGeoTiff(bytes);
          },
          async () => {
            await (await (await fromArrayBuffer(ab)).getImage(0)).readRasters();
          },
          ...(withGdal ? [() => gdalOnce(c.file)] : []),
        ],
        RUNS.rounds,
      );
      const stock = stockMs(c.file);
      const perMpx = (ms: readonly number[]) => ms.map((m) => m / mpx);
      const ratios = gdal.map((g, i) => (lanemap[i] as number) / g);
      rows.push([
        c.dataset,
        c.encoding,
        mpx,
        statSync(c.file).size / 2 ** 20,
        stock / mpx,
        median(withDecoders) / mpx,
        minMedMax(perMpx(lanemap), 1),
        gdal.length ? minMedMax(perMpx(gdal), 1) : null,
        ratios.length ? minMedMax(ratios, 2, "×") : null,
        stock / median(lanemap),
      ]);
      results.push({
        dataset: c.dataset,
        encoding: c.encoding,
        megapixels: mpx,
        bands: probe.bandCount,
        dtype: probe.dtype,
        fileBytes: statSync(c.file).size,
        cpuMsPerMpx: {
          geotiffStock: stock / mpx,
          geotiffWithLanemapDecoders: perMpx(withDecoders),
          lanemap: perMpx(lanemap),
          gdal: withGdal ? perMpx(gdal) : null,
        },
        lanemapOverGdal: ratios,
        stockOverLanemap: stock / median(lanemap),
      });
    }
    const table: Table = {
      title: `GeoTIFF decode: CPU ms per megapixel (all bands), min / median / max of ${RUNS.rounds} interleaved rounds`,
      columns: [
        "dataset",
        "encoding",
        "Mpx",
        "file MiB",
        "geotiff.js stock",
        "geotiff.js + lanemap codecs",
        "lanemap",
        "GDAL (python3-gdal)",
        "lanemap / GDAL",
        "stock / lanemap",
      ],
      rows,
      notes: [
        withGdal
          ? "GDAL: python3-gdal in a fresh process per round, one warm-up read, then Dataset.ReadRaster of all bands timed in process (block cache capped at 1 MiB); lanemap / GDAL is paired round by round."
          : "GDAL skipped: /usr/bin/python3 has no osgeo.gdal (apt-get install python3-gdal).",
        `Each of ${RUNS.rounds} rounds (after a warm-up round) runs lanemap, geotiff.js + lanemap codecs and GDAL once, in turn, so all see the same load on a shared machine. geotiff.js stock (median CPU ms of ${RUNS.stock} runs after a warm-up) runs in a separate Node process so lanemap's codecs are not registered there.`,
        "Inputs: rasterio's RGB.byte.tif upsampled (cubic) with gdal_translate, and rio-tiler's cog_int16.tif, re-encoded in 256 x 256 tiles (deflate and LZW with predictor 2; JPEG quality 90).",
      ],
    };
    return { table, results: { runs: RUNS, cases: results } };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { table, results } = await runDecodeBench();
  printTable(table);
  writeResults("core-decode", results, [table]);
}
