/**
 * GeoTIFF decode benchmark: median milliseconds per megapixel, per encoding, for
 *  - geotiff.js as shipped (its own decoders; measured in a child process so lanemap's registered
 *    decoders cannot leak in),
 *  - geotiff.js's readRasters with lanemap's decoders registered (the codec gain alone),
 *  - lanemap's decodeGeoTiff (codecs + direct block assembly),
 *  - gdal_translate to ENVI, minus GDAL's process start-up (timed on a 1 x 1 file).
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
import { type Cell, type Table, median, printTable, writeResults } from "../harness.js";

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

/** Milliseconds of one gdal_translate to ENVI of `file`. */
function gdalOnce(file: string, dir: string): number {
  const t0 = performance.now();
  run("gdal_translate", ["-q", "-of", "ENVI", file, join(dir, "gdal-out.bin")]);
  return performance.now() - t0;
}

/**
 * Medians of several timed functions, run in alternation (one run of each per round) so that all of
 * them see the same load on a shared machine; one warm-up round first.
 */
async function interleaved(fns: readonly (() => unknown)[], rounds: number): Promise<number[]> {
  const times: number[][] = fns.map(() => []);
  for (let round = -1; round < rounds; round++) {
    for (let i = 0; i < fns.length; i++) {
      const t0 = performance.now();
      await (fns[i] as () => unknown)();
      if (round >= 0) (times[i] as number[]).push(performance.now() - t0);
    }
  }
  return times.map(median);
}

/** Median ms of geotiff.js as shipped, decoding `file` in a fresh Node process. */
function stockMs(file: string): number {
  const code = `
    import { fromArrayBuffer } from "geotiff";
    import { readFileSync } from "node:fs";
    const b = readFileSync(${JSON.stringify(file)});
    const ab = b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
    const once = async () => { const t = await fromArrayBuffer(ab); await (await t.getImage(0)).readRasters(); };
    await once();
    const times = [];
    for (let i = 0; i < ${RUNS.stock}; i++) { const t0 = performance.now(); await once(); times.push(performance.now() - t0); }
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
    const tiny = join(dir, "tiny.tif");
    run("gdal_translate", [
      "-q",
      "-srcwin",
      "0",
      "0",
      "1",
      "1",
      sharedData("encodings", "RGB.byte.tif") as string,
      tiny,
    ]);
    const [startup = NaN] = await interleaved([() => gdalOnce(tiny, dir)], RUNS.gdal);
    const cases = makeInputs(dir);
    const rows: Cell[][] = [];
    const results: Record<string, unknown>[] = [];
    for (const c of cases) {
      const bytes = new Uint8Array(readFileSync(c.file));
      const probe = await decodeGeoTiff(bytes);
      const mpx = (probe.width * probe.height) / 1e6;
      const ab = bytes.slice().buffer;
      const [lanemap = NaN, gdalTotal = NaN, withDecoders = NaN] = await interleaved(
        [
          () => decodeGeoTiff(bytes),
          () => gdalOnce(c.file, dir),
          async () => (await (await fromArrayBuffer(ab)).getImage(0)).readRasters(),
        ],
        RUNS.rounds,
      );
      const stock = stockMs(c.file);
      const gdal = Math.max(0.1, gdalTotal - startup);
      const perMpx = (ms: number) => ms / mpx;
      rows.push([
        c.dataset,
        c.encoding,
        mpx,
        statSync(c.file).size / 2 ** 20,
        perMpx(stock),
        perMpx(withDecoders),
        perMpx(lanemap),
        perMpx(gdal),
        lanemap / gdal,
        stock / lanemap,
      ]);
      results.push({
        dataset: c.dataset,
        encoding: c.encoding,
        megapixels: mpx,
        bands: probe.bandCount,
        dtype: probe.dtype,
        fileBytes: statSync(c.file).size,
        msPerMpx: {
          geotiffStock: perMpx(stock),
          geotiffWithLanemapDecoders: perMpx(withDecoders),
          lanemap: perMpx(lanemap),
          gdalTranslate: perMpx(gdal),
        },
        lanemapOverGdal: lanemap / gdal,
        stockOverLanemap: stock / lanemap,
      });
    }
    const table: Table = {
      title: "GeoTIFF decode: median ms per megapixel (all bands)",
      columns: [
        "dataset",
        "encoding",
        "Mpx",
        "file MiB",
        "geotiff.js stock",
        "geotiff.js + lanemap codecs",
        "lanemap",
        "gdal_translate",
        "lanemap / GDAL",
        "stock / lanemap",
      ],
      rows,
      notes: [
        `gdal_translate times are for -of ENVI to a temporary file, minus GDAL's process start-up (${startup.toFixed(0)} ms, the median time of the same command on a 1 x 1 pixel file).`,
        `Medians of ${RUNS.rounds} rounds after a warm-up round; each round runs lanemap, gdal_translate and geotiff.js + lanemap codecs once, in turn, so all three see the same load on a shared machine. geotiff.js stock (median of ${RUNS.stock} runs after a warm-up) runs in a separate Node process so lanemap's codecs are not registered there.`,
        "Inputs: rasterio's RGB.byte.tif upsampled (cubic) with gdal_translate, and rio-tiler's cog_int16.tif, re-encoded in 256 x 256 tiles (deflate and LZW with predictor 2; JPEG quality 90).",
      ],
    };
    return { table, results: { gdalStartupMs: startup, runs: RUNS, cases: results } };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { table, results } = await runDecodeBench();
  printTable(table);
  writeResults("core-decode", results);
}
