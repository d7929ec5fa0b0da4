import { stat } from "node:fs/promises";
import type { Command } from "commander";
import { addArchiveFolder } from "../../../batch/index.js";
import { ArchiveStore } from "../../../shared/adapters/archive/index.js";
import { LanemapError, parseConfig } from "../../../shared/index.js";
import { UsageError } from "../usage.js";
import { cliLogger } from "../logger.js";
import { commandSummary } from "./index.js";

interface ArchiveAddFlags {
  dataDir?: string;
  json?: boolean;
}

/**
 * `lanemap archive add DIR`: bulk-registers every .tif/.tiff of DIR in the master archive. Bad tiles
 * are recorded with their reason and never stop the load; the exit code is 1 only when nothing at all
 * could be read, 2 on bad arguments.
 */
export function registerArchive(program: Command): void {
  const archive = program.command("archive").description(commandSummary("archive"));
  archive
    .command("add")
    .argument(
      "<dir>",
      "folder of GeoTIFF tiles (.tif/.tiff; a <file>.json sidecar may give acquired/cell/tileId)",
    )
    .description("register every GeoTIFF of a folder in the master archive (bulk load, ingest sequence 0)")
    .option("--data-dir <dir>", "data directory (default: LANEMAP_DATA_DIR, else ./data)")
    .option("--json", "print the summary as JSON")
    .action(async (dir: string, flags: ArchiveAddFlags) => {
      try {
        if (!(await stat(dir)).isDirectory()) throw new Error("not a directory");
      } catch (cause) {
        throw new UsageError(`${dir} is not a readable directory`, { cause });
      }
      const config = parseConfig(
        flags.dataDir ? { ...process.env, LANEMAP_DATA_DIR: flags.dataDir } : process.env,
      );
      const logger = await cliLogger(config.logLevel, { role: "archive" });
      const store = new ArchiveStore(config.dataDir);
      const report = await addArchiveFolder(store, dir, { logger, maxPixels: config.maxPixels });
      if (flags.json) console.log(JSON.stringify(report, null, 2));
      else {
        console.log(
          `archive ${config.dataDir}: ${report.added} added, ${report.present} already present, ${report.bad.length} bad (of ${report.files} files in ${report.dir})`,
        );
        for (const b of report.bad) console.log(`  bad  ${b.file}  ${b.code}: ${b.reason}`);
      }
      if (report.files === 0) throw new LanemapError("ARCHIVE_EMPTY", `no .tif/.tiff files in ${report.dir}`);
      if (report.added + report.present === 0)
        throw new LanemapError(
          "ARCHIVE_UNREADABLE",
          `none of the ${report.files} files in ${report.dir} could be registered`,
        );
    });
}
