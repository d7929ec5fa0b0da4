/**
 * The one place that decides which published-views backend a process uses (issue 14), so the batch
 * publisher, serving and `lanemap views` agree: `LANEMAP_STORAGE=files` reads and writes the data
 * directory's views/batch/ (one machine, or a shared file system); `nats` keeps versions in the
 * JetStream object store with CURRENT in KV, and downloads what this machine reads into
 * `<dataDir>/cache/views`.
 */
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { FilePublishedViews } from "../../shared/adapters/archive/index.js";
import { NatsPublishedViews, connectNats, drainWithin } from "../../shared/adapters/nats/index.js";
import { ConfigError, type Config, type PublishedViews } from "../../shared/index.js";
import { embeddedNatsUrl } from "../cli/nats-connect.js";

/** The local cache of downloaded versions for the nats backend. */
export function viewCacheDir(dataDir: string): string {
  return join(dataDir, "cache", "views");
}

/**
 * Opens the deployment's published views; `logger` hears the retries of the nats backend's reads and watch.
 * @throws ConfigError (CONFIG) when `LANEMAP_STORAGE=nats` and no NATS connection is given;
 *   LanemapError STORAGE when the view buckets cannot be opened.
 */
export async function openPublishedViews(
  config: Config,
  nc?: NatsConnection,
  logger?: Logger,
): Promise<PublishedViews> {
  if (config.storage.backend === "files") return new FilePublishedViews(config.dataDir);
  if (!nc)
    throw new ConfigError(
      "LANEMAP_STORAGE=nats needs a NATS server (--nats, NATS_URL or a running `lanemap start`) for the published views",
    );
  return NatsPublishedViews.open(nc, {
    cacheDir: viewCacheDir(config.dataDir),
    replicas: config.storage.replicas,
    ...(logger ? { logger } : {}),
  });
}

/**
 * Runs `fn` with the deployment's published views: the files, or with `LANEMAP_STORAGE=nats` the
 * NATS store at `--nats`, NATS_URL or the embedded server of this data directory (connecting for
 * the call and draining after).
 * @throws ConfigError when `LANEMAP_STORAGE=nats` and no NATS server is known.
 */
export async function withPublishedViews<T>(
  config: Config,
  natsFlag: string | undefined,
  name: string,
  fn: (views: PublishedViews) => Promise<T>,
): Promise<T> {
  if (config.storage.backend === "files") return fn(await openPublishedViews(config));
  const url = natsFlag ?? config.natsUrl ?? (await embeddedNatsUrl(config.dataDir));
  if (url === undefined) return fn(await openPublishedViews(config));
  const nc = await connectNats({ servers: url, name });
  try {
    return await fn(await openPublishedViews(config, nc));
  } finally {
    await drainWithin(nc);
  }
}
