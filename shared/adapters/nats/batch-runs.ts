/**
 * Records of batch runs that are over, so that a task of such a run is never classified again
 * (issue 14, the operator's check: after the task stream's leader was SIGKILLed, the restarted
 * node's copy of LANEMAP_BATCH_TASKS on nats-server 2.9.10 kept 17 tasks its peers had
 * acknowledged and removed; a leader change or a re-created consumer could then hand workers the
 * tasks of a finished run, classified for nobody).
 *
 * When a run is over (published, failed other than by an interruption, or its checkpoint
 * discarded by `batch run --full`), its coordinator records, *before* it removes the run's tasks
 * still queued, the task stream's last sequence at that moment under the run id in the KV bucket
 * BATCH_RUN_BUCKET. A task of run R stored at a sequence at or below R's record was published
 * before R was over: a worker acknowledges it unclassified, and a coordinator resuming R's
 * checkpoint does not count it as a task of its own still queued.
 *
 * Sequences, not clocks: a run resumed after a failure keeps its run id, and its new tasks are
 * stored after the record, at higher sequences, so they are classified. A stream deleted and
 * created again numbers from 1 again, so the record names the stream's creation time, and a record
 * of another stream than the one a task came from is ignored. Every mistake this rule can make (a
 * record not read yet, a read that failed) is a task classified for nobody, as before; never a
 * task of a live run dropped.
 *
 * The bucket's max_age is the task stream's: a record outlives every task stored before it.
 */
import { Kvm, type KV } from "@nats-io/kv";
import { StorageType, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { z } from "zod";
import { BATCH_RUN_BUCKET, BATCH_TASK_STREAM } from "./names.js";
import { LEADER_READS } from "./leader-reads.js";
import { atReplicas, ensureReplicas, kvStreamName } from "./replicas.js";

/** Why a run is over, as its record says. */
export type RunEnd = "over" | "discarded";

/** The record of a run that is over (the value under its run id, JSON). */
export interface ClosedRun {
  readonly runId: string;
  /** Every task of the run stored at or below this task-stream sequence is dead. */
  readonly lastTaskSeq: number;
  /** The task stream's creation time (ISO 8601, the server's), naming the stream the sequence is of. */
  readonly taskStreamCreated: string;
  /** When the record was made (ISO 8601, the recording process's clock; for people only). */
  readonly closedAt: string;
  readonly end: RunEnd;
}

const closedRunSchema = z.object({
  runId: z.string().min(1),
  lastTaskSeq: z.number().int().nonnegative(),
  taskStreamCreated: z.string().min(1),
  closedAt: z.string(),
  end: z.enum(["over", "discarded"]),
});

/**
 * Opens the bucket of run records, creating it when absent (file storage, `replicas` copies,
 * max_age `maxAgeS`, reads through the stream leader) and raising an existing one's replicas.
 * @throws ReplicasRefusedError (NATS_SETUP) when the cluster cannot place `replicas`; what
 *   JetStream throws otherwise.
 */
export async function openRunRecords(nc: NatsConnection, replicas: number, maxAgeS: number): Promise<KV> {
  const kv = await atReplicas(kvStreamName(BATCH_RUN_BUCKET), replicas, () =>
    new Kvm(nc).create(BATCH_RUN_BUCKET, {
      history: 1,
      ttl: maxAgeS * 1000,
      storage: StorageType.File,
      replicas,
      ...LEADER_READS,
    }),
  );
  await ensureReplicas(
    await jetstreamManager(nc, { checkAPI: false }),
    kvStreamName(BATCH_RUN_BUCKET),
    replicas,
  );
  return kv;
}

/**
 * Records run `runId` as over: every task of it stored until now is dead (see the module).
 * Call before removing the run's tasks still queued, so a task a worker takes meanwhile is dropped
 * too.
 * @returns the record written.
 * @throws what JetStream throws (the bucket or the task stream unreachable): the caller logs it;
 *   the run's tasks still queued are then only removed, as before.
 */
export async function recordRunOver(nc: NatsConnection, runId: string, end: RunEnd): Promise<ClosedRun> {
  const jsm = await jetstreamManager(nc, { checkAPI: false });
  const info = await jsm.streams.info(BATCH_TASK_STREAM);
  const record: ClosedRun = {
    runId,
    lastTaskSeq: info.state.last_seq,
    taskStreamCreated: info.created,
    closedAt: new Date().toISOString(),
    end,
  };
  const kv = await new Kvm(nc).open(BATCH_RUN_BUCKET);
  await kv.put(runId, JSON.stringify(record));
  return record;
}

/**
 * The record of run `runId`, or null when it has none (a live or interrupted run, a run older than
 * the bucket's max_age, a coordinator of an earlier version) or the bucket does not exist.
 * @throws what JetStream throws when the bucket cannot be read.
 */
export async function readRunRecord(nc: NatsConnection, runId: string): Promise<ClosedRun | null> {
  let kv: KV;
  try {
    kv = await new Kvm(nc).open(BATCH_RUN_BUCKET);
  } catch {
    return null; // no bucket: no run was ever recorded over
  }
  const e = await kv.get(runId);
  if (!e || e.operation !== "PUT") return null;
  const parsed = closedRunSchema.safeParse(JSON.parse(e.string()));
  return parsed.success ? parsed.data : null;
}

/**
 * Whether a task of the run `record` is of, stored at `seq` in the task stream created at
 * `streamCreated`, was stored before the run was over (see the module).
 */
export const storedBeforeRunOver = (record: ClosedRun | null, seq: number, streamCreated: string): boolean =>
  record !== null && record.taskStreamCreated === streamCreated && seq <= record.lastTaskSeq;

/** How long a worker waits for a run's record before it goes on without it, in ms. */
const LOOKUP_MS = 2_000;

/**
 * A worker's view of the run records: each run's record read once and then again only when older
 * than `refreshMs`, so a worker asks the bucket once per run per `refreshMs`, not once per task.
 * A read that fails or takes over LOOKUP_MS counts as the record read before, or none (the task
 * is classified, as before the records).
 */
export class RunRecordCache {
  private readonly cache = new Map<string, { readonly at: number; readonly record: ClosedRun | null }>();

  constructor(
    private readonly nc: NatsConnection,
    private readonly refreshMs: number,
  ) {}

  /** The record of `runId`, null when none (or when it cannot be read now). */
  async get(runId: string): Promise<ClosedRun | null> {
    const now = Date.now();
    const hit = this.cache.get(runId);
    if (hit && now - hit.at < this.refreshMs) return hit.record;
    // Bounded: the task waits for this answer before its heartbeats start (a bucket whose leader
    // is being elected must not cost the task its ack_wait).
    let timer: NodeJS.Timeout | undefined;
    const record = await Promise.race([
      readRunRecord(this.nc, runId),
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error("timeout")), LOOKUP_MS))),
    ])
      .catch(() => hit?.record ?? null)
      .finally(() => clearTimeout(timer));
    // A worker lives through many runs: forget the oldest beyond a few hundred.
    if (this.cache.size >= 256) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(runId, { at: now, record });
    return record;
  }
}
