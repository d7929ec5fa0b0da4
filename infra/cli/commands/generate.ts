import type { Command } from "commander";
import {
  ArchiveExistsError,
  SAMPLE_BAND_NAMES,
  generateArchive,
  type ArchiveSummary,
} from "../../../sample/index.js";
import { UsageError, gridSize, positiveInt } from "../usage.js";
import { commandSummary } from "./index.js";

interface GenerateFlags {
  out?: string;
  grid: string;
  tileSize?: string;
  seed?: string;
  bands?: string;
  force?: boolean;
}

/** Parses --seed: any integer that fits 32 bits unsigned, 0 included. */
function seedOption(value: string | undefined): number {
  if (value === undefined) return 1;
  const n = Number(value);
  if (value.trim() === "" || !Number.isInteger(n) || n < 0 || n > 0xffffffff)
    throw new UsageError(`--seed must be an integer in 0..4294967295, got "${value}"`);
  return n;
}

function inRange(name: string, n: number, min: number, max: number): number {
  if (n < min || n > max) throw new UsageError(`${name} must be in ${min}..${max}, got ${n}`);
  return n;
}

const percent = (share: number) => `${(share * 100).toFixed(1)} %`;

/** `lanemap generate`: writes a deterministic sample archive (tiles, truth, training polygons). */
export function registerGenerate(program: Command): void {
  program
    .command("generate")
    .description(commandSummary("generate"))
    .option("--out <dir>", "output folder (must be empty or absent unless --force)")
    .option("--grid <WxH>", "tiles across and down", "4x4")
    .option("--tile-size <n>", "pixels per tile side (16..4096)", "256")
    .option("--seed <n>", "seed: the same seed writes byte-identical files", "1")
    .option(
      "--bands <n>",
      `bands per tile, 1..${SAMPLE_BAND_NAMES.length} (${SAMPLE_BAND_NAMES.join(", ")})`,
      "6",
    )
    .option("--force", "replace the archive in a non-empty output folder")
    .action(async (flags: GenerateFlags) => {
      if (!flags.out) throw new UsageError("--out <dir> is required");
      const grid = gridSize("--grid", flags.grid);
      inRange("--grid width", grid.width, 1, 9999);
      inRange("--grid height", grid.height, 1, 9999);
      const tileSize = inRange("--tile-size", positiveInt("--tile-size", flags.tileSize, 256), 16, 4096);
      const bands = inRange("--bands", positiveInt("--bands", flags.bands, 6), 1, SAMPLE_BAND_NAMES.length);
      const seed = seedOption(flags.seed);

      // A progress line only for people watching; pipes and logs get the summary alone.
      const tty = process.stderr.isTTY === true;
      let summary: ArchiveSummary;
      try {
        summary = await generateArchive({
          out: flags.out,
          grid,
          tileSize,
          seed,
          bands,
          overwrite: flags.force ?? false,
          onTile: tty
            ? (done, total) => process.stderr.write(`\rgenerating tile ${done}/${total}`)
            : undefined,
        });
      } catch (err) {
        if (err instanceof ArchiveExistsError)
          throw new UsageError(`${err.message} (pass --force to replace the archive)`, { cause: err });
        throw err;
      } finally {
        if (tty) process.stderr.write("\n");
      }

      const classes = Object.entries(summary.classShare)
        .map(([name, share]) => `${name} ${percent(share)}`)
        .join(", ");
      const polygons = Object.entries(summary.polygons);
      const polygonTotal = polygons.reduce((n, [, k]) => n + k, 0);
      console.log(
        `generated ${summary.tiles} tiles (${grid.width}x${grid.height} of ${tileSize}x${tileSize} px, ` +
          `${bands} bands, seed ${seed}) in ${(summary.elapsedMs / 1000).toFixed(1)} s: ${summary.out}`,
      );
      console.log(
        `  written     ${(summary.bytes / 2 ** 20).toFixed(1)} MiB (tiles/, truth/, training.geojson, archive.json)`,
      );
      console.log(`  land cover  ${classes}`);
      console.log(`  nodata      ${percent(summary.nodataShare)} of pixels (clouds)`);
      console.log(
        `  training    ${polygonTotal} polygons (${polygons.map(([name, k]) => `${name} ${k}`).join(", ")})`,
      );
    });
}
