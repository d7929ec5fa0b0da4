/**
 * The batch runs `lanemap ops status` reports: who holds the coordinator lease (a distributed run in
 * progress, shared/adapters/nats/batch-lease.ts) or this data directory's batch lock, and what an
 * abandoned run left behind without either: its checkpoint (this machine's staging), a reserved
 * version number (NATS), tasks on the work queue (the stream executor). Before, a killed coordinator's
 * leftovers sat there silently (issue 14). Reads only; nothing here changes the exit code: a run
 * killed overnight is the next run's to resume, not a failed check.
 *
 * Clocks: ages are this machine's clock against the holder's or the server's timestamps, so they are
 * shown, never used to decide anything; what is live is decided by the lease's existence (the server
 * expires it) and the lock's pid.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  liveBatchLockOwner,
  listCheckpoints,
  type CheckpointListing,
  type LockOwner,
} from "../../batch/index.js";
import {
  BATCH_TASK_STREAM,
  BATCH_TASK_SUBJECT_PREFIX,
  BatchLeases,
  NatsPublishedViews,
  VIEW_RESERVATION_BUCKET,
  describeHolder,
  kvStreamName,
  type LeaseHolder,
  isStreamNotFound,
} from "../../shared/adapters/nats/index.js";
import { describeError, type VersionReservation } from "../../shared/index.js";
import { viewCacheDir } from "../platform/views.js";

/** A run in progress: the lease's holder (distributed) or the data directory's lock owner. */
export type ActiveRun =
  | {
      readonly kind: "lease";
      readonly holder: LeaseHolder;
      /** Server time of its last refresh, and the TTL it expires after. */
      readonly refreshedAt: string;
      readonly ttlS: number;
      readonly ageS: number;
    }
  | { readonly kind: "lock"; readonly owner: LockOwner; readonly ageS: number };

/** What an abandoned run left. */
export type AbandonedPart =
  | {
      readonly kind: "checkpoint";
      readonly runId: string;
      readonly dir: string;
      readonly ageS: number;
      /** Tiles finished of the run set's total; null when its file cannot be read. */
      readonly tiles: CheckpointListing["tiles"];
    }
  | {
      readonly kind: "reservation";
      readonly version: string;
      readonly holder: string;
      readonly ageS: number | null;
    }
  | { readonly kind: "tasks"; readonly runId: string; readonly tasks: number };

/** The batch runs section of `ops status`. */
export interface BatchRunsStatus {
  /** The runs in progress (none, the lease's holder, this data directory's lock owner, or both). */
  readonly active: readonly ActiveRun[];
  /** Leftovers of runs no lease or lock covers: empty when a run is active (they may be its own). */
  readonly abandoned: readonly AbandonedPart[];
  /** What to do about `abandoned`, one line each; empty when nothing is abandoned. */
  readonly advice: readonly string[];
  /** Why part of it could not be read (NATS unavailable), when it could not. */
  readonly error?: string;
}

/** What {@link batchRunsStatus} decides from. */
export interface BatchRunsInput {
  readonly now: Date;
  readonly dataDir: string;
  readonly lease: Omit<Extract<ActiveRun, { kind: "lease" }>, "kind" | "ageS"> | null;
  readonly lock: LockOwner | null;
  readonly checkpoints: readonly CheckpointListing[];
  readonly reservations: readonly VersionReservation[];
  /** Tasks waiting on the work queue, by run id. */
  readonly tasks: ReadonlyMap<string, number>;
}

const ageOf = (iso: string, now: Date): number => Math.max(0, (now.getTime() - Date.parse(iso)) / 1000);

/**
 * The section from what was read (pure): a lease or a lock means a run in progress, and then
 * nothing is abandoned; otherwise every checkpoint, reservation and waiting task is, with advice.
 */
export function batchRunsStatus(input: BatchRunsInput): Omit<BatchRunsStatus, "error"> {
  const { now } = input;
  const active: ActiveRun[] = [];
  if (input.lease)
    active.push({ kind: "lease", ...input.lease, ageS: ageOf(input.lease.holder.startedAt, now) });
  if (input.lock) active.push({ kind: "lock", owner: input.lock, ageS: ageOf(input.lock.startedAt, now) });
  if (active.length > 0) return { active, abandoned: [], advice: [] };
  const abandoned: AbandonedPart[] = [
    ...input.checkpoints.map((c): AbandonedPart => ({
      kind: "checkpoint",
      runId: c.runId,
      dir: c.dir,
      ageS: ageOf(c.modifiedAt, now),
      tiles: c.tiles,
    })),
    ...input.reservations.map((r): AbandonedPart => ({
      kind: "reservation",
      version: r.name,
      holder: r.holder,
      ageS: r.reservedAt === undefined ? null : ageOf(r.reservedAt, now),
    })),
    ...[...input.tasks].map(([runId, tasks]): AbandonedPart => ({ kind: "tasks", runId, tasks })),
  ];
  const advice: string[] = [];
  if (abandoned.some((a) => a.kind === "checkpoint"))
    advice.push(
      `a rerun on this machine (\`lanemap batch run\`, or the next \`batch schedule\` tick) resumes the newest checkpoint; to discard it instead: \`lanemap batch run --full\` (it recomputes every tile), or rm -r ${input.dataDir}/views/batch/.staging/<run>`,
    );
  if (abandoned.some((a) => a.kind === "reservation"))
    advice.push(
      `a reserved version number is skipped by the next publish and expires by itself (${VIEW_RESERVATION_BUCKET}, 6 h); the next run's retention removes a half-written upload; to discard it now: nats kv del ${VIEW_RESERVATION_BUCKET} <version>`,
    );
  if (abandoned.some((a) => a.kind === "tasks"))
    advice.push(
      `a resumed run takes its tasks back, and a \`--full\` run on the coordinator's machine removes them; to discard them: nats stream purge ${BATCH_TASK_STREAM} --subject ${BATCH_TASK_SUBJECT_PREFIX}.<run>`,
    );
  return { active, abandoned, advice };
}

/** One line per active run and per abandoned part (the text of `ops status`). */
export function describeBatchRuns(s: BatchRunsStatus, formatAge: (s: number) => string): string[] {
  const out: string[] = [];
  for (const a of s.active)
    out.push(
      a.kind === "lease"
        ? `coordinator lease held: ${describeHolder(a.holder)}; refreshed ${a.refreshedAt} (expires ${a.ttlS} s after its last refresh)`
        : `batch lock held in this data directory: run ${a.owner.runId} (pid ${a.owner.pid} on ${a.owner.hostname}, started ${a.owner.startedAt}, ${formatAge(a.ageS)} ago)`,
    );
  if (s.active.length === 0 && s.abandoned.length === 0 && s.error === undefined)
    out.push("no batch run in progress, none abandoned");
  for (const p of s.abandoned)
    out.push(
      p.kind === "checkpoint"
        ? `ABANDONED run ${p.runId}: checkpoint ${p.dir}, ${
            p.tiles === null
              ? "tiles unknown (its file cannot be read)"
              : p.tiles.total === null
                ? // The run set is recorded once the run has listed its tiles and dropped as it publishes.
                  `${p.tiles.done} tiles done, of a total it no longer records (stopped while publishing, or before it listed its tiles)`
                : `${p.tiles.done} of ${p.tiles.total} tiles done`
          }, last written ${formatAge(p.ageS)} ago`
        : p.kind === "reservation"
          ? `ABANDONED reservation of ${p.version} by ${p.holder}${p.ageS === null ? "" : `, ${formatAge(p.ageS)} old`}`
          : `ABANDONED ${p.tasks} task(s) of run ${p.runId} on ${BATCH_TASK_STREAM}`,
    );
  for (const a of s.advice) out.push(`  what to do: ${a}`);
  if (s.error !== undefined) out.push(`runs not fully read: ${s.error}`);
  return out;
}

/** Tasks waiting on the work queue, by run id (none when the stream does not exist). */
async function waitingTasks(nc: NatsConnection): Promise<Map<string, number>> {
  const jsm = await jetstreamManager(nc, { checkAPI: false });
  try {
    const info = await jsm.streams.info(BATCH_TASK_STREAM, {
      subjects_filter: `${BATCH_TASK_SUBJECT_PREFIX}.>`,
    });
    const out = new Map<string, number>();
    for (const [subject, n] of Object.entries(info.state.subjects ?? {}))
      if (n > 0) out.set(subject.slice(BATCH_TASK_SUBJECT_PREFIX.length + 1), n);
    return out;
  } catch (err) {
    if (isStreamNotFound(err)) return new Map();
    throw err;
  }
}

/** The reservations of the NATS view store, read only (none when its bucket does not exist). */
async function reservations(nc: NatsConnection, dataDir: string): Promise<VersionReservation[]> {
  const jsm = await jetstreamManager(nc, { checkAPI: false });
  try {
    await jsm.streams.info(kvStreamName(VIEW_RESERVATION_BUCKET));
  } catch (err) {
    if (isStreamNotFound(err)) return [];
    throw err;
  }
  const store = await NatsPublishedViews.openExisting(nc, { cacheDir: viewCacheDir(dataDir) });
  return store.reservations();
}

/**
 * Reads the batch runs: this data directory's lock and checkpoints always; with a NATS connection
 * the lease, the reservations and the work queue's tasks. Never throws: what could not be read is
 * named in `error`.
 */
export async function collectBatchRuns(options: {
  readonly dataDir: string;
  readonly nc: NatsConnection | null;
  readonly now: Date;
}): Promise<BatchRunsStatus> {
  const { dataDir, nc, now } = options;
  let error: string | undefined;
  let lease: BatchRunsInput["lease"] = null;
  let held: VersionReservation[] = [];
  let tasks = new Map<string, number>();
  if (nc) {
    try {
      const state = await BatchLeases.read(nc);
      if (state)
        lease = {
          holder: state.holder,
          refreshedAt: state.refreshedAt,
          ttlS: Math.round(state.ttlMs / 1000),
        };
      held = await reservations(nc, dataDir);
      tasks = await waitingTasks(nc);
    } catch (err) {
      error = `NATS: ${describeError(err)}`;
    }
  }
  const lock = liveBatchLockOwner(dataDir);
  // Checkpoints are opened (read-only) only when no run holds the lock or the lease: a run that
  // found its checkpoint locked by this read would count it unusable and start clean.
  const checkpoints =
    lease || lock
      ? []
      : await listCheckpoints(dataDir).catch((err: unknown) => {
          error = `the checkpoints in ${dataDir}: ${describeError(err)}`;
          return [];
        });
  const status = batchRunsStatus({ now, dataDir, lease, lock, checkpoints, reservations: held, tasks });
  return { ...status, ...(error === undefined ? {} : { error }) };
}
