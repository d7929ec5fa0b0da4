/**
 * The one place that decides which master archive a process uses (`config.storage.backend`), so
 * every composition root (start, serve, speed, batch run, train, the CLI) agrees (issue 14):
 *
 * - files: `ArchiveStore` in the data directory (one machine, or a shared file system);
 * - nats:  `NatsTileArchive`, JetStream buckets with `config.storage.replicas` replicas, reached
 *          over the process's NATS connection (every machine that reaches NATS).
 */
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { ArchiveStore } from "../../shared/adapters/archive/index.js";
import { NatsTileArchive, connectNats, drainWithin } from "../../shared/adapters/nats/index.js";
import { ConfigError, type Config } from "../../shared/index.js";
import type { TileArchive } from "../../shared/index.js";

/**
 * Opens the archive the configuration names.
 * @param nc the process's NATS connection; required for `nats`.
 * @param logger hears (at warn) every retry of a tile read on `nats`.
 * @throws ConfigError (CONFIG) when LANEMAP_STORAGE=nats and no NATS connection is given;
 *   LanemapError STORAGE when the NATS buckets cannot be opened.
 */
export async function openTileArchive(
  config: Pick<Config, "dataDir" | "storage">,
  nc?: NatsConnection,
  logger?: Logger,
): Promise<TileArchive> {
  if (config.storage.backend === "files") return new ArchiveStore(config.dataDir);
  if (!nc)
    throw new ConfigError(
      "LANEMAP_STORAGE=nats needs a NATS connection: give --nats <url> or NATS_URL, or use LANEMAP_STORAGE=files",
    );
  return NatsTileArchive.open(nc, { replicas: config.storage.replicas, ...(logger ? { logger } : {}) });
}

/**
 * Runs `fn` with the configured archive: for `nats`, connects to `natsUrl` for the call and drains
 * after (one-shot CLI commands); for `files`, no connection is made.
 * @throws ConfigError when LANEMAP_STORAGE=nats and no URL is given.
 */
export async function withTileArchive<T>(
  config: Pick<Config, "dataDir" | "storage">,
  natsUrl: string | undefined,
  name: string,
  fn: (archive: TileArchive) => Promise<T>,
): Promise<T> {
  if (config.storage.backend === "files" || natsUrl === undefined) return fn(await openTileArchive(config));
  const nc = await connectNats({ servers: natsUrl, name });
  try {
    return await fn(await openTileArchive(config, nc));
  } finally {
    await drainWithin(nc);
  }
}
