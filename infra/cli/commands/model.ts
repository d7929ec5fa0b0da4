import { stat } from "node:fs/promises";
import type { Command } from "commander";
import {
  ModelNotFoundError,
  loadModelFile,
  type ModelEntry,
  type ModelRegistry,
} from "../../../shared/index.js";
import { UsageError } from "../usage.js";
import { cliConfig } from "../config.js";
import { withModelRegistry } from "../../platform/models.js";
import { commandSummary } from "./index.js";

interface ModelFlags {
  nats?: string;
  dataDir?: string;
  json?: boolean;
}

const VERSION = /^[0-9a-f]{16}$/;
const NATS_HELP =
  "NATS server (default NATS_URL, else the embedded server of `lanemap start`; without one, the data directory's files)";
const DATA_DIR_HELP = "data directory (default: LANEMAP_DATA_DIR, else ./data)";

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

function withRegistry<T>(flags: ModelFlags, fn: (r: ModelRegistry) => Promise<T>): Promise<T> {
  return withModelRegistry(cliConfig({ LANEMAP_DATA_DIR: flags.dataDir }), flags.nats, "lanemap-model", fn);
}

const fixed = (v: number | null | undefined, digits = 3): string =>
  v === null || v === undefined ? "-" : v.toFixed(digits);

/** One line per version for `model list`. */
function listLine(e: ModelEntry, active: boolean): string {
  const acc = e.accuracy ? `  OA ${fixed(e.accuracy.oa)} kappa ${fixed(e.accuracy.kappa)}` : "";
  return (
    `${active ? "*" : " "} ${e.version}  trained ${e.createdAt} by ${e.trainedBy}  k=${e.k}  ${e.samples} samples${acc}  ` +
    `classes: ${e.classes.map((c) => `${c.id} ${c.name}`).join(", ")}`
  );
}

/** A version prefix `model show` accepts: 4 to 15 hex digits (git's short hashes start at 4). */
const VERSION_PREFIX = /^[0-9a-f]{4,15}$/;

/**
 * The training labels of an entry: its source, and its label set when the source does not already
 * name it (the trainer's source is "label set v3" and its label set "v3": say it once).
 */
function labelsLine(e: ModelEntry): string {
  if (!e.labelSet || e.source.includes(e.labelSet)) return e.source;
  return `${e.source} (label set ${e.labelSet})`;
}

/** `lanemap model list|show|activate`: the model registry both lanes and serving read. */
export function registerModel(program: Command): void {
  const model = program.command("model").description(commandSummary("model"));

  model
    .command("activate")
    .description(
      "make a model the active one of both lanes (speed workers switch for their next tile, the next batch " +
        "run applies it): a stored version, or a model file, which is checked and stored first",
    )
    .argument(
      "<file-or-version>",
      "model JSON file (from `lanemap train --out`), or a version from `lanemap model list`",
    )
    .option("--nats <url>", NATS_HELP)
    .option("--data-dir <dir>", DATA_DIR_HELP)
    .option("--json", "print JSON")
    .action(async (target: string, flags: ModelFlags) => {
      const fromFile = await isFile(target);
      if (!fromFile && !VERSION.test(target))
        throw new UsageError(`"${target}" is neither a model file nor a model version (16 hex digits)`);
      // Validate before connecting: a bad file is refused without touching the registry.
      const parsed = fromFile ? await loadModelFile(target) : null;
      const out = await withRegistry(flags, async (registry) => {
        const created = parsed
          ? (await registry.put(parsed, { trainedBy: "lanemap model activate" })).created
          : false;
        const version = parsed?.version ?? target;
        const current = await registry.activate(version);
        return { version, uploaded: created, current, backend: registry.backend };
      });
      if (flags.json) console.log(JSON.stringify(out));
      else
        console.log(
          `model ${out.version} is current${out.uploaded ? " (uploaded)" : ""} (revision ${out.current.revision}, ${out.backend} registry); ` +
            "speed workers switch to it for their next tile, the next batch run applies it",
        );
    });

  model
    .command("list")
    .description("list stored model versions (oldest first); * marks the active one")
    .option("--nats <url>", NATS_HELP)
    .option("--data-dir <dir>", DATA_DIR_HELP)
    .option("--json", "print JSON")
    .action(async (flags: ModelFlags) => {
      const { models, current, backend } = await withRegistry(flags, async (r) => ({
        models: await r.list(),
        current: await r.active(),
        backend: r.backend,
      }));
      if (flags.json) {
        console.log(JSON.stringify({ backend, current, models }, null, 2));
        return;
      }
      if (models.length === 0) {
        console.log(
          `no models in the ${backend} registry: run \`lanemap train ... --activate\` or \`lanemap model activate FILE\``,
        );
        return;
      }
      for (const e of models) console.log(listLine(e, e.version === current?.version));
      if (current)
        console.log(
          `\nactive since ${current.activatedAt} (revision ${current.revision}, ${backend} registry)`,
        );
    });

  model
    .command("show")
    .description("one stored version: classes with ids and colours, features, k, who/when, accuracy")
    .argument("<version>", "a version from `lanemap model list`, or a unique prefix of one (4+ hex digits)")
    .option("--nats <url>", NATS_HELP)
    .option("--data-dir <dir>", DATA_DIR_HELP)
    .option("--json", "print JSON")
    .action(async (version: string, flags: ModelFlags) => {
      if (!VERSION.test(version) && !VERSION_PREFIX.test(version))
        throw new UsageError(
          `"${version}" is not a model version (16 hex digits) or a prefix of one (4 or more hex digits)`,
        );
      const { entry, current } = await withRegistry(flags, async (r) => {
        let full = version;
        if (!VERSION.test(version)) {
          const matches = (await r.list()).filter((e) => e.version.startsWith(version)).map((e) => e.version);
          if (matches.length > 1)
            throw new UsageError(
              `"${version}" is the start of ${matches.length} model versions (${matches.join(", ")}): give more digits`,
            );
          if (matches.length === 0) return { entry: undefined, current: await r.active() };
          full = matches[0] as string;
        }
        return { entry: await r.get(full), current: await r.active() };
      });
      if (!entry) throw new ModelNotFoundError(version);
      const active = entry.version === current?.version;
      if (flags.json) {
        console.log(JSON.stringify({ ...entry, active }, null, 2));
        return;
      }
      console.log(`model ${entry.version}${active ? " (active)" : ""}`);
      console.log(`  trained   ${entry.createdAt} by ${entry.trainedBy}; stored ${entry.storedAt}`);
      console.log(`  labels    ${labelsLine(entry)}`);
      console.log(`  k ${entry.k}, ${entry.samples} samples, ${entry.features.bands} bands`);
      for (const c of entry.classes)
        console.log(
          `  class ${String(c.id).padStart(3)}  ${c.colour}  ${c.name} (${entry.samplesPerClass[c.name] ?? 0} samples)`,
        );
      if (entry.accuracy) {
        console.log(
          `  accuracy  OA ${fixed(entry.accuracy.oa)}  kappa ${fixed(entry.accuracy.kappa)}  (n ${entry.accuracy.n})`,
        );
        for (const c of entry.accuracy.perClass) console.log(`    ${c.name}  F1 ${fixed(c.f1)}`);
      }
    });
}
