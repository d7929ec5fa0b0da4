import { stat } from "node:fs/promises";
import type { Command } from "commander";
import { NatsModelRegistry, type ModelRecord } from "../../../shared/adapters/nats/index.js";
import { loadModelFile, serializeModel } from "../../../shared/index.js";
import { connectForCli } from "../nats-connect.js";
import { UsageError } from "../usage.js";
import { modelSummary } from "../../platform/model-summary.js";
import { cliConfig } from "../config.js";
import { commandSummary } from "./index.js";

interface ModelFlags {
  nats?: string;
  /** Set when run as `lanemap ops model ... --data-dir`. */
  dataDir?: string;
  json?: boolean;
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

async function withRegistry<T>(flags: ModelFlags, fn: (r: NatsModelRegistry) => Promise<T>): Promise<T> {
  const config = cliConfig({ LANEMAP_DATA_DIR: flags.dataDir });
  const nc = await connectForCli(config, flags.nats, "lanemap-model");
  try {
    return await fn(await NatsModelRegistry.open(nc));
  } finally {
    await nc.drain().catch(() => undefined);
  }
}

/** `lanemap model activate|list`: the model registry the speed workers follow. */
export function registerModel(program: Command): void {
  const model = program.command("model").description(commandSummary("model"));

  model
    .command("activate")
    .description(
      "validate and upload a model file and make it current (speed workers switch without a restart); " +
        "or give an uploaded version to switch back to it",
    )
    .argument(
      "<file-or-version>",
      "model JSON file (from `lanemap train`), or a version from `lanemap model list`",
    )
    .option("--nats <url>", "NATS server (default NATS_URL, else the embedded server of `lanemap start`)")
    .option("--json", "print JSON")
    .action(async (target: string, flags: ModelFlags) => {
      const fromFile = await isFile(target);
      if (!fromFile && !/^[0-9a-f]{16}$/.test(target))
        throw new UsageError(`"${target}" is neither a model file nor a model version (16 hex digits)`);
      // Validate before connecting: a bad file is refused without touching the registry.
      const parsed = fromFile ? await loadModelFile(target) : null;
      const out = await withRegistry(flags, async (registry) => {
        let uploaded: { record: ModelRecord; created: boolean } | null = null;
        if (parsed)
          uploaded = await registry.upload(
            parsed.version,
            new TextEncoder().encode(serializeModel(parsed)),
            modelSummary(parsed),
          );
        const version = parsed?.version ?? target;
        const current = await registry.activate(version);
        return { version, uploaded: uploaded?.created ?? false, current };
      });
      if (flags.json) console.log(JSON.stringify(out));
      else
        console.log(
          `model ${out.version} is current${out.uploaded ? " (uploaded)" : ""}; speed workers switch to it for their next tile`,
        );
    });

  model
    .command("list")
    .description("list uploaded model versions; * marks the current one")
    .option("--nats <url>", "NATS server (default NATS_URL, else the embedded server of `lanemap start`)")
    .option("--json", "print JSON")
    .action(async (flags: ModelFlags) => {
      const { records, current } = await withRegistry(flags, async (r) => ({
        records: await r.records(),
        current: await r.current(),
      }));
      if (flags.json) {
        console.log(JSON.stringify({ current, models: records }, null, 2));
        return;
      }
      if (records.length === 0) {
        console.log("no models: run `lanemap model activate FILE`");
        return;
      }
      for (const r of records) {
        const mark = r.version === current?.version ? "*" : " ";
        const s = r.summary as { classes?: string[]; samples?: number; k?: number };
        console.log(
          `${mark} ${r.version}  uploaded ${r.uploadedAt}  ${(r.bytes / 1024).toFixed(0)} KB  ` +
            `k=${s.k ?? "?"}  ${s.samples ?? "?"} samples  classes: ${(s.classes ?? []).join(", ")}`,
        );
      }
      if (current) console.log(`\ncurrent since ${current.activatedAt}`);
    });
}
