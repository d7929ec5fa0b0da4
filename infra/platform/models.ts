/**
 * The one place that decides which model registry a process uses, so every composition root (start,
 * serve, speed, batch run/schedule, train, model ...) agrees:
 *
 * - NATS reachable for this deployment (a connection given, `--nats`, NATS_URL, or the embedded
 *   nats-server of a running `lanemap start` on this data directory): the NATS registry, which speed
 *   workers watch, mirrored to the data directory's files so a process without NATS reads the same
 *   active model; the two are reconciled at open (versions copied both ways, the later activation wins).
 * - otherwise: the files under <data>/models/.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { FileModelRegistry } from "../../shared/adapters/archive/index.js";
import {
  MirroredModelRegistry,
  reconcileRegistries,
  type Config,
  type ModelRegistry,
} from "../../shared/index.js";
import { embeddedNatsUrl } from "../cli/nats-connect.js";

/** Opens the registry over a NATS connection (mirrored to files) or, without one, on files. */
export async function openModelRegistry(
  config: Config,
  nc: NatsConnection | undefined,
  logger?: Logger,
): Promise<ModelRegistry> {
  const files = await FileModelRegistry.open(config.dataDir);
  if (files.migration.registered.length > 0)
    logger?.info(
      { registered: files.migration.registered, activated: files.migration.activated },
      "registered model artifacts from before the registry",
    );
  if (!nc) return files;
  // Loaded only with a connection: a command on files alone (`lanemap train`, `classify`) does not
  // pay the NATS client's start-up (about 0.1-0.17 s of CPU).
  const { NatsModelRegistry, brokerError, retryTransient } =
    await import("../../shared/adapters/nats/index.js");
  // Every step named when it fails, never a bare "timeout"; the reads inside retry on their own.
  const nats = await retryTransient(
    "opening the model registry",
    () => NatsModelRegistry.open(nc, { replicas: config.storage.replicas, ...(logger ? { logger } : {}) }),
    logger ? { logger } : {},
  );
  const changes = await reconcileRegistries(nats, files).catch((err: unknown) => {
    throw brokerError("reconciling the model registry with the data directory's files", err);
  });
  if (changes.copied.length > 0 || changes.activated)
    logger?.info(changes, "model registry: NATS and the data directory's files reconciled");
  return new MirroredModelRegistry(nats, files);
}

/**
 * Runs `fn` with the deployment's registry: NATS when `--nats`, NATS_URL or the embedded server of
 * this data directory is there (connecting for the call and draining after), else the files.
 */
export async function withModelRegistry<T>(
  config: Config,
  natsFlag: string | undefined,
  name: string,
  fn: (registry: ModelRegistry) => Promise<T>,
): Promise<T> {
  const url = natsFlag ?? config.natsUrl ?? (await embeddedNatsUrl(config.dataDir));
  if (url === undefined) return fn(await openModelRegistry(config, undefined));
  const { connectNats, drainWithin } = await import("../../shared/adapters/nats/index.js");
  const nc = await connectNats({ servers: url, name });
  try {
    return await fn(await openModelRegistry(config, nc));
  } finally {
    await drainWithin(nc);
  }
}
