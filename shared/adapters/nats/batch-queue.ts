/**
 * The JetStream resources of the batch lane's work queue (issue 14): the task stream every
 * `lanemap worker` pulls from through one durable consumer, the results stream a run's coordinator
 * reads, and the object store bucket for class rasters too large for one message. Like the speed
 * lane's `ensure*`, idempotent and safe to run from any number of processes at start-up.
 */
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type ConsumerConfig,
  type JetStreamManager,
  type StreamConfig,
} from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { Objm, type ObjectStore } from "@nats-io/obj";
import { nanos, type NatsConnection } from "@nats-io/transport-node";
import {
  BATCH_RASTER_BUCKET,
  BATCH_RESULT_STREAM,
  BATCH_RESULT_SUBJECT_PREFIX,
  BATCH_RUN_BUCKET,
  BATCH_TASK_CONSUMER,
  BATCH_TASK_STREAM,
  BATCH_TASK_SUBJECT_PREFIX,
} from "./names.js";
import { LanemapError } from "../../errors.js";
import { StreamSetupError } from "./streams.js";
import { openRunRecords } from "./batch-runs.js";
import {
  atReplicas,
  objectStoreStreamName,
  refuseUnclustered,
  ReplicasRefusedError,
  replicasRefusal,
  replicasToSet,
} from "./replicas.js";

/** Settings of the batch work queue. */
export interface BatchQueueSettings {
  /** JetStream replicas of the streams and the bucket (`config.storage.replicas`). */
  readonly replicas: number;
  /**
   * How long a delivered task may go unacknowledged (with no heartbeat) before it is redelivered,
   * in ms: the tile deadline plus a margin, so a live worker always answers first.
   */
  readonly ackWaitMs: number;
  /** Deliveries of one task before the max-deliveries advisory reports it (`config.speed.maxDeliver`). */
  readonly maxDeliver: number;
  /** How long results (and large rasters) are kept for a resuming coordinator, in seconds. */
  readonly resultMaxAgeS: number;
  /** Nats-Msg-Id de-duplication window of tasks and results, in seconds. */
  readonly duplicateWindowS: number;
}

/** Results and their rasters outlive any run: a day (a crashed coordinator resumes within it). */
export const BATCH_RESULT_MAX_AGE_S = 86_400;

async function ensureStream(jsm: JetStreamManager, wanted: Partial<StreamConfig> & { name: string }) {
  try {
    const info = await jsm.streams.info(wanted.name).catch((err: unknown) => {
      if (err instanceof JetStreamApiError) return undefined;
      throw err;
    });
    if (!info) return await jsm.streams.add(wanted);
    refuseUnclustered(info, wanted.num_replicas);
    const c = info.config;
    // Config raises replicas, never lowers them (replicas.ts replicasToSet).
    const replicas = replicasToSet(info, wanted.num_replicas ?? 1);
    if (
      c.max_age === wanted.max_age &&
      c.duplicate_window === wanted.duplicate_window &&
      c.num_replicas === replicas
    )
      return info;
    return await jsm.streams.update(wanted.name, { ...c, ...wanted, num_replicas: replicas });
  } catch (err) {
    if (err instanceof ReplicasRefusedError) throw err;
    // Two processes starting at once may both try to add: the loser reads what the winner made.
    const again = await jsm.streams.info(wanted.name).catch(() => undefined);
    if (again) return again;
    const refused = replicasRefusal(wanted.name, wanted.num_replicas, err);
    if (refused) throw refused;
    throw new StreamSetupError(`cannot create or update stream ${wanted.name}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/**
 * Creates or updates the task stream (work-queue retention, `batch.task.>`), its shared durable
 * pull consumer (explicit ack, ack wait and max deliveries from `settings`), the results stream
 * (limits retention, `batch.result.>`, results kept `resultMaxAgeS`), the raster bucket and the
 * bucket of records of runs that are over (batch-runs.ts).
 * @throws StreamSetupError (NATS_SETUP) when a resource cannot be created or updated.
 */
export async function ensureBatchQueue(
  nc: NatsConnection,
  jsm: JetStreamManager,
  settings: BatchQueueSettings,
): Promise<{ rasters: ObjectStore; runs: KV }> {
  const window = nanos(Math.min(settings.duplicateWindowS, settings.resultMaxAgeS) * 1000);
  await ensureStream(jsm, {
    name: BATCH_TASK_STREAM,
    subjects: [`${BATCH_TASK_SUBJECT_PREFIX}.>`],
    storage: StorageType.File,
    retention: RetentionPolicy.Workqueue,
    discard: DiscardPolicy.Old,
    num_replicas: settings.replicas,
    max_age: nanos(settings.resultMaxAgeS * 1000),
    duplicate_window: window,
  });
  await ensureStream(jsm, {
    name: BATCH_RESULT_STREAM,
    subjects: [`${BATCH_RESULT_SUBJECT_PREFIX}.>`],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    num_replicas: settings.replicas,
    max_age: nanos(settings.resultMaxAgeS * 1000),
    duplicate_window: window,
  });
  await ensureBatchTaskConsumer(jsm, settings);
  try {
    const rasters = await atReplicas(objectStoreStreamName(BATCH_RASTER_BUCKET), settings.replicas, () =>
      new Objm(nc).create(BATCH_RASTER_BUCKET, {
        storage: StorageType.File,
        replicas: settings.replicas,
        ttl: nanos(settings.resultMaxAgeS * 1000),
      }),
    );
    // The records of runs that are over (batch-runs.ts) live as long as the tasks they outdate.
    const runs = await openRunRecords(nc, settings.replicas, settings.resultMaxAgeS).catch((err: unknown) => {
      if (err instanceof LanemapError) throw err;
      throw new StreamSetupError(`cannot open KV bucket ${BATCH_RUN_BUCKET}: ${(err as Error).message}`, {
        cause: err,
      });
    });
    return { rasters, runs };
  } catch (err) {
    if (err instanceof LanemapError) throw err;
    throw new StreamSetupError(`cannot open object store ${BATCH_RASTER_BUCKET}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/**
 * Creates or updates the task stream's shared durable pull consumer: explicit ack, every task from
 * the start, ack wait and max deliveries from `settings`. The start-up ({@link ensureBatchQueue})
 * and a running worker that lost the consumer (vanished-consumer.ts) both create it here.
 * @throws StreamSetupError (NATS_SETUP) when the consumer cannot be read, created or updated.
 */
export async function ensureBatchTaskConsumer(
  jsm: JetStreamManager,
  settings: Pick<BatchQueueSettings, "ackWaitMs" | "maxDeliver">,
): Promise<void> {
  const wanted: Partial<ConsumerConfig> = {
    ack_wait: nanos(settings.ackWaitMs),
    max_deliver: settings.maxDeliver,
  };
  try {
    const info = await jsm.consumers.info(BATCH_TASK_STREAM, BATCH_TASK_CONSUMER).catch((err: unknown) => {
      if (err instanceof JetStreamApiError) return undefined;
      throw err;
    });
    if (!info)
      await jsm.consumers
        .add(BATCH_TASK_STREAM, {
          durable_name: BATCH_TASK_CONSUMER,
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          ...wanted,
        })
        .catch(async (err: unknown) => {
          if (!(await jsm.consumers.info(BATCH_TASK_STREAM, BATCH_TASK_CONSUMER).catch(() => undefined)))
            throw err;
        });
    else if (info.config.ack_wait !== wanted.ack_wait || info.config.max_deliver !== wanted.max_deliver)
      await jsm.consumers.update(BATCH_TASK_STREAM, BATCH_TASK_CONSUMER, wanted);
  } catch (err) {
    throw new StreamSetupError(
      `cannot create or update consumer ${BATCH_TASK_CONSUMER}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}
