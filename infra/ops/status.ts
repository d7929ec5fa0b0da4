/**
 * `lanemap ops status`: both lanes at a glance. The batch side (published versions, CURRENT, its
 * watermark and age) comes from where the deployment publishes: the data directory alone with
 * `LANEMAP_STORAGE=files`, so it is reported even when NATS is down; the JetStream view store with
 * `nats` (through PublishedViews, as serving reads it), whose unavailability is then reported too;
 * the NATS side (live view, ingest stream, speed consumer, dead letters, model registry) is reported
 * when a connection is given, and as unavailable, with the reason, otherwise; so are the replicas
 * and the cluster placement (leader, peers) of every lanemap stream and bucket.
 */
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { listViews, type ViewListing } from "../../batch/index.js";
import {
  CATALOGUE_BUCKET,
  INGEST_STREAM,
  LIVE_BUCKET,
  LiveView,
  parseLiveRasterBucket,
  MODEL_BUCKET,
  VIEW_POINTER_BUCKET,
  NatsModelRegistry,
  NatsPublishedViews,
  archiveUsage,
  checkReplicaAgreement,
  kvStreamName,
  lanemapStreamPlacements,
  replicaShortfall,
  retryTransient,
  type ArchiveUsage,
  type DamagedVersion,
  type ReplicaAgreement,
  type ReplicaDivergence,
  speedLaneStatus,
  type StreamPlacement,
  type CurrentModel,
  type LiveEntry,
  type SpeedLaneStatus,
  isStreamNotFound,
} from "../../shared/adapters/nats/index.js";
import {
  describeError,
  describeIngestStreamBehind,
  ingestStreamBehind,
  utcTimestamp,
  type Config,
  type IngestStreamBehind,
  type PublishedViews,
  type RecordedSeq,
} from "../../shared/index.js";
import { ArchiveStore } from "../../shared/adapters/archive/index.js";
import { viewCacheDir } from "../platform/views.js";
import { collectBatchRuns, type BatchRunsStatus } from "./batch-runs.js";

/** The current batch view. */
export interface CurrentBatchStatus {
  readonly name: string;
  readonly watermark: number;
  readonly modelVersion: string;
  readonly tiles: ViewListing["tiles"];
  readonly cells: number;
  readonly finishedAt: string;
  /** Seconds since the run finished. */
  readonly ageS: number;
}

/** The live view. */
export interface LiveStatus {
  readonly size: number;
  /** KV revision of the last change: the live view's position. */
  readonly position: number;
  /** Results at or below the current watermark: serving ignores them, `ops expire` removes them. */
  readonly absorbed: number;
  /** Results above the watermark: what the speed lane adds to the batch view. */
  readonly aboveWatermark: number;
  /** The newest `processedAt` of any result, or null when the view is empty. */
  readonly newestProcessedAt: string | null;
  /** Seconds since then: how long ago the speed lane last wrote a result. */
  readonly lagS: number | null;
  /**
   * The object stores holding its spilled rasters (one per period, `lanemap-live-rasters-<yyyymm>`,
   * and the legacy `lanemap-live-rasters` while it exists), oldest first, with what each holds and
   * how many current results name it: one no result names, of a past period, is what `ops expire`
   * drops. Taken from the stream listing: no request of its own.
   */
  readonly rasterBuckets: readonly {
    readonly bucket: string;
    readonly period: string | null;
    readonly messages: number;
    readonly bytes: number;
    readonly named: number;
  }[];
}

/** Everything `ops status` reports. */
export interface OpsStatus {
  readonly at: string;
  readonly dataDir: string;
  readonly batch: {
    /** Where the versions were read: the data directory's files or the NATS view store. */
    readonly storage: Config["storage"]["backend"];
    readonly current: CurrentBatchStatus | null;
    /** Every complete version, oldest first. */
    readonly versions: readonly ViewListing[];
    /** Why the versions could not be read (the NATS view store unavailable); absent when they were. */
    readonly error?: string;
    /**
     * NATS view store: published versions that lost objects (left out of `versions`), and CURRENT
     * when it names an incomplete one; each makes the report degraded. Absent with `files`.
     */
    readonly damaged?: readonly DamagedVersion[];
    /**
     * Batch runs: the one in progress (the coordinator lease's holder, this data directory's lock)
     * and what an abandoned one left (checkpoint, reserved version, tasks), with what to do.
     * Reported, never a failed check: the exit code stays as `health` says.
     */
    readonly runs: BatchRunsStatus;
  };
  readonly nats:
    | { readonly ok: true; readonly url: string }
    | { readonly ok: false; readonly url: string | null; readonly error: string };
  /** Null when NATS is unavailable. */
  readonly live: LiveStatus | null;
  readonly ingest: SpeedLaneStatus["ingest"];
  /**
   * LANEMAP_TILES behind lanemap's record (deleted and recreated: shared/view/ingest-clock.ts),
   * compared with every listed version's watermark, every live result's sequence and, with
   * LANEMAP_STORAGE=files, every tombstone; null when it is not (or NATS is unavailable). Degraded.
   */
  readonly ingestBehind: IngestStreamBehind | null;
  readonly consumer:
    | (NonNullable<SpeedLaneStatus["consumer"]> & {
        /** Stream messages above the ack floor: neither classified nor dead-lettered yet. */
        readonly unacknowledged: number;
      })
    | null;
  readonly deadLetters: number | null;
  readonly model: { readonly current: CurrentModel | null; readonly versions: number } | null;
  /**
   * The master archive in NATS (LANEMAP_STORAGE=nats): its generations, what the catalogue names,
   * and the garbage (objects of removed tiles, older copies) `lanemap archive compact` would drop.
   * Null when NATS is unavailable or the catalogue bucket does not exist (a files archive).
   */
  readonly archive: ArchiveUsage | null;
  /**
   * Every lanemap stream and bucket (KV_*, OBJ_* included): replicas, and on a cluster the leader
   * and the other peers with whether they are current. Null when NATS is unavailable.
   */
  readonly streams: readonly StreamPlacement[] | null;
  /**
   * Every lanemap stream's copies compared across the nodes of LANEMAP_NATS_MONITOR_URLS (each
   * node's own /jsz): the nodes as they answered, and the copies that diverged. Null when no
   * monitoring URL is configured (not checked) or NATS is unavailable.
   */
  readonly replicaCopies: {
    readonly nodes: readonly (
      | { readonly url: string; readonly node: string }
      | { readonly url: string; readonly node: null; readonly error: string }
    )[];
    readonly divergences: readonly ReplicaDivergence[];
  } | null;
  /**
   * ok: everything configured answers and every stream has all its replicas; degraded: NATS
   * answers but a stream or bucket lacks a replica (a node offline, a replica behind, no leader),
   * or a node's copy of one diverged from the others (LANEMAP_NATS_MONITOR_URLS);
   * unavailable: the configured NATS or view store does not answer. `ops status` exits 0, 3, 1.
   */
  readonly health: "ok" | "degraded" | "unavailable";
  /** What makes it degraded, one line per node or stream ("node n3 offline: KV_lanemap-live, ..."). */
  readonly degraded: readonly string[];
}

/**
 * Why a set of stream placements is degraded, grouped by node so an operator reads "node n3
 * offline" once rather than once per bucket; empty when every stream is healthy. A stream short of
 * placed replicas (unplaced, or num_replicas below `configured`, LANEMAP_NATS_REPLICAS: see
 * replicaShortfall) is named with its repair, `lanemap ops repair-replicas --stream S`.
 */
export function degradedReasons(streams: readonly StreamPlacement[], configured = 1): string[] {
  const offline = new Map<string, string[]>();
  const behind = new Map<string, string[]>();
  const out: string[] = [];
  for (const p of streams) {
    const short = replicaShortfall(p, configured);
    if (p.healthy && short === null) continue;
    if (p.noAnswer !== undefined) {
      out.push(`${p.stream}: no answer now (${p.noAnswer})`);
      continue;
    }
    if (p.cluster === null) {
      out.push(
        `${p.stream} asks for ${p.replicas} replicas on a single server (not clustered, it keeps 1 copy): set LANEMAP_NATS_REPLICAS=1, or run a cluster of ${p.replicas} nodes`,
      );
      continue;
    }
    if (p.cluster !== null && p.leader === null) out.push(`${p.stream} has no leader (no quorum)`);
    for (const r of p.peers) {
      if (r.offline) offline.set(r.name, [...(offline.get(r.name) ?? []), p.stream]);
      else if (!r.current) behind.set(r.name, [...(behind.get(r.name) ?? []), `${p.stream} (lag ${r.lag})`]);
    }
    if (short !== null)
      out.push(
        `${p.stream}: ${short.why}; repair: lanemap ops repair-replicas --stream ${p.stream} (README "Operations")`,
      );
  }
  for (const [node, names] of offline)
    out.unshift(`node ${node} offline (not heard from): ${names.join(", ")} without it`);
  for (const [node, names] of behind) out.push(`node ${node} behind on ${names.join(", ")}`);
  return out;
}

/**
 * Why the copies of the streams make the cluster degraded: one line per diverged copy, naming the
 * stream, the node, both sets of figures and the remedy; one per monitoring URL that did not answer.
 */
export function divergenceReasons(agreement: ReplicaAgreement): string[] {
  const out: string[] = [];
  for (const n of agreement.nodes)
    if (n.node === null)
      out.push(`node monitoring ${n.url} does not answer (${n.error}): its copies not compared`);
  for (const d of agreement.divergences)
    out.push(
      `${d.stream} diverged on node ${d.node}${d.isLeader ? " (its leader)" : ""}: ${d.why}` +
        // One node "agreeing" is the leader's copy alone, compared with for want of a majority.
        `${d.agreeing.length > 1 ? ` (${d.agreeing.join(", ")} agree)` : d.agreeing.length === 1 ? ` (no majority agrees: compared with ${d.agreeing[0]}'s copy)` : ""}; ` +
        `repair: lanemap ops repair-replicas --stream ${d.stream} (README "Operations", replicas that diverge)`,
    );
  return out;
}

/** How `collectStatus` reaches NATS: a connection, or why there is none. */
export type NatsAccess =
  | { readonly nc: NatsConnection; readonly url: string }
  | { readonly nc: null; readonly url: string | null; readonly error: string };

/** Options of {@link collectStatus}. */
export interface StatusOptions {
  readonly dataDir: string;
  readonly nats: NatsAccess;
  readonly logger: Logger;
  /** The clock (tests pass a fixed one; default now). */
  readonly now?: Date;
  /**
   * The deployment's configuration: with `storage.backend` `nats` the published views are read
   * from NATS (infra/platform/views.ts openPublishedViews). Default: the files of `dataDir`.
   */
  readonly config?: Config;
}

/**
 * Whether a KV bucket exists (its stream is `KV_<bucket>`). Status only reads: opening a bucket
 * through its adapter would create it, on a server that may be the wrong one.
 */
async function bucketExists(jsm: JetStreamManager, bucket: string): Promise<boolean> {
  try {
    await jsm.streams.info(`KV_${bucket}`);
    return true;
  } catch (err) {
    if (isStreamNotFound(err)) return false;
    throw err;
  }
}

const seconds = (from: string, to: Date): number => Math.max(0, (to.getTime() - Date.parse(from)) / 1000);

/**
 * The versions in the NATS view store. Status only reads: no view bucket yet is no version (opening
 * the store would create its buckets).
 * @throws when NATS is unavailable or the store cannot be read.
 */
/** How long status retries the view store through a leader election (a node just died). */
const VIEW_STORE_RETRY_MS = 10_000;

/** How long status retries each NATS-side read (see collectStatus). */
const NATS_READ_RETRY_MS = 15_000;

async function natsVersions(
  options: StatusOptions,
): Promise<{ versions: ViewListing[]; damaged: DamagedVersion[] }> {
  const { nats, config } = options;
  if (nats.nc === null) throw new Error(nats.error);
  if (!config) return { versions: [], damaged: [] };
  const nc = nats.nc;
  // Idempotent reads (the open creates nothing that exists): retried while a leader is elected.
  return retryTransient(
    "listing the published views",
    async () => {
      if (!(await bucketExists(await jetstreamManager(nc, { checkAPI: false }), VIEW_POINTER_BUCKET)))
        return { versions: [], damaged: [] };
      // Read-only: status creates nothing (and needs no meta leader to open the buckets).
      const store = await NatsPublishedViews.openExisting(nc, { cacheDir: viewCacheDir(config.dataDir) });
      const views: PublishedViews = store;
      return { versions: await listViews(options.dataDir, views), damaged: await store.damaged() };
    },
    { deadlineMs: VIEW_STORE_RETRY_MS, logger: options.logger },
  );
}

/** Collects the status of both lanes. Never throws for NATS trouble: it is reported instead. */
export async function collectStatus(options: StatusOptions): Promise<OpsStatus> {
  const now = options.now ?? new Date();
  const storage = options.config?.storage.backend ?? "files";
  // One read of CURRENT (inside listViews) for both the list and the current version.
  let versions: ViewListing[] = [];
  let damaged: DamagedVersion[] | undefined;
  let error: string | undefined;
  if (storage === "files") versions = await listViews(options.dataDir);
  else {
    try {
      ({ versions, damaged } = await natsVersions(options));
    } catch (err) {
      error = `the published views are in NATS (LANEMAP_STORAGE=nats): ${describeError(err)}`;
    }
  }
  const current = versions.find((v) => v.current);
  const runs = await collectBatchRuns({ dataDir: options.dataDir, nc: options.nats.nc, now });
  const batch = {
    storage,
    runs,
    ...(error === undefined ? {} : { error }),
    ...(damaged === undefined ? {} : { damaged }),
    current: current
      ? {
          name: current.name,
          watermark: current.watermark,
          modelVersion: current.modelVersion,
          tiles: current.tiles,
          cells: current.cells,
          finishedAt: utcTimestamp(current.finishedAt),
          ageS: seconds(current.finishedAt, now),
        }
      : null,
    versions,
  };
  const base = { at: now.toISOString(), dataDir: options.dataDir, batch };
  const unavailable = (url: string | null, error: string): OpsStatus => ({
    ...base,
    // NATS merely not configured (no URL) leaves the files deployment ok.
    health: url !== null || batch.error !== undefined ? "unavailable" : "ok",
    degraded: [],
    nats: { ok: false, url, error },
    live: null,
    ingest: null,
    ingestBehind: null,
    consumer: null,
    deadLetters: null,
    model: null,
    archive: null,
    streams: null,
    replicaCopies: null,
  });
  const access = options.nats;
  if (access.nc === null) return unavailable(access.url, access.error);

  try {
    const nc = access.nc;
    const jsm = await jetstreamManager(nc, { checkAPI: false });
    // Each read is retried through a leader election; the live view and the registry are read
    // through consumers, which nats-server before 2.12 may place on a dead node (a timeout, and
    // the next attempt lands elsewhere: README "Scaling out", Limits).
    const retried = <T>(what: string, op: () => Promise<T>) =>
      retryTransient(what, op, { deadlineMs: NATS_READ_RETRY_MS, logger: options.logger });
    const [lane, streams] = await retried("reading the streams", () =>
      Promise.all([speedLaneStatus(jsm), lanemapStreamPlacements(nc, jsm)]),
    );
    // A bucket nobody created yet is an empty live view / registry, reported as such.
    let entries: LiveEntry[] = [];
    let position = 0;
    if (await retried("looking for the live view", () => bucketExists(jsm, LIVE_BUCKET))) {
      // Consumer-free (STREAM.MSG.GET per key): a watch's consumer may be placed on a dead node
      // before nats-server 2.12, and three such placements in a row outlasted the retries (ops
      // status said "nats UNAVAILABLE: reading the live view: timeout" with one node of three down).
      entries = await retried("reading the live view", async () => (await LiveView.open(nc)).list());
      // The position is the bucket's last sequence, which counts removals too (a follower's
      // position after its replay); read after the entries, so none listed is newer than it.
      position = await retried("reading the live view's position", async () =>
        jsm.streams.info(kvStreamName(LIVE_BUCKET)).then((i) => i.state.last_seq),
      );
    }
    const watermark = batch.current?.watermark ?? null;
    let newest: string | null = null;
    let absorbed = 0;
    for (const e of entries) {
      if (newest === null || Date.parse(e.result.processedAt) > Date.parse(newest))
        newest = e.result.processedAt;
      if (watermark !== null && e.result.ingestSeq <= watermark) absorbed++;
    }
    const named = new Map<string, number>();
    for (const e of entries)
      if (e.rasterBucket) named.set(e.rasterBucket, (named.get(e.rasterBucket) ?? 0) + 1);
    const rasterBuckets = streams.flatMap((p) => {
      const bucket = p.stream.startsWith("OBJ_") ? p.stream.slice("OBJ_".length) : "";
      const period = parseLiveRasterBucket(bucket);
      return period === undefined
        ? []
        : [{ bucket, period, messages: p.messages, bytes: p.bytes, named: named.get(bucket) ?? 0 }];
    });
    rasterBuckets.sort((a, b) => (a.period ?? "").localeCompare(b.period ?? ""));
    let model: OpsStatus["model"] = { current: null, versions: 0 };
    if (await retried("looking for the model registry", () => bucketExists(jsm, MODEL_BUCKET))) {
      model = await retried("reading the model registry", async () => {
        const registry = await NatsModelRegistry.open(nc);
        const [currentModel, models] = await Promise.all([registry.current(), registry.records()]);
        return { current: currentModel, versions: models.length };
      });
    }
    // Read-only (creates nothing): what the catalogue names against what the generations hold.
    const archive = (await retried("looking for the archive's catalogue", () =>
      bucketExists(jsm, CATALOGUE_BUCKET),
    ))
      ? await retried("reading the archive's usage", () => archiveUsage(nc))
      : null;
    // Each node's own copies (STREAM.INFO answers for the leader's only): a copy can diverge while
    // its leader reports it current (nats-server 2.9 after abrupt stops, README "Operations").
    const monitorUrls = options.config?.storage.monitorUrls ?? [];
    const agreement = monitorUrls.length > 0 ? await checkReplicaAgreement(monitorUrls) : null;
    // The ingest stream against lanemap's record, from what status has read already (plus the
    // tombstones of a files archive: reading the nats one would open, i.e. create, its buckets).
    const records: RecordedSeq[] = [
      ...versions.map((v) => ({ seq: v.watermark, source: `the watermark of batch view ${v.name}` })),
      ...entries.map((e) => ({ seq: e.result.ingestSeq, source: `live result of tile ${e.result.tileId}` })),
    ];
    if (storage === "files")
      for await (const r of new ArchiveStore(options.dataDir).removals())
        if (r.ingestSeq !== null)
          records.push({
            seq: r.ingestSeq,
            source: `the tombstone of tile ${r.tileId}, removed ${r.removedAt}`,
          });
    const ingestBehind = ingestStreamBehind(INGEST_STREAM, lane.ingest, records);
    const degraded = [
      ...degradedReasons(streams, options.config?.storage.replicas),
      ...(agreement ? divergenceReasons(agreement) : []),
      ...(batch.damaged ?? []).map(
        (v) =>
          `published view ${v.name} lost objects (${v.problems.join(", ")}): it cannot be served; a replica that diverged? (README "Operations")`,
      ),
      ...(archive && archive.missing.length > 0
        ? [
            `archive: ${archive.missing.length} object(s) the catalogue names are stored in no generation (e.g. ${archive.missing[0]!.slice(0, 12)}): those tiles cannot be read; a replica that diverged? (README "Operations")`,
          ]
        : []),
      ...(ingestBehind ? [describeIngestStreamBehind(ingestBehind)] : []),
    ];
    return {
      ...base,
      health: batch.error !== undefined ? "unavailable" : degraded.length > 0 ? "degraded" : "ok",
      degraded,
      nats: { ok: true, url: access.url },
      live: {
        size: entries.length,
        position,
        absorbed,
        aboveWatermark: entries.length - absorbed,
        newestProcessedAt: newest === null ? null : utcTimestamp(newest),
        lagS: newest === null ? null : seconds(newest, now),
        rasterBuckets,
      },
      ingest: lane.ingest,
      ingestBehind,
      consumer: lane.consumer
        ? {
            ...lane.consumer,
            unacknowledged: Math.max(0, (lane.ingest?.lastSeq ?? 0) - lane.consumer.ackFloorSeq),
          }
        : null,
      deadLetters: lane.deadLetters,
      model,
      archive,
      streams,
      replicaCopies: agreement
        ? {
            nodes: agreement.nodes.map((n) =>
              n.node === null ? { url: n.url, node: null, error: n.error } : { url: n.url, node: n.node },
            ),
            divergences: agreement.divergences,
          }
        : null,
    };
  } catch (err) {
    // A server that accepts connections but not JetStream requests is as good as down here.
    options.logger.debug({ err: describeError(err) }, "reading the NATS side failed");
    return unavailable(access.url, describeError(err));
  }
}
