import { stat } from "node:fs/promises";
import type { Command } from "commander";
import {
  addArchiveFolder,
  modelLayouts,
  type ArchiveAddReport,
  type ModelLayout,
} from "../../../batch/index.js";
import { withTileArchive } from "../../platform/storage.js";
import { LanemapError, dataPaths, parseConfig } from "../../../shared/index.js";
import { UsageError } from "../usage.js";
import { cliLogger } from "../logger.js";
import { commandSummary } from "./index.js";

interface ArchiveAddFlags {
  dataDir?: string;
  acquired?: string;
  nats?: string;
  json?: boolean;
}

/**
 * Warnings for registered tiles whose band count no model in the registry (`modelsDir`, the data
 * directory's models/) expects: such a tile would be accepted now and then fail every batch run.
 * The warning names the active model, the one batch runs apply, when there is one.
 */
export function layoutWarnings(
  report: ArchiveAddReport,
  models: readonly ModelLayout[],
  modelsDir: string,
): string[] {
  if (models.length === 0 || report.registered.length === 0) return [];
  const fits = new Set(models.map((m) => m.bands));
  const expected = [...fits].sort((a, b) => a - b).join(" or ");
  const active = models.find((m) => m.active);
  const who = active
    ? `the registry's active model ${active.version} expects ${active.bands}` +
      (models.length > 1
        ? ` (the ${models.length} models in ${modelsDir} expect ${expected})`
        : ` (in ${modelsDir})`)
    : `the models in ${modelsDir} (none active) expect ${expected}`;
  return report.registered
    .filter((r) => !fits.has(r.bandCount))
    .map(
      (r) =>
        `warning: ${r.file} has ${r.bandCount} band${r.bandCount === 1 ? "" : "s"}; ${who}, ` +
        "so batch runs will fail this tile until a model for its layout is trained (lanemap train ... --activate)",
    );
}

/**
 * `lanemap archive add DIR`: bulk-registers every GeoTIFF of DIR in the master archive. Bad tiles
 * are recorded with their reason and never stop the load; the exit code is 1 only when nothing at all
 * could be read, 2 on bad arguments.
 */
export function registerArchive(program: Command): void {
  const archive = program.command("archive").description(commandSummary("archive"));
  archive
    .command("add")
    .argument(
      "<dir>",
      "folder of GeoTIFF tiles (.tif/.tiff/.gtif; a <file>.json sidecar may give acquired/cell/tileId, a <file>.aux.xml GDAL's band nodata/scale/offset)",
    )
    .description("register every GeoTIFF of a folder in the master archive (bulk load, ingest sequence 0)")
    .option("--data-dir <dir>", "data directory (default: LANEMAP_DATA_DIR, else ./data)")
    .option(
      "--acquired <time>",
      "acquisition time of every file, ISO 8601 (default: sidecar JSON, TIFF tags, file name — as ingest)",
    )
    .option("--nats <url>", "NATS server of a LANEMAP_STORAGE=nats archive (default NATS_URL)")
    .option("--json", "print the summary as JSON")
    .action(async (dir: string, flags: ArchiveAddFlags) => {
      try {
        if (!(await stat(dir)).isDirectory()) throw new Error("not a directory");
      } catch (cause) {
        throw new UsageError(`${dir} is not a readable directory`, { cause });
      }
      if (flags.acquired !== undefined && Number.isNaN(Date.parse(flags.acquired)))
        throw new UsageError(`--acquired must be an ISO 8601 time, got "${flags.acquired}"`);
      const config = parseConfig(
        flags.dataDir ? { ...process.env, LANEMAP_DATA_DIR: flags.dataDir } : process.env,
      );
      const logger = await cliLogger(config.logLevel, { role: "archive" });
      const report = await withTileArchive(config, flags.nats ?? config.natsUrl, "lanemap-archive", (store) =>
        addArchiveFolder(store, dir, {
          logger,
          maxPixels: config.maxPixels,
          ...(flags.acquired !== undefined ? { acquired: flags.acquired } : {}),
        }),
      );
      const warnings = layoutWarnings(
        report,
        await modelLayouts(config.dataDir),
        dataPaths(config.dataDir).models,
      );
      if (flags.json) console.log(JSON.stringify({ ...report, warnings }, null, 2));
      else {
        console.log(
          `archive ${config.storage.backend === "nats" ? "(NATS)" : config.dataDir}: ${report.added} added, ${report.present} already present, ${report.bad.length} bad (of ${report.files} files in ${report.dir})`,
        );
        for (const r of report.registered)
          console.log(
            `  ${r.created ? "added" : "present"}  ${r.file}  tile ${r.tileId}, ${r.bandCount} bands`,
          );
        for (const b of report.bad) console.log(`  bad  ${b.file}  ${b.code}: ${b.reason}`);
        for (const w of warnings) console.error(w);
      }
      if (report.files === 0)
        throw new LanemapError("ARCHIVE_EMPTY", `no GeoTIFF files (.tif, .tiff, .gtif) in ${report.dir}`);
      if (report.added + report.present === 0)
        throw new LanemapError(
          "ARCHIVE_UNREADABLE",
          `none of the ${report.files} files in ${report.dir} could be registered`,
        );
    });
}
