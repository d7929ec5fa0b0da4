/**
 * The batch coordinator lease: one distributed batch run at a time across machines (issue 14: the
 * `lanemap-batch` unit enabled on two machines classified every tile twice, and the loser only
 * learned it at publish time, VIEW_POINTER_CONFLICT, then retried every tick).
 *
 * The lease is the key BATCH_LEASE_KEY of the KV bucket BATCH_LEASE_BUCKET, whose value names its
 * holder (host, pid, run, start, the version it builds, its progress). A coordinator takes it by a
 * KV create, which the server refuses while the key exists: the second coordinator is refused at
 * its start, naming the holder. The holder refreshes it every third of the TTL by a KV update on
 * the revision it last wrote; a refused update means the key expired and was taken (or is gone),
 * and the holder's run stops before it publishes (its `signal` aborts with BatchLeaseLostError),
 * its checkpoint kept. A clean end deletes the key (on its revision, so never another's lease).
 *
 * TTL: nats-server 2.9 has no per-key TTL, so the bucket's max_age is the lease's: a killed holder's
 * last write expires after it, and only then can another coordinator take over.
 *
 * Clocks: no wall-clock time of one machine is ever compared with another's or the server's. The
 * server ages the key by its own clock; the holder measures the time since its last acknowledged
 * refresh on its own monotonic clock, from the moment it SENT that refresh (so the server's copy
 * always expires after the holder believes it lapsed). A holder paused past the TTL (a GC pause,
 * SIGSTOP, a VM frozen) finds on waking that its lease lapsed by that clock, without asking anyone,
 * and its next refresh or its pre-publish confirmation fails; CURRENT's compare-and-set at publish
 * remains the last guard for a pause that falls between the confirmation and the pointer move.
 */
import { hostname } from "node:os";
import { JetStreamApiCodes, JetStreamApiError, StorageType, jetstreamManager } from "@nats-io/jetstream";
import { Kvm, type KV, type KvEntry } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { z } from "zod";
import { LanemapError } from "../../errors.js";
import { processStartStamp, recordedProcessGone } from "../../util/process.js";
import { isLeaderlessAnswer, isStreamNotFound, isTransientBrokerError } from "./jetstream-errors.js";
import { guarded, READ_RETRIES } from "./guarded.js";
import { LEADER_READS } from "./leader-reads.js";
import { BATCH_LEASE_BUCKET, BATCH_LEASE_KEY } from "./names.js";
import { atReplicas, ensureReplicas, kvStreamName } from "./replicas.js";

/** What the lease's value says about its holder. */
export const leaseHolderSchema = z.object({
  host: z.string(),
  pid: z.number().int(),
  runId: z.string(),
  /** The holder's own clock, ISO 8601 (shown, never compared with another clock). */
  startedAt: z.string(),
  /** The version it builds (the next number when it started), or null when it did not know yet. */
  building: z.string().nullable(),
  /** Tiles done of the run's total at its last refresh; absent before classification starts. */
  progress: z.object({ done: z.number().int(), total: z.number().int() }).optional(),
  /**
   * The holder's start stamp (boot id, PID namespace, start ticks: shared/util/process.ts), which
   * lets a coordinator of the same machine prove a holder gone; absent in older records.
   */
  processStart: z.string().optional(),
});

/** The holder of a batch coordinator lease. */
export type LeaseHolder = z.infer<typeof leaseHolderSchema>;

/** The lease as read: its holder, revision, and when the server stored its last refresh. */
export interface LeaseState {
  readonly holder: LeaseHolder;
  readonly revision: number;
  /** Server time of the last refresh (the key expires a TTL after it). */
  readonly refreshedAt: string;
  /** The lease's TTL (the bucket's max_age), ms. */
  readonly ttlMs: number;
}

/** One line naming a holder: "host h1, pid 42, run R, started T, building v000008 (12 of 80 tiles)". */
export function describeHolder(h: LeaseHolder): string {
  return (
    `host ${h.host}, pid ${h.pid}, run ${h.runId}, started ${h.startedAt}, ` +
    `building ${h.building ?? "a version not chosen yet"}` +
    (h.progress ? ` (${h.progress.done} of ${h.progress.total} tiles done)` : "")
  );
}

/** A coordinator holds the lease: this run is refused at its start (code BATCH_RUN_ACTIVE). */
export class BatchLeaseHeldError extends LanemapError {
  constructor(
    readonly holder: LeaseHolder | null,
    ttlMs: number,
  ) {
    super(
      "BATCH_RUN_ACTIVE",
      holder
        ? `another batch coordinator holds the lease: ${describeHolder(holder)}; this run was refused before it started (the lease expires ${Math.round(ttlMs / 1000)} s after its holder stops refreshing it)`
        : `another batch coordinator holds the lease (its record is unreadable); this run was refused before it started`,
    );
    this.name = "BatchLeaseHeldError";
  }
}

/** The holder's lease lapsed or was taken: its run stops before publishing (code BATCH_LEASE_LOST). */
export class BatchLeaseLostError extends LanemapError {
  constructor(why: string, options?: { cause?: unknown }) {
    super(
      "BATCH_LEASE_LOST",
      `batch coordinator lease lost: ${why}; this run stopped before publishing and its checkpoint is kept (a rerun on this machine resumes it)`,
      options,
    );
    this.name = "BatchLeaseLostError";
  }
}

/**
 * Whether a lease last acknowledged `sinceMs` ago (on the holder's monotonic clock, from the send
 * of that refresh) may still be the holder's: strictly within its TTL.
 */
export function leaseStillHeld(sinceMs: number, ttlMs: number): boolean {
  return sinceMs < ttlMs;
}

/** The period of a holder's refreshes: a third of the TTL, so two may fail before it lapses. */
export function refreshPeriodMs(ttlMs: number): number {
  return Math.max(100, Math.floor(ttlMs / 3));
}

function holderOf(e: KvEntry | null): LeaseHolder | null {
  if (!e || e.operation !== "PUT" || e.length === 0) return null;
  try {
    const parsed = leaseHolderSchema.safeParse(JSON.parse(new TextDecoder().decode(e.value)));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/**
 * Whether two records name the same coordinator run of the same process: host, pid, run and start
 * (and start stamp when both have one). What a refresh makes of its own record found at another
 * revision.
 */
function sameHolder(a: LeaseHolder, b: LeaseHolder): boolean {
  return (
    a.host === b.host &&
    a.pid === b.pid &&
    a.runId === b.runId &&
    a.startedAt === b.startedAt &&
    (a.processStart === undefined || b.processStart === undefined || a.processStart === b.processStart)
  );
}

/** How long a leader step-down request of the lease bucket may take. */
const STEPDOWN_TIMEOUT_MS = 3_000;
/** How long a write waits after a step-down before it is tried again (an election: 2–5 s on 2.9). */
const AFTER_STEPDOWN_MS = 2_500;

/**
 * A lease write that timed out: nats-server took the request and nobody answered. Not a refusal
 * for want of a leader (that answers at once: an election, which passes by itself).
 */
function writeTimedOut(err: unknown): boolean {
  return isTransientBrokerError(err) && !isLeaderlessAnswer(err);
}

/**
 * Asks the lease bucket's leader to step down (`$JS.API.STREAM.LEADER.STEPDOWN`): the remedy for a
 * leader that takes writes and never answers them. nats-server 2.9.10 left one so after the node
 * leading the bucket was SIGKILLed mid-run and restarted (an operator's check, 2 of 5 tries: every
 * write timed out for minutes, "KV_lanemap-batch-lease has high message lag" in the new leader's
 * log, until a step-down), so the holder lost its lease and every rerun failed "timeout". A
 * step-down of a healthy leader costs one election. Never throws.
 * @returns the node asked, or why it was not done, in words.
 */
async function stepDownLeaseLeader(nc: NatsConnection): Promise<string> {
  const stream = kvStreamName(BATCH_LEASE_BUCKET);
  try {
    const jsm = await jetstreamManager(nc, { checkAPI: false, timeout: STEPDOWN_TIMEOUT_MS });
    const leader = (await jsm.streams.info(stream)).cluster?.leader;
    if (!leader) return "not asked: the bucket has no leader or is not clustered";
    const m = await nc.request(`$JS.API.STREAM.LEADER.STEPDOWN.${stream}`, "", {
      timeout: STEPDOWN_TIMEOUT_MS,
    });
    const answer = m.json<{ error?: { description?: string } }>();
    if (answer.error) return `${leader} refused: ${answer.error.description ?? "?"}`;
    await new Promise((r) => setTimeout(r, AFTER_STEPDOWN_MS));
    return `${leader} stepped down`;
  } catch (err) {
    return `not done: ${err instanceof Error ? err.message : String(err)}`;
  }
}

/** A refused compare-and-set: the key's last revision is not the one given. */
function wrongRevision(err: unknown): boolean {
  return (
    err instanceof JetStreamApiError &&
    (err.code === JetStreamApiCodes.StreamWrongLastSequence ||
      err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
  );
}

/** How long a re-created lease bucket is given to place its copies before the repair checks them, ms. */
const RECREATE_SETTLE_MS = 10_000;

/** The lease bucket of a deployment. */
export class BatchLeases {
  private constructor(
    private readonly nc: NatsConnection,
    private readonly kv: KV,
    private readonly ttlMs: number,
    private readonly logger: Logger,
  ) {}

  /**
   * Opens the lease bucket, creating it when absent (file storage, `replicas` copies, max_age the
   * TTL) and bringing an existing one's max_age to `ttlMs` (LANEMAP_BATCH_LEASE_S changed).
   * @throws LanemapError STORAGE when JetStream does not answer.
   */
  static async open(
    nc: NatsConnection,
    options: { ttlMs: number; replicas?: number; logger: Logger },
  ): Promise<BatchLeases> {
    const stream = kvStreamName(BATCH_LEASE_BUCKET);
    return guarded(
      "batch coordinator lease: opening its bucket",
      async () => {
        const kv = await atReplicas(stream, options.replicas, () =>
          new Kvm(nc).create(BATCH_LEASE_BUCKET, {
            history: 1,
            ttl: options.ttlMs,
            storage: StorageType.File,
            replicas: options.replicas ?? 1,
            ...LEADER_READS,
          }),
        );
        const jsm = await jetstreamManager(nc, { checkAPI: false });
        const info = await jsm.streams.info(stream);
        const maxAgeNs = options.ttlMs * 1_000_000;
        if (info.config.max_age !== maxAgeNs) {
          // Config is the source of the TTL; a bucket made with another one follows it.
          await jsm.streams.update(stream, { ...info.config, max_age: maxAgeNs });
          options.logger.info(
            { bucket: BATCH_LEASE_BUCKET, ttlMs: options.ttlMs, was: info.config.max_age / 1_000_000 },
            "batch coordinator lease TTL set from LANEMAP_BATCH_LEASE_S",
          );
        }
        if (options.replicas !== undefined)
          await ensureReplicas(jsm, stream, options.replicas, options.logger);
        return new BatchLeases(nc, kv, options.ttlMs, options.logger);
      },
      READ_RETRIES,
      options.logger,
    );
  }

  /**
   * Deletes the lease bucket's stream and creates it again with the same configuration (replicas,
   * max_age...), when no coordinator holds the lease: the repair of a bucket whose copies diverged
   * (`ops repair-replicas`). The bucket holds nothing else anyone reads, so a fresh stream loses
   * nothing. Replacing a copy instead left nats-server 2.9.10 with a copy that stayed behind every
   * later write ("could not replace peer", "detected duplicate assignment"), 4 of 6 rounds of an
   * operator's check when the repair ran while the bucket held the last run's release; a fresh
   * stream is a fresh RAFT group. A coordinator that opens the bucket between the delete and the
   * create creates it itself (BatchLeases.open), with the same configuration.
   * @returns the steps taken, or the holder when one holds the lease (nothing changed then)
   * @throws LanemapError STORAGE when JetStream does not answer
   */
  static async recreateIfFree(
    nc: NatsConnection,
  ): Promise<{ readonly steps: readonly string[] } | { readonly holder: LeaseHolder }> {
    const stream = kvStreamName(BATCH_LEASE_BUCKET);
    return guarded("batch coordinator lease: re-creating its bucket", async () => {
      const jsm = await jetstreamManager(nc, { checkAPI: false });
      const { config } = await jsm.streams.info(stream);
      const holder = holderOf(await (await new Kvm(nc).open(BATCH_LEASE_BUCKET)).get(BATCH_LEASE_KEY));
      if (holder !== null) return { holder };
      await jsm.streams.delete(stream);
      await jsm.streams.add(config);
      // Back to the caller once every copy is placed and current, so a check right after compares them.
      for (const until = Date.now() + RECREATE_SETTLE_MS; Date.now() < until;) {
        const c = (await jsm.streams.info(stream)).cluster;
        const followers = c?.replicas ?? [];
        if (
          c === undefined ||
          (c.leader &&
            followers.length === config.num_replicas - 1 &&
            followers.every((r) => r.current && !r.offline))
        )
          break;
        await new Promise((r) => setTimeout(r, 250));
      }
      return {
        steps: [
          `deleted ${stream} (no coordinator held the lease)`,
          `created ${stream} again: R${config.num_replicas}, max_age ${config.max_age / 1e9} s`,
        ],
      };
    });
  }

  /**
   * The lease as it stands, read-only (`lanemap ops status`): null when no bucket or no holder.
   * @throws LanemapError STORAGE when JetStream does not answer.
   */
  static async read(nc: NatsConnection): Promise<LeaseState | null> {
    return guarded(
      "batch coordinator lease: reading it",
      async () => {
        const jsm = await jetstreamManager(nc, { checkAPI: false });
        let maxAge: number;
        try {
          maxAge = (await jsm.streams.info(kvStreamName(BATCH_LEASE_BUCKET))).config.max_age;
        } catch (err) {
          if (isStreamNotFound(err)) return null;
          throw err;
        }
        const e = await (await new Kvm(nc).open(BATCH_LEASE_BUCKET)).get(BATCH_LEASE_KEY);
        const holder = holderOf(e);
        if (!e || !holder) return null;
        return {
          holder,
          revision: e.revision,
          refreshedAt: e.created.toISOString(),
          ttlMs: maxAge / 1_000_000,
        };
      },
      READ_RETRIES,
    );
  }

  /**
   * Takes the lease for `holder` (host, pid and start stamp are this process's) or throws. A lease
   * whose holder is provably gone — a process of this very machine boot and PID namespace whose
   * pid is dead, a zombie or reused (shared/util/process.ts `recordedProcessGone`) — is taken over
   * at once, by a delete on its revision and a create, rather than refused until it expires: a
   * coordinator SIGKILLed on this machine, or one that failed without releasing it, would otherwise
   * refuse the next run for up to the TTL naming a dead pid (an operator's check, issue 14). A
   * holder on another machine is never proved gone here: its lease expires by the TTL.
   * @throws BatchLeaseHeldError (BATCH_RUN_ACTIVE) naming the holder when it is held;
   *   LanemapError STORAGE when JetStream does not answer.
   */
  async acquire(holder: Omit<LeaseHolder, "host" | "pid" | "processStart">): Promise<HeldBatchLease> {
    const stamp = processStartStamp(process.pid);
    const record: LeaseHolder = {
      host: hostname(),
      pid: process.pid,
      ...holder,
      ...(stamp === undefined ? {} : { processStart: stamp }),
    };
    let sentAt = performance.now();
    let revision: number;
    try {
      revision = await this.create(record);
    } catch (err) {
      if (!wrongRevision(err)) throw err;
      const held = await guarded(
        "batch coordinator lease: reading its holder",
        () => this.kv.get(BATCH_LEASE_KEY),
        READ_RETRIES,
      );
      const gone = holderOf(held);
      if (held !== null && gone !== null && sameHolder(gone, record)) {
        // This very acquire's create, which timed out and was tried again: its key, so its lease
        // (sentAt is still the first try's, so the holder counts the TTL from before it).
        return this.taken(record, held.revision, sentAt);
      }
      const why =
        gone === null || held === null ? null : recordedProcessGone({ ...gone, hostname: gone.host });
      if (why === null || held === null || gone === null) throw new BatchLeaseHeldError(gone, this.ttlMs);
      try {
        // On its revision: a lease taken meanwhile by a live coordinator is never deleted.
        await this.kv.delete(BATCH_LEASE_KEY, { previousSeq: held.revision });
        sentAt = performance.now();
        revision = await this.create(record);
      } catch (again) {
        if (!wrongRevision(again)) throw again;
        const now = await this.kv.get(BATCH_LEASE_KEY).catch(() => null);
        throw new BatchLeaseHeldError(holderOf(now), this.ttlMs);
      }
      this.logger.warn(
        { lease: BATCH_LEASE_BUCKET, was: describeHolder(gone), why },
        `batch coordinator lease taken over: its holder is gone (${why})`,
      );
    }
    return this.taken(record, revision, sentAt);
  }

  private taken(record: LeaseHolder, revision: number, sentAt: number): HeldBatchLease {
    this.logger.info(
      { lease: BATCH_LEASE_BUCKET, revision, ttlMs: this.ttlMs, building: record.building },
      "batch coordinator lease taken",
    );
    return new HeldBatchLease(this.kv, record, revision, sentAt, this.ttlMs, this.logger, () =>
      stepDownLeaseLeader(this.nc),
    );
  }

  /**
   * Creates the key with `record`: its revision.
   * @throws the broker's error when the key exists (see wrongRevision); LanemapError STORAGE otherwise.
   */
  private async create(record: LeaseHolder): Promise<number> {
    try {
      try {
        return await this.kv.create(BATCH_LEASE_KEY, JSON.stringify(record));
      } catch (err) {
        if (!writeTimedOut(err)) throw err;
        // Tried once more: one that finds the first's key is refused, and acquire then reads
        // this very record there and takes it as its own.
        const stepDown = await stepDownLeaseLeader(this.nc);
        this.logger.warn(
          { lease: BATCH_LEASE_BUCKET, err: err instanceof Error ? err.message : String(err), stepDown },
          `batch coordinator lease: taking it timed out; asked the bucket's leader to step down (${stepDown}) and trying once more`,
        );
        return await this.kv.create(BATCH_LEASE_KEY, JSON.stringify(record));
      }
    } catch (err) {
      if (wrongRevision(err)) throw err;
      throw new LanemapError(
        "STORAGE",
        `batch coordinator lease: taking it failed: ${err instanceof Error ? err.message : String(err)}`,
        { cause: err },
      );
    }
  }
}

/** A lease this process holds: refreshed in the background until released or lost. */
export class HeldBatchLease {
  private readonly lost = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  /** Refreshes and the confirmation run one at a time, in order. */
  private chain: Promise<void> = Promise.resolve();
  private released = false;

  constructor(
    private readonly kv: KV,
    private record: LeaseHolder,
    private revision: number,
    /** performance.now() when the last acknowledged write was sent. */
    private lastSentOk: number,
    private readonly ttlMs: number,
    private readonly logger: Logger,
    /** Asks the bucket's leader to step down; says what happened (stepDownLeaseLeader). */
    private readonly stepDown: () => Promise<string>,
  ) {
    this.schedule();
  }

  /** Why the last refresh failed, when it did (said when the lease lapses). */
  private lastFailure: string | null = null;

  /** Aborts, with a BatchLeaseLostError as its reason, when the lease is lost. */
  get signal(): AbortSignal {
    return this.lost.signal;
  }

  /** Updates what the next refresh says (the version built, the progress). */
  note(patch: Partial<Pick<LeaseHolder, "building" | "progress">>): void {
    this.record = { ...this.record, ...patch };
  }

  /**
   * Refreshes now and resolves while the lease is still this process's: what a publisher calls
   * before it uploads and before it moves CURRENT.
   * @throws BatchLeaseLostError when it is not.
   */
  confirm(): Promise<void> {
    return this.enqueue().then(() => {
      if (this.lost.signal.aborted) throw this.lost.signal.reason as Error;
    });
  }

  /**
   * Deletes the key when it is still ours, and stops refreshing. Never throws. A lease lost (a
   * pause past the TTL, a refresh refused) whose key still holds this coordinator's own record is
   * deleted too, on the revision found: the next run need not wait out the TTL for a dead run.
   */
  async release(): Promise<void> {
    this.released = true;
    clearTimeout(this.timer);
    await this.chain;
    let revision = this.revision;
    if (this.lost.signal.aborted) {
      const now = await this.kv.get(BATCH_LEASE_KEY).catch(() => null);
      const holder = holderOf(now);
      if (now === null || holder === null || !sameHolder(holder, this.record)) return;
      revision = now.revision;
    }
    try {
      await this.kv.delete(BATCH_LEASE_KEY, { previousSeq: revision });
      this.logger.info({ lease: BATCH_LEASE_BUCKET }, "batch coordinator lease released");
    } catch (err) {
      this.logger.warn(
        { lease: BATCH_LEASE_BUCKET, err: err instanceof Error ? err.message : String(err) },
        `batch coordinator lease not released; it expires by itself within ${Math.round(this.ttlMs / 1000)} s`,
      );
    }
  }

  private schedule(): void {
    if (this.released || this.lost.signal.aborted) return;
    this.timer = setTimeout(
      () => void this.enqueue().then(() => this.schedule()),
      refreshPeriodMs(this.ttlMs),
    );
    // The run keeps the process alive, not its lease.
    this.timer.unref();
  }

  private enqueue(): Promise<void> {
    this.chain = this.chain.then(() => this.refresh());
    return this.chain;
  }

  /**
   * The key holds this coordinator's own record, at a revision other than the one it last wrote:
   * the lease bucket's leader is a copy that missed some of this holder's refreshes (nats-server
   * 2.9 can let a diverged copy lead, `lanemap ops status` names it). No other coordinator took it
   * (its create would have been refused, or its record would be there), so the holder carries on
   * by a compare-and-set on the revision it found, which restarts the key's TTL on the server; a
   * lease taken in between fails that CAS and is lost as usual. An operator's check saw the holder
   * fail BATCH_LEASE_LOST naming itself as "another coordinator", then the next run refused for up
   * to the TTL naming the dead pid.
   */
  private async readopt(found: number, cause: unknown): Promise<void> {
    const sentAt = performance.now();
    try {
      const was = this.revision;
      this.revision = await this.kv.update(BATCH_LEASE_KEY, JSON.stringify(this.record), found);
      this.lastSentOk = sentAt;
      this.logger.warn(
        { lease: BATCH_LEASE_BUCKET, wrote: was, found, revision: this.revision },
        `batch coordinator lease: the bucket held this coordinator's own lease at revision ${found}, not ${was} it last wrote (its copies disagree? lanemap ops status); refreshed on it`,
      );
    } catch (err) {
      if (!wrongRevision(err)) {
        this.logger.warn(
          { lease: BATCH_LEASE_BUCKET, err: err instanceof Error ? err.message : String(err) },
          "batch coordinator lease refresh failed; retrying",
        );
        return;
      }
      const now = await this.kv.get(BATCH_LEASE_KEY).catch(() => null);
      const other = holderOf(now);
      this.lose(
        other && !sameHolder(other, this.record)
          ? `it expired and another coordinator took it (${describeHolder(other)})`
          : "it expired",
        cause,
      );
    }
  }

  private lose(why: string, cause?: unknown): void {
    if (this.lost.signal.aborted) return;
    const err = new BatchLeaseLostError(why, cause === undefined ? undefined : { cause });
    this.logger.error({ lease: BATCH_LEASE_BUCKET, code: err.code }, err.message);
    clearTimeout(this.timer);
    this.lost.abort(err);
  }

  private async refresh(): Promise<void> {
    if (this.released || this.lost.signal.aborted) return;
    const since = performance.now() - this.lastSentOk;
    if (!leaseStillHeld(since, this.ttlMs)) {
      // Paused (GC, SIGSTOP) or cut off past the TTL: the server may have expired the key and
      // another coordinator taken it; even a refresh that succeeded now could follow its publish.
      this.lose(
        `not refreshed for ${(since / 1000).toFixed(1)} s, over its ${Math.round(this.ttlMs / 1000)} s TTL ` +
          (this.lastFailure === null
            ? "(the process was paused or cut off from NATS)"
            : `(its refreshes failed, the last: ${this.lastFailure}; see lanemap ops status)`),
      );
      return;
    }
    const sentAt = performance.now();
    try {
      this.revision = await this.kv.update(BATCH_LEASE_KEY, JSON.stringify(this.record), this.revision);
      this.lastSentOk = sentAt;
      this.lastFailure = null;
    } catch (err) {
      if (wrongRevision(err)) {
        const now = await this.kv.get(BATCH_LEASE_KEY).catch(() => null);
        const other = holderOf(now);
        if (now !== null && other !== null && sameHolder(other, this.record)) {
          await this.readopt(now.revision, err);
          return;
        }
        this.lose(
          other ? `it expired and another coordinator took it (${describeHolder(other)})` : "it expired",
          err,
        );
        return;
      }
      // A leader election or a slow server: the next refresh tries again, while the TTL allows.
      // A write that timed out may be a leader that never answers: it is asked to step down.
      const message = err instanceof Error ? err.message : String(err);
      this.lastFailure = message;
      const stepDown = writeTimedOut(err) ? await this.stepDown() : undefined;
      this.logger.warn(
        { lease: BATCH_LEASE_BUCKET, err: message, ...(stepDown === undefined ? {} : { stepDown }) },
        stepDown === undefined
          ? "batch coordinator lease refresh failed; retrying"
          : `batch coordinator lease refresh timed out; asked the bucket's leader to step down (${stepDown}); retrying`,
      );
      if (stepDown !== undefined && !this.released && !this.lost.signal.aborted) return this.refresh();
    }
  }
}
