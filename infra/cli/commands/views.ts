import type { Command } from "commander";
import { diffBatchViews, listViews, rollbackBatchView } from "../../../batch/index.js";
import { withPublishedViews } from "../../platform/views.js";
import { cliConfig } from "../config.js";
import { commandSummary } from "./index.js";

interface ViewsFlags {
  dataDir?: string;
  json?: boolean;
  nats?: string;
}

const NATS_FLAG =
  "NATS server of LANEMAP_STORAGE=nats (default NATS_URL, else the embedded server of `lanemap start`)";

function configFor(flags: ViewsFlags) {
  return cliConfig({ LANEMAP_DATA_DIR: flags.dataDir });
}

/** Exit code of `views diff` when the views differ (the command ran fine): as `ops diff`'s. */
const VIEWS_DIFFER = 3;

/** `lanemap views list|rollback|diff`: the published batch view versions and the CURRENT pointer. */
export function registerViews(program: Command): void {
  const views = program.command("views").description(commandSummary("views"));
  views
    .command("list")
    .description("list complete batch view versions, oldest first (* marks CURRENT)")
    .option("--data-dir <dir>", "data directory (default: LANEMAP_DATA_DIR, else ./data)")
    .option("--json", "print JSON")
    .option("--nats <url>", NATS_FLAG)
    .action(async (flags: ViewsFlags) => {
      const config = configFor(flags);
      const list = await withPublishedViews(config, flags.nats, "lanemap views list", (v) =>
        listViews(config.dataDir, v),
      );
      if (flags.json) {
        console.log(JSON.stringify(list, null, 2));
        return;
      }
      if (list.length === 0) {
        console.log("no batch view published yet (run `lanemap batch run`)");
        return;
      }
      const rows = [
        ["", "version", "watermark", "model", "tiles", "reused", "failed", "cells", "finished"],
        ...list.map((v) => [
          v.current ? "*" : "",
          v.name,
          String(v.watermark),
          v.modelVersion,
          String(v.tiles.total),
          String(v.tiles.reused),
          String(v.tiles.failed),
          String(v.cells),
          v.finishedAt,
        ]),
      ];
      const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
      for (const r of rows)
        console.log(
          r
            .map((c, i) => c.padEnd(widths[i] ?? 0))
            .join("  ")
            .trimEnd(),
        );
    });
  views
    .command("diff")
    .argument("<a>", "a complete version, e.g. v000003 or 3")
    .argument("<b>", "another complete version")
    .description(
      "compare two versions tile by tile and cell by cell: each tile's class raster and each cell's per-pixel composite, decoded (exit 0 identical, 3 different)",
    )
    .option("--data-dir <dir>", "data directory (default: LANEMAP_DATA_DIR, else ./data)")
    .option("--json", "print JSON")
    .option("--nats <url>", NATS_FLAG)
    .action(async (a: string, b: string, flags: ViewsFlags) => {
      const config = configFor(flags);
      const d = await withPublishedViews(config, flags.nats, "lanemap views diff", (views) =>
        diffBatchViews(config.dataDir, a, b, views),
      );
      if (flags.json) console.log(JSON.stringify(d, null, 2));
      else {
        const line = (what: string, c: typeof d.tiles) => {
          const first = (ids: readonly string[]) =>
            ids.length ? ` (${ids.slice(0, 5).join(", ")}${ids.length > 5 ? ", ..." : ""})` : "";
          console.log(
            `${what}: ${c.equal} equal, ${c.differing.length} differing${first(c.differing)}, ` +
              `${c.onlyInA.length} only in ${d.a}${first(c.onlyInA)}, ${c.onlyInB.length} only in ${d.b}${first(c.onlyInB)}`,
          );
        };
        line("tiles", d.tiles);
        line("composites", d.composites);
        console.log(d.identical ? `${d.a} and ${d.b} hold the same pixels` : `${d.a} and ${d.b} differ`);
      }
      if (!d.identical) process.exitCode = VIEWS_DIFFER;
    });
  views
    .command("rollback")
    .argument("<version>", "a complete version, e.g. v000003 or 3")
    .description(
      "point CURRENT at an older (or newer) complete version; readers switch on their next request",
    )
    .option("--data-dir <dir>", "data directory (default: LANEMAP_DATA_DIR, else ./data)")
    .option("--json", "print JSON")
    .option("--nats <url>", NATS_FLAG)
    .action(async (version: string, flags: ViewsFlags) => {
      const config = configFor(flags);
      const v = await withPublishedViews(config, flags.nats, "lanemap views rollback", (views) =>
        rollbackBatchView(config.dataDir, version, views),
      );
      if (flags.json) {
        console.log(
          JSON.stringify({
            current: v.name,
            watermark: v.manifest.watermark,
            modelVersion: v.manifest.modelVersion,
            tiles: v.manifest.tiles,
          }),
        );
        return;
      }
      console.log(
        `CURRENT -> ${v.name} (watermark ${v.manifest.watermark}, model ${v.manifest.modelVersion}, ${v.manifest.tiles.total} tiles)`,
      );
    });
}
