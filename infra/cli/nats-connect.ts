/**
 * How CLI commands find NATS: `--nats URL`, else NATS_URL, else the embedded nats-server that
 * `lanemap start` runs in the data directory (it writes its address to a ports file under
 * `<data>/nats/run/`), so `lanemap ingest` and friends work beside a running `lanemap start`
 * with no configuration.
 */
import { readdir, readFile, stat } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { ConfigError, dataPaths, ownerGone, type Config } from "../../shared/index.js";

/** The URL of a running embedded nats-server of this data directory, or undefined. */
export async function embeddedNatsUrl(dataDir: string): Promise<string | undefined> {
  const runDir = join(dataPaths(dataDir).nats, "run");
  let names: string[];
  try {
    names = await readdir(runDir);
  } catch {
    return undefined;
  }
  for (const name of names) {
    const m = /_(\d+)\.ports$/.exec(name);
    if (!m) continue;
    try {
      // A killed server's file stays: its pid dead, a zombie, or another process's by now (one
      // that started after the file was written).
      const { mtime } = await stat(join(runDir, name));
      if (ownerGone({ pid: Number(m[1]), hostname: hostname(), startedAt: mtime.toISOString() }) !== null)
        continue;
      const ports = JSON.parse(await readFile(join(runDir, name), "utf8")) as { nats?: string[] };
      const url = ports.nats?.[0];
      if (url) return url;
    } catch {
      // A ports file being rewritten: try the next one.
    }
  }
  return undefined;
}

/** Resolves the server URL(s) a command should use; throws a ConfigError saying how to set one. */
export async function natsUrlFor(config: Config, flag: string | undefined): Promise<string> {
  const url = flag ?? config.natsUrl ?? (await embeddedNatsUrl(config.dataDir));
  if (!url)
    throw new ConfigError(
      `no NATS server: set NATS_URL (or --nats URL), or run \`lanemap start\` with LANEMAP_DATA_DIR=${config.dataDir}`,
    );
  return url;
}

/** Connects a CLI command to NATS (reconnecting forever, status changes logged). */
export async function connectForCli(
  config: Config,
  flag: string | undefined,
  name: string,
  logger?: Logger,
): Promise<NatsConnection> {
  const servers = await natsUrlFor(config, flag);
  // Loaded here, not at the top: commands that only look for the embedded server's URL (through
  // platform/models) do not load the NATS client.
  const { connectNats } = await import("../../shared/adapters/nats/index.js");
  return connectNats({ servers, name, ...(logger ? { logger } : {}) });
}
