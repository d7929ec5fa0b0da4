/**
 * The JetStream resources of the ingest contract, created or brought up to date from config:
 * the ingest stream, the dead-letter stream, the shared speed consumer and the object store bucket
 * for large tiles. Every `ensure*` is idempotent: run it from any number of processes at start-up;
 * it creates what is missing and updates limits and replicas that changed in config (never the
 * storage type, which JetStream cannot change in place). Replicas (`config.storage.replicas`) are
 * optional in these calls: omitted, a new resource gets 1 and an existing one keeps its own, so a
 * tool that does not know the deployment never scales an R3 stream down.
 *
 * Also the read side serving and infra need: lane status for `/ready`, `lanemap status` and lag.
 */
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiError,
  RetentionPolicy,
  jetstreamManager,
  StorageType,
  type ConsumerConfig,
  type ConsumerInfo,
  type JetStreamManager,
  type StreamConfig,
  type StreamInfo,
} from "@nats-io/jetstream";
import { Objm, type ObjectStore } from "@nats-io/obj";
import { nanos, type NatsConnection } from "@nats-io/transport-node";
import type { Config } from "../../config.js";
import { LanemapError } from "../../errors.js";
import {
  ReplicasRefusedError,
  atReplicas,
  refuseUnclustered,
  replicasRefusal,
  replicasToSet,
  checkReplicas,
  ensureReplicas,
  objectStoreStreamName,
} from "./replicas.js";
import { isConsumerNotFound, isStorageFull, isStreamNotFound } from "./jetstream-errors.js";
import {
  DLQ_STREAM,
  DLQ_SUBJECT_PREFIX,
  INGEST_STREAM,
  INGEST_SUBJECT_PREFIX,
  SPEED_CONSUMER,
  TILE_OBJECT_BUCKET,
} from "./names.js";

/** Stream limits from config (`Config["stream"]`). */
export type StreamLimits = Config["stream"];
/** Consumer settings from config (`Config["speed"]`). */
export type ConsumerSettings = Pick<Config["speed"], "ackWaitMs" | "maxDeliver">;

/** A JetStream resource could not be created or updated. */
export class StreamSetupError extends LanemapError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("NATS_SETUP", message, options);
  }
}

/** The value, or null when the resource does not exist (any other failure is thrown). */
async function orNull<T>(p: Promise<T>): Promise<T | null> {
  try {
    return await p;
  } catch (err) {
    if (isStreamNotFound(err) || isConsumerNotFound(err)) return null;
    throw err;
  }
}

/** The limits part of a stream config, as JetStream stores it (nanoseconds, -1/0 = unlimited). */
function limitsOf(limits: StreamLimits): Pick<StreamConfig, "max_bytes" | "max_age" | "duplicate_window"> {
  const maxAge = limits.maxAgeS > 0 ? nanos(limits.maxAgeS * 1000) : 0;
  // JetStream refuses a duplicate window longer than the age limit: clamp rather than fail start-up.
  const window =
    limits.maxAgeS > 0 ? Math.min(limits.duplicateWindowS, limits.maxAgeS) : limits.duplicateWindowS;
  return { max_bytes: limits.maxBytes, max_age: maxAge, duplicate_window: nanos(window * 1000) };
}

async function ensureStream(
  jsm: JetStreamManager,
  name: string,
  subject: string,
  limits: StreamLimits,
  replicas: number | undefined,
): Promise<StreamInfo> {
  const wanted = limitsOf(limits);
  if (replicas !== undefined) checkReplicas(replicas);
  let info: StreamInfo | undefined;
  try {
    info = await jsm.streams.info(name);
  } catch (err) {
    if (!isStreamNotFound(err)) throw new StreamSetupError(`cannot read stream ${name}`, { cause: err });
  }
  try {
    if (!info) {
      return await jsm.streams.add({
        name,
        subjects: [subject],
        storage: StorageType.File,
        retention: RetentionPolicy.Limits,
        discard: DiscardPolicy.Old,
        num_replicas: replicas ?? 1,
        ...wanted,
      });
    }
    refuseUnclustered(info, replicas);
    const c = info.config;
    const same =
      c.max_bytes === wanted.max_bytes &&
      c.max_age === wanted.max_age &&
      c.duplicate_window === wanted.duplicate_window &&
      c.subjects?.length === 1 &&
      c.subjects[0] === subject &&
      (replicas === undefined || replicasToSet(info, replicas) === (c.num_replicas || 1));
    if (same) return info;
    // One update for limits and replicas: JetStream changes num_replicas in place (replicas.ts);
    // config raises replicas, never lowers them (replicasToSet).
    return await jsm.streams.update(name, {
      ...c,
      subjects: [subject],
      ...wanted,
      ...(replicas === undefined ? {} : { num_replicas: replicasToSet(info, replicas) }),
    });
  } catch (err) {
    if (err instanceof ReplicasRefusedError) throw err;
    // Two processes starting at once may both try to add: the loser reads what the winner made.
    if (!info && err instanceof JetStreamApiError) {
      const again = await jsm.streams.info(name).catch(() => undefined);
      if (again) return again;
    }
    const refused = replicasRefusal(name, replicas, err);
    if (refused) throw refused;
    const hint = isStorageFull(err)
      ? ` (it asks for max_bytes ${limits.maxBytes}, LANEMAP_STREAM_MAX_BYTES: lower it, or give JetStream more storage with max_file_store)`
      : "";
    throw new StreamSetupError(`cannot create or update stream ${name}: ${(err as Error).message}${hint}`, {
      cause: err,
    });
  }
}

/**
 * Creates or updates the ingest stream (LANEMAP_TILES on `tiles.in.>`) and the dead-letter stream
 * (LANEMAP_DLQ on `tiles.dlq.>`): file storage, limits retention, the byte/age limits and the
 * duplicate window (for Nats-Msg-Id) from config, and `replicas` (`config.storage.replicas`; omitted:
 * 1 for a new stream, an existing one keeps its own).
 * @throws StreamSetupError (NATS_SETUP) when a stream cannot be read, created or updated (for
 * instance replicas above 1 on a server without a cluster).
 */
export async function ensureStreams(
  jsm: JetStreamManager,
  limits: StreamLimits,
  replicas?: number,
): Promise<{ ingest: StreamInfo; dlq: StreamInfo }> {
  const ingest = await ensureStream(jsm, INGEST_STREAM, `${INGEST_SUBJECT_PREFIX}.>`, limits, replicas);
  const dlq = await ensureStream(jsm, DLQ_STREAM, `${DLQ_SUBJECT_PREFIX}.>`, limits, replicas);
  return { ingest, dlq };
}

/**
 * Creates or updates the durable pull consumer all speed workers share: explicit ack, ack wait and
 * max deliveries from config, every message of the ingest stream from the start. Its replicas are
 * the stream's (num_replicas 0): the server scales the consumer with the stream. The start-up and a
 * running worker that lost the consumer (vanished-consumer.ts) both create it here; `description`
 * (set only when it creates the consumer) says who re-created it, for `lanemap ops status`.
 * @throws StreamSetupError (NATS_SETUP) when the consumer cannot be read, created or updated.
 */
export async function ensureSpeedConsumer(
  jsm: JetStreamManager,
  settings: ConsumerSettings,
  options: { readonly description?: string } = {},
): Promise<ConsumerInfo> {
  const wanted: Partial<ConsumerConfig> = {
    ack_wait: nanos(settings.ackWaitMs),
    max_deliver: settings.maxDeliver,
  };
  let info: ConsumerInfo | undefined;
  try {
    info = await jsm.consumers.info(INGEST_STREAM, SPEED_CONSUMER);
  } catch (err) {
    if (!isConsumerNotFound(err))
      throw new StreamSetupError(`cannot read consumer ${SPEED_CONSUMER}`, { cause: err });
  }
  try {
    if (!info) {
      return await jsm.consumers.add(INGEST_STREAM, {
        durable_name: SPEED_CONSUMER,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        filter_subject: `${INGEST_SUBJECT_PREFIX}.>`,
        ...(options.description ? { description: options.description } : {}),
        ...wanted,
      });
    }
    if (info.config.ack_wait === wanted.ack_wait && info.config.max_deliver === wanted.max_deliver)
      return info;
    return await jsm.consumers.update(INGEST_STREAM, SPEED_CONSUMER, wanted);
  } catch (err) {
    if (!info && err instanceof JetStreamApiError) {
      const again = await jsm.consumers.info(INGEST_STREAM, SPEED_CONSUMER).catch(() => undefined);
      if (again) return again;
    }
    throw new StreamSetupError(
      `cannot create or update consumer ${SPEED_CONSUMER}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}

/**
 * Opens (creating when absent) the object store bucket for tiles over max_payload. Objects expire
 * with the stream's age limit, so a reference message never outlives its bytes. `replicas` as in
 * {@link ensureStreams}.
 * @throws StreamSetupError (NATS_SETUP) when the bucket cannot be opened, created or rescaled.
 */
export async function ensureTileObjects(
  nc: NatsConnection,
  limits: StreamLimits,
  replicas?: number,
): Promise<ObjectStore> {
  try {
    const store = await atReplicas(objectStoreStreamName(TILE_OBJECT_BUCKET), replicas, () =>
      new Objm(nc).create(TILE_OBJECT_BUCKET, {
        storage: StorageType.File,
        ...(replicas === undefined ? {} : { replicas: checkReplicas(replicas) }),
        ...(limits.maxAgeS > 0 ? { ttl: nanos(limits.maxAgeS * 1000) } : {}),
      }),
    );
    if (replicas !== undefined)
      await ensureReplicas(await jetstreamManager(nc), objectStoreStreamName(TILE_OBJECT_BUCKET), replicas);
    return store;
  } catch (err) {
    if (err instanceof ReplicasRefusedError) throw err;
    throw new StreamSetupError(`cannot open object store ${TILE_OBJECT_BUCKET}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/**
 * Everything the speed lane's JetStream side needs, in one call, at `config.storage.replicas`.
 * @throws StreamSetupError (NATS_SETUP) when a stream, consumer or bucket cannot be created or updated.
 */
export async function ensureSpeedResources(
  nc: NatsConnection,
  jsm: JetStreamManager,
  config: Pick<Config, "stream" | "speed" | "storage">,
): Promise<{ ingest: StreamInfo; dlq: StreamInfo; consumer: ConsumerInfo; tiles: ObjectStore }> {
  const { replicas } = config.storage;
  const { ingest, dlq } = await ensureStreams(jsm, config.stream, replicas);
  const consumer = await ensureSpeedConsumer(jsm, config.speed);
  const tiles = await ensureTileObjects(nc, config.stream, replicas);
  return { ingest, dlq, consumer, tiles };
}

/** The speed lane as JetStream sees it: what serving's `/ready`, `lanemap status` and metrics show. */
export interface SpeedLaneStatus {
  readonly ingest: {
    readonly messages: number;
    readonly bytes: number;
    readonly firstSeq: number;
    readonly lastSeq: number;
  } | null;
  readonly consumer: {
    /** Messages not yet delivered to any worker: the lane's lag in tiles. */
    readonly pending: number;
    /** Delivered, not yet acknowledged (being classified, or waiting for redelivery). */
    readonly ackPending: number;
    readonly redelivered: number;
    /** Pull requests waiting: roughly the idle worker slots. */
    readonly waiting: number;
    /** Highest stream sequence delivered, and the one below which everything is acknowledged. */
    readonly deliveredSeq: number;
    readonly ackFloorSeq: number;
    /** When the consumer was created (ISO 8601), and what its creator noted (a re-creation). */
    readonly created: string;
    readonly description: string | null;
  } | null;
  readonly deadLetters: number | null;
}

/**
 * Reads the ingest stream, speed consumer and dead-letter stream state. A resource that does not
 * exist yet is null (nothing was ingested, or no worker started); other failures throw.
 */
export async function speedLaneStatus(jsm: JetStreamManager): Promise<SpeedLaneStatus> {
  const [ingest, consumer, dlq] = await Promise.all([
    orNull(jsm.streams.info(INGEST_STREAM)),
    orNull(jsm.consumers.info(INGEST_STREAM, SPEED_CONSUMER)),
    orNull(jsm.streams.info(DLQ_STREAM)),
  ]);
  return {
    ingest: ingest
      ? {
          messages: ingest.state.messages,
          bytes: ingest.state.bytes,
          firstSeq: ingest.state.first_seq,
          lastSeq: ingest.state.last_seq,
        }
      : null,
    consumer: consumer
      ? {
          pending: consumer.num_pending,
          ackPending: consumer.num_ack_pending,
          redelivered: consumer.num_redelivered,
          waiting: consumer.num_waiting,
          deliveredSeq: consumer.delivered.stream_seq,
          ackFloorSeq: consumer.ack_floor.stream_seq,
          created: consumer.created,
          description: consumer.config.description || null,
        }
      : null,
    deadLetters: dlq ? dlq.state.messages : null,
  };
}

/**
 * Makes the ingest stream give out `nextSeq` as its next sequence: a purge with `{ seq: nextSeq }`,
 * which on an empty stream (nats-server 2.9.10 and later; checked in
 * test/integration/ingest-stream-recreated.test.ts) sets its first sequence to `nextSeq` and its last
 * to `nextSeq - 1`, and moves the ack floor of every consumer it has to `nextSeq - 1`. Purge removes
 * the messages below `nextSeq`, so the caller checks the stream is empty first; the answer is how
 * many messages it deleted (0 on an empty stream: more means a publish slipped in meanwhile).
 */
export async function advanceIngestStream(jsm: JetStreamManager, nextSeq: number): Promise<number> {
  const { purged } = await jsm.streams.purge(INGEST_STREAM, { seq: nextSeq });
  return purged;
}
