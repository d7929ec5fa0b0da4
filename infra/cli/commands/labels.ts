import { readFile } from "node:fs/promises";
import { userInfo } from "node:os";
import type { Command } from "commander";
import { LabelStore } from "../../../shared/adapters/archive/index.js";
import {
  TrainingDataError,
  labelInputCrs,
  labelSetGeoJson,
  labelsOutsideFootprints,
  labelsPerClass,
  parseLabelFeatures,
  type LonLatBox,
} from "../../../shared/index.js";
import { writeFileDurable } from "../../../shared/adapters/archive/index.js";
import { withTileArchive } from "../../platform/storage.js";
import { cliConfig } from "../config.js";
import { UsageError } from "../usage.js";
import { commandSummary } from "./index.js";

interface LabelsFlags {
  dataDir?: string;
  json?: boolean;
  out?: string;
  author?: string;
  at?: string;
}

const dataDirOf = (flags: LabelsFlags): string => cliConfig({ LANEMAP_DATA_DIR: flags.dataDir }).dataDir;
const storeFor = (flags: LabelsFlags) => new LabelStore(dataDirOf(flags));

/** Formats lanemap reads as labels only through a conversion, and the command that converts them. */
const NOT_GEOJSON = /\.(shp|gpkg|kml|kmz|gml|tab|csv|zip|dbf|shx)$/i;

function notJson(file: string, detail: string, cause: unknown): TrainingDataError {
  const out = file.replace(/\.[^./]+$/, "") + ".geojson";
  return new TrainingDataError(
    `${file} is not GeoJSON${NOT_GEOJSON.test(file) ? "" : ` (${detail})`}: \`labels add\` reads a GeoJSON ` +
      `Feature or FeatureCollection; convert other vector formats with GDAL: ogr2ogr -f GeoJSON ${out} ${file}`,
    { cause },
  );
}

function defaultAuthor(): string {
  try {
    return userInfo().username || "cli";
  } catch {
    return "cli";
  }
}

function versionOption(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value))
    throw new UsageError(`--at must be a label-set version (a whole number), got "${value}"`);
  return Number(value);
}

/** `lanemap labels add|list|export|remove`: the versioned label set of the data directory. */
export function registerLabels(program: Command): void {
  const labels = program.command("labels").description(commandSummary("labels"));
  const dataDir = "data directory (default: LANEMAP_DATA_DIR, else ./data)";

  labels
    .command("add")
    .description(
      "add the labels of a GeoJSON file (Feature or FeatureCollection of Polygons, MultiPolygons, Points " +
        'with a "class"; any CRS via a legacy "crs" member) as one new label-set version',
    )
    .argument("<file>", "GeoJSON file")
    .option("--author <name>", "author of labels without an author property (default: your user name)")
    .option("--data-dir <dir>", dataDir)
    .option("--json", "print JSON")
    .action(async (file: string, flags: LabelsFlags) => {
      let input: unknown;
      try {
        input = JSON.parse(await readFile(file, "utf8"));
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        if (e.code === "ENOENT" || e.code === "EISDIR") throw new UsageError(`${file} is not a file`);
        throw notJson(file, e.message, err);
      }
      const crs = await labelInputCrs(input);
      const store = storeFor(flags);
      const drafts = parseLabelFeatures(input, {
        crs,
        author: flags.author ?? defaultAuthor(),
        now: new Date().toISOString(),
        existingClasses: new Set((await store.read()).labels.map((l) => l.class)),
      });
      const footprints: LonLatBox[] = [];
      const config = cliConfig({ LANEMAP_DATA_DIR: flags.dataDir });
      await withTileArchive(config, config.natsUrl, "lanemap-labels", async (archive) => {
        for await (const e of archive.entries()) if (e.boundsWgs84 !== null) footprints.push(e.boundsWgs84);
      });
      // Kept, since the archive can grow; said, since such a label gives no sample yet.
      const warnings = labelsOutsideFootprints(drafts, footprints);
      const added = await store.add(drafts);
      if (flags.json)
        console.log(
          JSON.stringify({
            ids: added.ids,
            labelSetVersion: added.version,
            ...(warnings.length > 0 ? { warnings } : {}),
          }),
        );
      else {
        for (const w of warnings) console.error(`warning: ${w}`);
        console.log(
          `label set v${added.version}: ${added.ids.length} label${added.ids.length === 1 ? "" : "s"} added`,
        );
        for (const [i, id] of added.ids.entries()) console.log(`  ${id}  ${drafts[i]?.class}`);
      }
    });

  labels
    .command("list")
    .description("list the labels of the newest label-set version (or --at N)")
    .option("--at <version>", "an earlier label-set version")
    .option("--data-dir <dir>", dataDir)
    .option("--json", "print JSON")
    .action(async (flags: LabelsFlags) => {
      const set = await storeFor(flags).read(versionOption(flags.at));
      if (flags.json) {
        console.log(JSON.stringify(labelSetGeoJson(set), null, 2));
        return;
      }
      if (set.labels.length === 0) {
        console.log(`label set v${set.version}: no labels (add some with \`lanemap labels add FILE\`)`);
        return;
      }
      const per = Object.entries(labelsPerClass(set)).map(([c, n]) => `${c} ${n}`);
      console.log(
        `label set v${set.version} (${set.updatedAt}): ${set.labels.length} labels — ${per.join(", ")}`,
      );
      for (const l of set.labels)
        console.log(
          `  ${l.id}  ${l.class.padEnd(12)} ${l.geometry.type.padEnd(12)} ${l.author}  ${l.time}` +
            (l.note !== null ? `  "${l.note}"` : ""),
        );
    });

  labels
    .command("export")
    .description("write the label set as a GeoJSON FeatureCollection (WGS 84) to stdout or --out")
    .option("--out <file>", "output file (default stdout)")
    .option("--at <version>", "an earlier label-set version")
    .option("--data-dir <dir>", dataDir)
    .action(async (flags: LabelsFlags) => {
      const set = await storeFor(flags).read(versionOption(flags.at));
      const text = `${JSON.stringify(labelSetGeoJson(set), null, 2)}\n`;
      if (flags.out === undefined) process.stdout.write(text);
      else {
        await writeFileDurable(flags.out, text);
        console.error(`label set v${set.version}: ${set.labels.length} labels -> ${flags.out}`);
      }
    });

  labels
    .command("remove")
    .description("remove one label (a new label-set version)")
    .argument("<id>", "label id (from `lanemap labels list`)")
    .option("--data-dir <dir>", dataDir)
    .option("--json", "print JSON")
    .action(async (id: string, flags: LabelsFlags) => {
      const { version } = await storeFor(flags).remove(id, defaultAuthor());
      if (flags.json) console.log(JSON.stringify({ id, labelSetVersion: version }));
      else console.log(`label set v${version}: ${id} removed`);
    });
}
