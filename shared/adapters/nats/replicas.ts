/**
 * JetStream replicas of lanemap's resources (`config.storage.replicas`, `LANEMAP_NATS_REPLICAS`):
 * R1 on a single server, R3 on a 3-node cluster, where a stream keeps accepting writes and
 * answering reads with one node down (a RAFT group of 3 keeps its quorum with 2).
 *
 * KV buckets and object stores are streams too (`KV_<bucket>`, `OBJ_<bucket>`), but nats.js's
 * `Kvm.create` / `Objm.create` only set replicas when they create the stream; on an existing one
 * they keep whatever it has. So every lanemap resource goes through {@link ensureReplicas} after it
 * is opened: a stream with fewer `num_replicas` than config is updated in place
 * (`$JS.API.STREAM.UPDATE`, which JetStream allows for num_replicas since 2.7): the server adds or
 * removes peers of the stream's RAFT group and catches the new peers up from the leader; the
 * stream's messages, sequences, KV revisions and object chunks stay as they are, and durable
 * consumers with the stream's replicas (num_replicas 0, "as the stream") follow it.
 *
 * Scaling up needs as many JetStream servers in the cluster as replicas; a single server refuses
 * replicas above 1 ("replicas > 1 not supported in non-clustered mode"), reported as NATS_SETUP.
 */
import { JetStreamApiError, type JetStreamManager, type StreamInfo } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { LanemapError } from "../../errors.js";
import { isStreamNotFound } from "./jetstream-errors.js";
import {
  ARCHIVE_GENERATION_BUCKET_PREFIX,
  ARCHIVE_OBJECT_BUCKET,
  ARCHIVE_POINTER_BUCKET,
  BAD_TILE_BUCKET,
  BATCH_LEASE_BUCKET,
  BATCH_RASTER_BUCKET,
  BATCH_RUN_BUCKET,
  BATCH_RESULT_STREAM,
  BATCH_TASK_STREAM,
  CATALOGUE_BUCKET,
  DLQ_STREAM,
  INGEST_STREAM,
  LIVE_BUCKET,
  LIVE_RASTER_BUCKET,
  LIVE_RASTER_BUCKET_PREFIX,
  MODEL_BUCKET,
  MODEL_OBJECT_BUCKET,
  REMOVAL_BUCKET,
  TILE_OBJECT_BUCKET,
  VIEW_OBJECT_BUCKET,
  VIEW_POINTER_BUCKET,
  VIEW_RESERVATION_BUCKET,
  VIEW_VERSION_BUCKET_PREFIX,
} from "./names.js";

/** The JetStream stream behind a KV bucket (nats.js and the server name it so). */
export const kvStreamName = (bucket: string): string => `KV_${bucket}`;
/** The JetStream stream behind an object store bucket. */
export const objectStoreStreamName = (bucket: string): string => `OBJ_${bucket}`;

/** Replicas to ask for, from config: at least 1. */
export interface ReplicaSettings {
  /** `config.storage.replicas` (1 on a single server, 3 on a 3-node cluster). */
  readonly replicas: number;
}

/** Checks a replicas count before JetStream sees it (JetStream allows 1 to 5). */
export function checkReplicas(replicas: number): number {
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > 5)
    throw new LanemapError(
      "NATS_SETUP",
      `JetStream replicas must be an integer from 1 to 5, not ${replicas}`,
    );
  return replicas;
}

/**
 * A stream or bucket asked for more replicas than the server or cluster can place: the error names
 * the resource, the replicas asked, what the server offers, and what to set. Not transient: the
 * same request fails the same way until the deployment changes, so nothing retries it.
 */
export class ReplicasRefusedError extends LanemapError {
  constructor(resource: string, wanted: number, clustered: boolean, options?: { cause?: unknown }) {
    const why = clustered
      ? `the cluster cannot place them (fewer than ${wanted} JetStream servers up, or not enough storage on them: ${causeMessage(options?.cause)})`
      : "this nats-server is not clustered and offers 1";
    const fix = clustered
      ? `bring the missing nodes back, or set LANEMAP_NATS_REPLICAS to the number of nodes up`
      : `set LANEMAP_NATS_REPLICAS=1, or run a cluster of ${wanted} nodes (README "Scaling out")`;
    super(
      "NATS_SETUP",
      `NATS_SETUP: ${resource} asks for ${wanted} replicas (LANEMAP_NATS_REPLICAS=${wanted}), but ${why}; ${fix}`,
      options,
    );
  }
}

function causeMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * The server's refusals of a replicas count (nats-server `server/errors.json`, matched as text: the
 * codes differ per version): a single server ("replicas > 1 not supported in non-clustered mode"),
 * a cluster short of peers ("no suitable peers for placement", or in 2.9 "insufficient
 * resources", which also covers storage: both named in the message).
 */
function refusalOf(err: unknown): "single" | "cluster" | undefined {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if (/non-clustered mode/i.test(e.message)) return "single";
    if (/no suitable peers|insufficient resources|peers? (are )?(offline|unavailable)/i.test(e.message))
      return "cluster";
  }
  return undefined;
}

/**
 * Runs `op`, which creates or rescales `resource` (a stream, `KV_<bucket>`, `OBJ_<bucket>`) at
 * `replicas`; a refusal of the replicas count becomes ReplicasRefusedError. Every other failure
 * is thrown as it was.
 * @throws ReplicasRefusedError (NATS_SETUP).
 */
export async function atReplicas<T>(
  resource: string,
  replicas: number | undefined,
  op: () => Promise<T>,
): Promise<T> {
  try {
    return await op();
  } catch (err) {
    throw replicasRefusal(resource, replicas, err) ?? err;
  }
}

/** `err` as a ReplicasRefusedError when it is the server refusing `replicas` for `resource`. */
export function replicasRefusal(
  resource: string,
  replicas: number | undefined,
  err: unknown,
): ReplicasRefusedError | undefined {
  const refusal = replicas !== undefined && replicas > 1 ? refusalOf(err) : undefined;
  return refusal
    ? new ReplicasRefusedError(resource, replicas!, refusal === "cluster", { cause: err })
    : undefined;
}

/**
 * The replicas a stream with `info` is given when config asks `wanted`: on a cluster, config raises
 * replicas and never lowers them. Why: every lanemap command opens the resources it reads, and
 * `LANEMAP_NATS_REPLICAS` defaults to 1, so one operator shell without the machine's env file
 * (`lanemap views list`) would otherwise drop every R3 stream of the cluster to R1 and with it the
 * cluster's protection against a node loss (issue 14, F4). Lowering is an operator's act
 * (`nats stream edit <stream> --replicas N`, README "Scaling out"). On a single server a stream
 * with more than 1 (an UPDATE the server took, see {@link refuseUnclustered}) holds one copy all the
 * same: config's 1 mends it.
 */
export function replicasToSet(info: StreamInfo, wanted: number): number {
  const current = info.config.num_replicas || 1;
  return isClustered(info) ? Math.max(current, wanted) : wanted;
}

/** Something that hears a warning: a pino Logger fits. */
export interface ReplicasWarnings {
  warn(fields: object, message: string): void;
}

/**
 * Warns (when `logger` is given) that config asks fewer replicas than `stream` has, and says that
 * they are kept. Returns whether it warned.
 */
export function warnIfFewer(
  stream: string,
  current: number,
  wanted: number,
  logger: ReplicasWarnings | undefined,
): boolean {
  if ((current || 1) <= wanted) return false;
  logger?.warn(
    { stream, replicas: current, configured: wanted },
    `${stream} has ${current} replicas and LANEMAP_NATS_REPLICAS asks ${wanted}: kept at ${current} (config never lowers replicas; README "Scaling out" says how to)`,
  );
  return true;
}

/**
 * Brings an existing stream (a lanemap stream, or the stream of a KV or object store bucket) up to
 * `replicas`, in place; a stream that already has them, or more, is left alone (no update request,
 * so any number of processes may call this at start-up). A stream with more replicas than asked
 * keeps them ({@link replicasToSet}) and `logger` hears a warning naming it.
 * @returns the stream's info after the change.
 * @throws ReplicasRefusedError (NATS_SETUP) when the server cannot place `replicas`; LanemapError
 *   (NATS_SETUP) when the stream cannot be read or the server refuses the change otherwise.
 */
export async function ensureReplicas(
  jsm: JetStreamManager,
  stream: string,
  replicas: number,
  logger?: ReplicasWarnings,
): Promise<StreamInfo> {
  const wanted = checkReplicas(replicas);
  try {
    const info = await jsm.streams.info(stream);
    refuseUnclustered(info, wanted);
    const current = info.config.num_replicas || 1;
    if (isClustered(info)) warnIfFewer(stream, current, wanted, logger);
    if (replicasToSet(info, wanted) === current) return info;
    const updated = await atReplicas(stream, wanted, () =>
      jsm.streams.update(stream, { ...info.config, num_replicas: replicasToSet(info, wanted) }),
    );
    // The rescaled group elects its leader anew; reads go through the leader (leader-reads.ts), so
    // a read right after the open would time out until then.
    return updated.cluster?.leader || !isClustered(updated)
      ? updated
      : await until(jsm, stream, "a leader after the rescale", (i) => !!i.cluster?.leader, RESCALE_LEADER_MS);
  } catch (err) {
    if (err instanceof ReplicasRefusedError) throw err;
    throw new LanemapError(
      "NATS_SETUP",
      `cannot set ${wanted} replica(s) on stream ${stream}: ${(err as Error).message}`,
      { cause: err },
    );
  }
}

/** How long {@link ensureReplicas} waits for a rescaled stream's new leader. */
export const RESCALE_LEADER_MS = 20_000;

/**
 * Refuses `replicas` above 1 for an existing stream on a server that is not clustered, before any
 * update: nats-server 2.9 refuses them on a create but takes them on an UPDATE (and keeps one copy),
 * so without this a single server silently "rescales" every stream to R3 (issue 14).
 * @throws ReplicasRefusedError (NATS_SETUP).
 */
export function refuseUnclustered(info: StreamInfo, replicas: number | undefined): void {
  if (replicas !== undefined && replicas > 1 && !isClustered(info))
    throw new ReplicasRefusedError(info.config.name, replicas, false);
}

/**
 * Whether the server holding a stream is part of a JetStream cluster: a clustered stream's info
 * names its cluster; a single server's names none (at most its own server as `leader`).
 */
export function isClustered(info: StreamInfo): boolean {
  return info.cluster?.name !== undefined;
}

/**
 * Seconds without a word from a replica after which it counts as offline. Why not the server's own
 * `offline` flag alone: nats-server sets it only when the node said goodbye or its statsz went
 * silent for minutes; a SIGKILLed node stays `offline: false`, `current: true` for 10 s and then
 * reads "not current" like a replica catching up (issue 14: `ops status` showed a dead node as
 * "behind"). A live replica answers its leader's heartbeats (once a second) and shows tens of ms.
 */
export const PEER_SILENT_OFFLINE_S = 3;

/** Where one stream lives in the cluster: what `lanemap ops status` shows per stream. */
export interface StreamPlacement {
  readonly stream: string;
  /** Replicas asked for (`num_replicas`). */
  readonly replicas: number;
  readonly messages: number;
  readonly bytes: number;
  /** The cluster's name, or null on a single server without a cluster block. */
  readonly cluster: string | null;
  /** The server whose RAFT leader writes go through, or null (single server, or no leader now). */
  readonly leader: string | null;
  /**
   * True when the stream has everything it asked for: on a cluster a leader, and every other
   * replica current and online; on a single server at most 1 replica (one with more, rescaled by an
   * UPDATE the server took, has one copy). A stream that is not is degraded (`lanemap ops status`
   * exits 3).
   */
  readonly healthy: boolean;
  /**
   * The other replicas: `current` when caught up with the leader; `offline` when the server says
   * so or the leader has not heard from it for {@link PEER_SILENT_OFFLINE_S} s (a dead node).
   */
  readonly peers: readonly {
    readonly name: string;
    readonly current: boolean;
    readonly offline: boolean;
    /** Seconds since the leader last heard from it. */
    readonly activeS: number;
    /** Operations it is behind the leader. */
    readonly lag: number;
  }[];
  /**
   * Set when nothing answered for the stream now (the listing left it out and its STREAM.INFO
   * failed: a leader election): why, in words. The other figures are then unknown (0, null).
   */
  readonly noAnswer?: string;
}

/** The placement of one stream from its StreamInfo (`StreamInfo.cluster`, nanoseconds to seconds). */
export function placementOf(info: StreamInfo): StreamPlacement {
  const c = info.cluster;
  const replicas = info.config.num_replicas || 1;
  const peers = (c?.replicas ?? []).map((p) => ({
    name: p.name,
    current: p.current,
    // active 0 and not current: this leader (elected after the node died) never heard from it.
    offline: p.offline === true || p.active / 1e9 > PEER_SILENT_OFFLINE_S || (!p.current && p.active === 0),
    activeS: p.active / 1e9,
    lag: p.lag ?? 0,
  }));
  // A clustered stream's info lists the replicas other than the leader: missing ones are gone too.
  const healthy =
    replicas === 1 ||
    (isClustered(info) &&
      !!c?.leader &&
      peers.length === replicas - 1 &&
      peers.every((p) => p.current && !p.offline));
  return {
    stream: info.config.name,
    replicas,
    messages: info.state.messages,
    bytes: info.state.bytes,
    cluster: c?.name ?? null,
    leader: c?.leader ?? null,
    healthy,
    peers,
  };
}

/** What {@link replicaShortfall} found: a stream with fewer placed replicas than it should have. */
export interface ReplicaShortfall {
  readonly stream: string;
  /** The replicas it should have: its num_replicas, or config's when that is more. */
  readonly wanted: number;
  /** Its num_replicas now. */
  readonly replicas: number;
  /** The nodes holding its replicas (leader first), as STREAM.INFO names them. */
  readonly placed: readonly string[];
  /** What is short, in words. */
  readonly why: string;
}

/**
 * Whether a clustered stream with a leader has fewer placed replicas than it should: fewer peers
 * than its num_replicas ("unplaced": a PEER.REMOVE with no spare server, or a repair whose scale-up
 * placed nothing), or num_replicas below `configured` (LANEMAP_NATS_REPLICAS; a repair whose
 * scale-up the server refused leaves the stream at the peers it has). Null when it is not short,
 * or has no leader or no answer (reported as such elsewhere). Why config counts: nothing else
 * remembers what a lowered stream had (nats-server 2.9 has no stream metadata).
 */
export function replicaShortfall(p: StreamPlacement, configured = 1): ReplicaShortfall | null {
  if (p.noAnswer !== undefined || p.cluster === null || p.leader === null) return null;
  const placed = [p.leader, ...p.peers.map((r) => r.name)];
  const wanted = Math.max(p.replicas, configured);
  if (placed.length >= wanted) return null;
  const why =
    placed.length < p.replicas
      ? `num_replicas ${p.replicas} but ${placed.length} placed (${placed.join(", ")}): ${p.replicas - placed.length} replica(s) unplaced`
      : `num_replicas ${p.replicas} (${placed.join(", ")}) where LANEMAP_NATS_REPLICAS asks ${configured}: lowered`;
  return { stream: p.stream, wanted, replicas: p.replicas, placed, why };
}

/** One page of the server's answer to `$JS.API.STREAM.LIST`, the fields read here. */
export interface StreamListPage {
  readonly total: number;
  readonly offset: number;
  readonly limit: number;
  readonly streams: readonly StreamInfo[] | null;
  /**
   * Streams the meta leader knows of whose info it did not get in time (nats-server fills it while
   * a stream's group has no leader, or a node does not answer).
   */
  readonly missing?: readonly string[] | null;
}

/**
 * Every stream lanemap may create under a fixed name (a deployment that does not use a part has
 * not created its streams): each is accounted for in `ops status` even when a listing page leaves
 * it out. OBJ_lanemap-views is the legacy layout of the published views (nats-views.ts), kept while
 * a deployment may hold versions there; the streams named per item are LANEMAP_STREAM_PREFIXES'.
 */
export const LANEMAP_STREAMS: readonly string[] = [
  INGEST_STREAM,
  DLQ_STREAM,
  BATCH_TASK_STREAM,
  BATCH_RESULT_STREAM,
  ...[
    MODEL_BUCKET,
    LIVE_BUCKET,
    CATALOGUE_BUCKET,
    BAD_TILE_BUCKET,
    REMOVAL_BUCKET,
    ARCHIVE_POINTER_BUCKET,
    VIEW_POINTER_BUCKET,
    VIEW_RESERVATION_BUCKET,
    BATCH_LEASE_BUCKET,
    BATCH_RUN_BUCKET,
  ].map(kvStreamName),
  ...[
    MODEL_OBJECT_BUCKET,
    LIVE_RASTER_BUCKET,
    ARCHIVE_OBJECT_BUCKET,
    TILE_OBJECT_BUCKET,
    BATCH_RASTER_BUCKET,
    VIEW_OBJECT_BUCKET,
  ].map(objectStoreStreamName),
];

/**
 * Prefixes of lanemap streams made per item, which no list can name in advance: one object store
 * per published view version (`OBJ_lanemap-view-v000042`, nats-views.ts), one per generation of
 * the master archive's objects (`OBJ_lanemap-archive-g000001`, nats-archive.ts) and one per period
 * of the live view's spilled rasters (`OBJ_lanemap-live-rasters-202611`, live-view.ts).
 */
export const LANEMAP_STREAM_PREFIXES: readonly string[] = [
  objectStoreStreamName(VIEW_VERSION_BUCKET_PREFIX),
  objectStoreStreamName(ARCHIVE_GENERATION_BUCKET_PREFIX),
  objectStoreStreamName(LIVE_RASTER_BUCKET_PREFIX),
];

/** Whether `stream` holds published views: a version's own (`OBJ_lanemap-view-<version>`) or the legacy bucket's. */
export const isViewStream = (stream: string): boolean =>
  stream === objectStoreStreamName(VIEW_OBJECT_BUCKET) ||
  stream.startsWith(objectStoreStreamName(VIEW_VERSION_BUCKET_PREFIX));

/**
 * Whether `stream` belongs to the master archive (nats-archive.ts): a generation's object store
 * (`OBJ_lanemap-archive-g000001`, or the legacy `OBJ_lanemap-archive`), the generation pointer,
 * the catalogue, the bad-tile and the tombstone buckets.
 */
export const isArchiveStream = (stream: string): boolean =>
  stream === objectStoreStreamName(ARCHIVE_OBJECT_BUCKET) ||
  stream.startsWith(objectStoreStreamName(ARCHIVE_GENERATION_BUCKET_PREFIX)) ||
  stream === kvStreamName(ARCHIVE_POINTER_BUCKET) ||
  stream === kvStreamName(CATALOGUE_BUCKET) ||
  stream === kvStreamName(BAD_TILE_BUCKET) ||
  stream === kvStreamName(REMOVAL_BUCKET);

/**
 * The streams a status accounts for: LANEMAP_STREAMS, and every stream of `named` (the server's
 * stream names, `$JS.API.STREAM.NAMES`) that starts with a prefix of LANEMAP_STREAM_PREFIXES, so
 * a version's stream a listing page leaves out is looked up like a fixed one. Sorted, once each.
 */
export function expectedLanemapStreams(named: readonly string[]): string[] {
  const perItem = named.filter((n) => LANEMAP_STREAM_PREFIXES.some((p) => n.startsWith(p)));
  return [...new Set([...LANEMAP_STREAMS, ...perItem])].sort();
}

const isLanemapStream = (name: string): boolean => /lanemap/i.test(name);

/** What {@link mergeStreamPages} makes of a listing's pages. */
export interface MergedStreamListing {
  /** Each lanemap stream's info, once, by name (a stream on two pages: the later page's). */
  readonly found: ReadonlyMap<string, StreamInfo>;
  /**
   * Lanemap streams no page gave the info of, to look up one by one: those a page names `missing`,
   * and those of `expected` no page lists. Sorted.
   */
  readonly lookUp: readonly string[];
}

/**
 * Merges the pages of a stream listing into one entry per lanemap stream. Why not take the pages as
 * they come: the server answers each page from the meta leader's view at that moment, by offset,
 * and during a leader election a page may repeat a stream of the previous page and leave another
 * out (issue 14, F2: `ops status` listed OBJ_lanemap-views twice and LANEMAP_BATCH_RESULTS not at
 * all, 4 s after a node was killed).
 */
export function mergeStreamPages(
  pages: readonly StreamListPage[],
  expected: readonly string[] = LANEMAP_STREAMS,
): MergedStreamListing {
  const found = new Map<string, StreamInfo>();
  const missing = new Set<string>();
  for (const page of pages) {
    for (const info of page.streams ?? [])
      if (isLanemapStream(info.config.name)) found.set(info.config.name, info);
    for (const name of page.missing ?? []) if (isLanemapStream(name)) missing.add(name);
  }
  const lookUp = [...new Set([...missing, ...expected])].filter((n) => !found.has(n)).sort();
  return { found, lookUp };
}

/** At most this many pages of a listing are read (nats-server pages 256 streams). */
const MAX_LIST_PAGES = 64;

/** nats-server's "JetStream system temporarily unavailable": no meta leader right now. */
const NO_META_LEADER = 10008;

/**
 * Every page of `$JS.API.STREAM.LIST`, from offset 0 until a page is short or empty. A page refused
 * for want of a meta leader (10008) is asked again every second for up to `metaWaitMs` (0: not).
 */
async function streamListPages(
  nc: NatsConnection,
  timeoutMs: number,
  metaWaitMs = 0,
): Promise<StreamListPage[]> {
  const pages: StreamListPage[] = [];
  let offset = 0;
  const waitUntil = Date.now() + metaWaitMs;
  while (pages.length < MAX_LIST_PAGES) {
    const m = await nc.request("$JS.API.STREAM.LIST", JSON.stringify({ offset }), { timeout: timeoutMs });
    const page = m.json<StreamListPage & ApiAnswer>();
    if (page.error?.err_code === NO_META_LEADER && Date.now() < waitUntil) {
      await new Promise((r) => setTimeout(r, 1_000));
      continue;
    }
    if (page.error)
      throw new LanemapError(
        "NATS_SETUP",
        `listing the streams: ${page.error.description ?? "?"} (${page.error.err_code ?? page.error.code})`,
      );
    pages.push(page);
    const n = page.streams?.length ?? 0;
    offset += n;
    if (n === 0 || offset >= page.total) break;
  }
  return pages;
}

/**
 * Every stream name on the server (`$JS.API.STREAM.NAMES`, paged like the listing; names only, so
 * a page is rarely short of what the meta leader knows); empty when the request fails (the
 * listing that follows fails the same way and says so).
 */
async function streamNames(nc: NatsConnection, timeoutMs: number): Promise<string[]> {
  const names: string[] = [];
  try {
    for (let page = 0; page < MAX_LIST_PAGES; page++) {
      const m = await nc.request("$JS.API.STREAM.NAMES", JSON.stringify({ offset: names.length }), {
        timeout: timeoutMs,
      });
      const a = m.json<{ total: number; streams: string[] | null } & ApiAnswer>();
      if (a.error) return names;
      const n = a.streams?.length ?? 0;
      names.push(...(a.streams ?? []));
      if (n === 0 || names.length >= a.total) break;
    }
  } catch {
    // The listing below reads the same meta leader: its failure is the one reported.
  }
  return names;
}

/** How long one page of the listing, or one STREAM.INFO of a stream it left out, may take. */
export const STREAM_LIST_TIMEOUT_MS = 5_000;

/**
 * Every lanemap stream on the server (streams and buckets whose name contains "lanemap", in any
 * case: LANEMAP_TILES, KV_lanemap-live, OBJ_lanemap-tiles, OBJ_lanemap-view-v000042, ...) with its
 * replicas and placement, once each, sorted by name. Listing rather than naming them keeps the
 * report complete when a part of lanemap adds a bucket; every stream of {@link LANEMAP_STREAMS},
 * every per-item stream the server names (view versions, archive generations: {@link
 * expectedLanemapStreams}) and every one the
 * listing names missing that no page gave is looked up by STREAM.INFO ({@link mergeStreamPages}):
 * one that does not exist is left out, one whose lookup fails is reported with `noAnswer`.
 * `metaWaitMs`: how long a listing refused for want of a meta leader (10008, a node just back) is
 * asked again, every second (default 0: `ops status` reports at once).
 * @throws LanemapError NATS_SETUP when the listing is refused.
 */
export async function lanemapStreamPlacements(
  nc: NatsConnection,
  jsm: JetStreamManager,
  options: { metaWaitMs?: number } = {},
): Promise<StreamPlacement[]> {
  const named = await streamNames(nc, STREAM_LIST_TIMEOUT_MS);
  const { found, lookUp } = mergeStreamPages(
    await streamListPages(nc, STREAM_LIST_TIMEOUT_MS, options.metaWaitMs),
    expectedLanemapStreams(named),
  );
  const out = [...found.values()].map(placementOf);
  const looked = await Promise.all(
    lookUp.map(async (stream): Promise<StreamPlacement | null> => {
      try {
        return placementOf(await jsm.streams.info(stream));
      } catch (err) {
        if (isStreamNotFound(err)) return null;
        return noAnswerPlacement(stream, err);
      }
    }),
  );
  for (const p of looked) if (p !== null) out.push(p);
  // A node is one machine: offline for one stream's leader, it is offline for every stream whose
  // leader has not noticed yet (and shows it "not current").
  const offline = new Set(out.flatMap((p) => p.peers.filter((r) => r.offline).map((r) => r.name)));
  return out
    .map((p) => ({
      ...p,
      peers: p.peers.map((r) =>
        !r.offline && !r.current && offline.has(r.name) ? { ...r, offline: true } : r,
      ),
    }))
    .sort((a, b) => a.stream.localeCompare(b.stream));
}

function noAnswerPlacement(stream: string, err: unknown): StreamPlacement {
  return {
    stream,
    replicas: 0,
    messages: 0,
    bytes: 0,
    cluster: null,
    leader: null,
    healthy: false,
    peers: [],
    noAnswer: `left out of the listing, and STREAM.INFO ${stream}: ${err instanceof Error ? err.message : String(err)}`,
  };
}

/**
 * One node's copy of one stream, as that node's own monitoring endpoint reports it (`/jsz`): each
 * node describes the store it holds, where STREAM.INFO answers for the leader's copy only.
 */
export interface ReplicaCopy {
  readonly messages: number;
  readonly firstSeq: number;
  readonly lastSeq: number;
  /** Interior deletes (KV updates, object deletes, `msg delete`). */
  readonly numDeleted: number;
  /** The stream's leader as this node sees it, or null (no leader known). */
  readonly leader: string | null;
  /** The other peers of the stream's RAFT group this node names (it holds the group with them). */
  readonly peers: readonly string[];
}

/** The lanemap streams one node holds copies of, by stream name. */
export interface NodeCopies {
  /** The node's `server_name`. */
  readonly node: string;
  readonly streams: ReadonlyMap<string, ReplicaCopy>;
}

/** A copy of a stream that disagrees with the others in a way catching up does not explain. */
export interface ReplicaDivergence {
  readonly stream: string;
  /** The node holding the odd copy. */
  readonly node: string;
  /** Whether that node leads the stream now (a repair steps it down first). */
  readonly isLeader: boolean;
  /** Its copy, or null when it holds none though the stream's group names it. */
  readonly copy: ReplicaCopy | null;
  /** The copy the others agree on (or the leader's when no majority agrees). */
  readonly reference: ReplicaCopy;
  /** The nodes holding the reference copy. */
  readonly agreeing: readonly string[];
  /** What is wrong, in words. */
  readonly why: string;
}

/**
 * Two copies hold the same messages. An empty copy's first_seq says nothing: nats-server reports 0
 * for a stream a node never stored a message of and last_seq + 1 once it has (a false "diverged"
 * on six empty streams in an operator's check).
 */
const sameCopy = (a: ReplicaCopy, b: ReplicaCopy): boolean =>
  a.messages === b.messages && a.lastSeq === b.lastSeq && (a.messages === 0 || a.firstSeq === b.firstSeq);

const figures = (c: ReplicaCopy): string =>
  `${c.messages} msgs, first_seq ${c.firstSeq}, last_seq ${c.lastSeq}, ${c.numDeleted} deleted`;

/**
 * Why `copy` is not `reference` caught up or running ahead, or null when it may be: a replica in
 * flight differs only in how far it applied the stream's log, so its last_seq differs and its
 * first_seq, which moves only forward as the log removes messages, differs the same way or not at
 * all. A copy at the same last_seq with other messages, or with first_seq and last_seq on opposite
 * sides, lost or gained messages outside the log (nats-server 2.9 after an abrupt stop during
 * catch-up, PRs nats-io/nats-server#5054, #5939, #6459). `settled`: no copy of the stream changed
 * between two samples, so any difference at all is one catching up does not explain.
 */
export function copyDisagreement(
  copy: ReplicaCopy,
  reference: ReplicaCopy,
  settled: boolean,
  /** Whose the reference is, in words: "the others" (a majority) or "the leader n1" (no majority). */
  whose = "the others",
): string | null {
  if (sameCopy(copy, reference)) return null;
  const last = Math.sign(copy.lastSeq - reference.lastSeq);
  const first = Math.sign(copy.firstSeq - reference.firstSeq);
  const hold = whose === "the others" ? "hold" : "holds";
  const theirs = whose === "the others" ? "the others'" : `${whose}'s`;
  if (last === 0)
    return `holds ${figures(copy)} where ${whose} ${hold} ${figures(reference)} at the same last_seq`;
  if (first !== 0 && first !== last)
    return `holds ${figures(copy)}: first_seq and last_seq on opposite sides of ${theirs} (${figures(reference)})`;
  if (settled)
    return `holds ${figures(copy)} and has not moved towards ${theirs} ${figures(reference)} while the stream was idle`;
  return null;
}

/**
 * The copies of every lanemap stream that disagree with the others beyond a replica catching up,
 * from one sample of every answering node's copies. Per stream the reference is the copy a strict
 * majority of its group holds (an odd leader is named like any other node: a repair steps it down),
 * else the leader's; a node the group names that holds no copy is named too. `settled`: streams
 * no copy of which changed between two samples (see {@link copyDisagreement}). Sorted by stream,
 * then node.
 */
export function replicaDivergences(
  sample: readonly NodeCopies[],
  settled: ReadonlySet<string> = new Set(),
): ReplicaDivergence[] {
  const streams = [...new Set(sample.flatMap((n) => [...n.streams.keys()]))].sort();
  const answered = new Set(sample.map((n) => n.node));
  const out: ReplicaDivergence[] = [];
  for (const stream of streams) {
    const copies = new Map<string, ReplicaCopy>();
    for (const n of sample) {
      const c = n.streams.get(stream);
      if (c) copies.set(n.node, c);
    }
    // The group: every node holding a copy and every peer they name.
    const group = new Set<string>(copies.keys());
    for (const c of copies.values())
      for (const p of [...c.peers, ...(c.leader ? [c.leader] : [])]) group.add(p);
    const leaders = [...copies.values()].map((c) => c.leader).filter((l): l is string => l !== null);
    const leader = leaders.length > 0 ? leaders[0]! : null;
    let reference: ReplicaCopy | undefined;
    for (const c of copies.values()) {
      const agree = [...copies.values()].filter((d) => sameCopy(c, d)).length;
      if (agree * 2 > group.size) reference = c;
    }
    // No majority: the leader's copy, and the words say so (not "the others", who disagree too).
    const whose = reference === undefined ? `the leader ${leader ?? "?"}` : "the others";
    reference ??= leader === null ? undefined : copies.get(leader);
    if (reference === undefined) continue; // no leader and no majority: "no leader" elsewhere
    const ref = reference;
    const agreeing = [...copies].filter(([, c]) => sameCopy(c, ref)).map(([n]) => n);
    for (const node of [...group].sort()) {
      if (!answered.has(node)) continue; // its monitoring did not answer: reported as such
      const copy = copies.get(node) ?? null;
      const why =
        copy === null
          ? `holds no copy though the stream's group names it (${whose} ${whose === "the others" ? "hold" : "holds"} ${figures(ref)})`
          : copyDisagreement(copy, ref, settled.has(stream), whose);
      if (why !== null)
        out.push({ stream, node, isLeader: node === leader, copy, reference: ref, agreeing, why });
    }
  }
  return out;
}

/** One node's monitoring endpoint: the copies it holds, or why it did not say. */
export type NodeReport =
  | { readonly url: string; readonly node: string; readonly streams: ReadonlyMap<string, ReplicaCopy> }
  | { readonly url: string; readonly node: null; readonly error: string };

/** What `/jsz?accounts=true&streams=true` of nats-server 2.9 returns, the fields read here. */
interface JszStreams {
  account_details?: {
    name: string;
    stream_detail?: {
      name: string;
      cluster?: { leader?: string; replicas?: { name: string }[] };
      state: { messages: number; first_seq: number; last_seq: number; num_deleted?: number };
    }[];
  }[];
}

/** How long one monitoring request may take. */
const MONITOR_TIMEOUT_MS = 3_000;

async function getJson<T>(url: string, signal?: AbortSignal): Promise<T> {
  const timeout = AbortSignal.timeout(MONITOR_TIMEOUT_MS);
  const res = await fetch(url, { signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
  if (!res.ok) throw new Error(`${url} answered HTTP ${res.status}`);
  return (await res.json()) as T;
}

/**
 * The lanemap streams (names containing "lanemap", any case; KV_ and OBJ_ streams included) whose
 * copies one node holds, from its monitoring endpoint (`http:` in its config): `/varz` for its
 * server name, `/jsz?accounts=true&streams=true` for its copies (every account but `$SYS`).
 * Never throws: a node that does not answer is a report with the reason.
 */
export async function nodeReport(url: string, signal?: AbortSignal): Promise<NodeReport> {
  const base = url.replace(/\/+$/, "");
  try {
    const [varz, jsz] = await Promise.all([
      getJson<{ server_name?: string }>(`${base}/varz`, signal),
      getJson<JszStreams>(`${base}/jsz?accounts=true&streams=true`, signal),
    ]);
    const node = varz.server_name;
    if (!node) throw new Error(`${base}/varz names no server_name`);
    const streams = new Map<string, ReplicaCopy>();
    for (const account of jsz.account_details ?? []) {
      if (account.name === "$SYS") continue;
      for (const d of account.stream_detail ?? []) {
        if (!/lanemap/i.test(d.name)) continue;
        streams.set(d.name, {
          messages: d.state.messages,
          firstSeq: d.state.first_seq,
          lastSeq: d.state.last_seq,
          numDeleted: d.state.num_deleted ?? 0,
          leader: d.cluster?.leader ?? null,
          peers: (d.cluster?.replicas ?? []).map((r) => r.name).filter((n) => n !== node),
        });
      }
    }
    return { url: base, node, streams };
  } catch (err) {
    return { url: base, node: null, error: err instanceof Error ? err.message : String(err) };
  }
}

/** Whether every node's copy of `stream` is `copy`, and every node its group names holds one. */
function alike(nodes: readonly NodeCopies[], stream: string, copy: ReplicaCopy): boolean {
  const names = new Set(nodes.map((n) => n.node));
  const group = [copy.leader, ...copy.peers].filter((n): n is string => n !== null && names.has(n));
  return (
    group.every((n) => nodes.some((m) => m.node === n && m.streams.has(stream))) &&
    nodes.every((n) => {
      const c = n.streams.get(stream);
      return c === undefined || sameCopy(c, copy);
    })
  );
}

/** How long {@link checkReplicaAgreement} waits before looking again at copies that disagree. */
export const REPLICA_RESAMPLE_MS = 1_500;

/** What {@link checkReplicaAgreement} found. */
export interface ReplicaAgreement {
  /** Every node's report from the last sample. */
  readonly nodes: readonly NodeReport[];
  /** Copies that disagreed in both samples (the second sample's figures). */
  readonly divergences: readonly ReplicaDivergence[];
}

/**
 * Compares every lanemap stream's copies across the nodes whose monitoring endpoints `urls` name.
 * Copies that disagree are looked at again after {@link REPLICA_RESAMPLE_MS}; only those that
 * disagree both times are reported (a write landing between two nodes' answers makes copies
 * differ for a moment), and a stream none of whose copies changed in between counts as settled.
 */
export async function checkReplicaAgreement(
  urls: readonly string[],
  options: { signal?: AbortSignal; resampleMs?: number } = {},
): Promise<ReplicaAgreement> {
  const sample = () => Promise.all(urls.map((u) => nodeReport(u, options.signal)));
  const answered = (r: readonly NodeReport[]): NodeCopies[] =>
    r.flatMap((n) => (n.node === null ? [] : [{ node: n.node, streams: n.streams }]));
  const first = await sample();
  const copies = answered(first);
  // Every copy alike everywhere: nothing to look at twice (the common case costs one sample).
  if (copies.every((n) => [...n.streams].every(([stream, c]) => alike(copies, stream, c))))
    return { nodes: first, divergences: [] };
  const before = replicaDivergences(copies);
  await new Promise((r) => setTimeout(r, options.resampleMs ?? REPLICA_RESAMPLE_MS));
  const second = await sample();
  const after = answered(second);
  const settled = new Set<string>();
  for (const stream of new Set(copies.flatMap((n) => [...n.streams.keys()]))) {
    const was = new Map(copies.map((n) => [n.node, n.streams.get(stream)]));
    const unchanged = after.every((n) => {
      const [p, c] = [was.get(n.node), n.streams.get(stream)];
      return p === c || (p !== undefined && c !== undefined && sameCopy(p, c));
    });
    if (unchanged) settled.add(stream);
  }
  const seen = new Set(before.map((d) => `${d.stream}\u0000${d.node}`));
  const divergences = replicaDivergences(after, settled).filter(
    (d) => settled.has(d.stream) || seen.has(`${d.stream}\u0000${d.node}`),
  );
  return { nodes: second, divergences };
}

/** How long each step of {@link replaceReplica} may take before it gives up. */
export const REPAIR_STEP_TIMEOUT_MS = 30_000;

/** The server's answer to a JetStream API request, the fields read here. */
interface ApiAnswer {
  error?: { code: number; err_code?: number; description?: string };
}

async function jsApi(nc: NatsConnection, subject: string, body: unknown): Promise<ApiAnswer> {
  const m = await nc.request(subject, JSON.stringify(body), { timeout: 5_000 });
  return m.json<ApiAnswer>();
}

async function until(
  jsm: JetStreamManager,
  stream: string,
  what: string,
  done: (info: StreamInfo) => boolean,
  timeoutMs: number,
): Promise<StreamInfo> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const info = await jsm.streams.info(stream).catch(() => null);
    if (info && done(info)) return info;
    if (Date.now() > deadline)
      throw new LanemapError("NATS_SETUP", `${stream}: ${what} did not happen within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const peerNames = (info: StreamInfo): string[] => [
  ...(info.cluster?.leader ? [info.cluster.leader] : []),
  ...(info.cluster?.replicas ?? []).map((r) => r.name),
];

/** How many times {@link placeReplicas} scales a stream down to its placed peers and up again. */
export const PLACE_ATTEMPTS = 3;
/** How long {@link placeReplicas} waits for an accepted scale-up to name every peer, per attempt. */
export const PLACE_WAIT_MS = 10_000;
/**
 * How long {@link placeReplicas} first waits for a missing peer to come back by itself: right after
 * a node restarts, its stream leaders' STREAM.INFO leaves it out for a few seconds (about 5 s seen
 * here on 2.9.10) though the stream's assignment still names it.
 */
export const PLACE_SETTLE_MS = 6_000;
/** The pause between a scale-down and the scale-up that follows it (times the attempt). */
export const META_SETTLE_MS = 1_000;

/** Why a step of {@link placeReplicas} was refused or did not happen, in the server's words. */
const refusalText = (err: unknown): string => {
  if (err instanceof JetStreamApiError) return `${err.message} (${err.code})`;
  return err instanceof Error ? err.message : String(err);
};

/**
 * Brings `stream` to `wanted` placed, current replicas: the repair of an unplaced replica (a group
 * with fewer peers than `num_replicas`, as `lanemap ops status` says) or of replicas lowered below
 * config, and the last step of {@link replaceReplica}. A stream whose peers already number
 * `wanted` is only awaited current. Otherwise, up to {@link PLACE_ATTEMPTS} times: scale down to
 * the placed peers (`$JS.API.STREAM.UPDATE`, num_replicas = the peers STREAM.INFO names), wait
 * for the meta layer, scale up to `wanted`, and wait until STREAM.INFO names `wanted` peers.
 *
 * Why down and up, and why again: nats-server 2.9.10 places new peers only on a replicas change
 * (`jsClusteredStreamUpdateRequest`: `isReplicaChange` compares the request with the meta
 * leader's assignment), so a stream at R3 with 2 peers, as a PEER.REMOVE with no spare server
 * leaves it, is not mended by asking R3 again: it is accepted and places nothing. The scale-up
 * is compared with what the meta leader has *applied*, while the scale-down's answer comes from
 * the stream's leader once *it* applied it: a scale-up that reaches a meta leader still at R3 is
 * the same no-op (accepted, "num_replicas back at 3 but only 2 placed"), so the pause grows with
 * each attempt. The placement itself is refused (an error, not the no-op: "no suitable peers for
 * placement, peer offline" (10005) seen here with a node stopped; "insufficient resources" in other
 * 2.9 paths) while the meta leader counts a node offline or has no JetStream statistics of it yet
 * (a node just restarted). "could not replace peer" in nats-server's log is the PEER.REMOVE before
 * (no spare server on 3 nodes), logged by every repair, not this refusal.
 *
 * It always ends in a known state: `wanted` current replicas, or a LanemapError stating what the
 * stream was left at: num_replicas `wanted` with fewer placed when the last scale-up was accepted
 * (visible as "unplaced" to `ops status` from any shell), or num_replicas = the placed peers when
 * the server refused it (it cannot be raised now).
 * @returns the steps taken, in words.
 * @throws LanemapError (NATS_SETUP) naming the stream, the peers it has, what was refused or did
 *   not happen, what it was left at and the command to run again.
 */
export async function placeReplicas(
  jsm: JetStreamManager,
  stream: string,
  wanted: number,
  options: { timeoutMs?: number; settleMs?: number; placeMs?: number; attempts?: number } = {},
): Promise<string[]> {
  const timeoutMs = options.timeoutMs ?? REPAIR_STEP_TIMEOUT_MS;
  const attempts = options.attempts ?? PLACE_ATTEMPTS;
  const steps: string[] = [];
  const led = (i: StreamInfo) => !!i.cluster?.leader;
  let info = await until(jsm, stream, "a leader", led, timeoutMs);
  if (peerNames(info).length < wanted) {
    // A peer left out just after its node restarted comes back by itself: nothing to place then.
    const back = await until(
      jsm,
      stream,
      "",
      (i) => led(i) && peerNames(i).length >= wanted,
      options.settleMs ?? PLACE_SETTLE_MS,
    ).catch(() => null);
    if (back !== null) info = back;
  }
  let failure = "";
  for (let attempt = 1; attempt <= attempts && peerNames(info).length < wanted; attempt++) {
    const placed = peerNames(info);
    let step = `R${wanted}`;
    try {
      if ((info.config.num_replicas || 1) !== placed.length) {
        step = `the scale-down to R${placed.length}`;
        await jsm.streams.update(stream, { ...info.config, num_replicas: placed.length });
        info = await until(
          jsm,
          stream,
          `num_replicas ${placed.length}`,
          (i) => led(i) && (i.config.num_replicas || 1) === placed.length,
          timeoutMs,
        );
        step = `R${wanted}`;
      }
      await new Promise((r) => setTimeout(r, META_SETTLE_MS * attempt));
      info = await jsm.streams.update(stream, { ...info.config, num_replicas: wanted });
    } catch (err) {
      failure = `${step} refused: ${refusalText(err)}`;
      steps.push(`attempt ${attempt}: ${failure}`);
      info = await until(jsm, stream, "a leader", led, timeoutMs);
      continue;
    }
    const now = await until(
      jsm,
      stream,
      "",
      (i) => led(i) && peerNames(i).length >= wanted,
      options.placeMs ?? PLACE_WAIT_MS,
    ).catch(() => null);
    if (now !== null) {
      info = now;
      steps.push(`rescaled R${placed.length} -> R${wanted}: ${wanted - placed.length} new replica(s) placed`);
      break;
    }
    info = await until(jsm, stream, "a leader", led, timeoutMs);
    failure = `R${wanted} accepted but only ${peerNames(info).length} peer(s) placed within ${(options.placeMs ?? PLACE_WAIT_MS) / 1000} s`;
    steps.push(`attempt ${attempt}: ${failure}`);
  }
  const peers = peerNames(info);
  if (peers.length < wanted)
    throw new LanemapError(
      "NATS_SETUP",
      `${stream}: ${wanted} replicas not placed after ${attempts} attempt(s) (last: ${failure}); left at num_replicas ${info.config.num_replicas || 1} with ${peers.length} placed (${peers.join(", ")}); run again once every node is up and current: lanemap ops repair-replicas --stream ${stream}`,
    );
  const current = (i: StreamInfo) =>
    peerNames(i).length >= wanted && (i.cluster?.replicas ?? []).every((r) => r.current);
  const done = await until(jsm, stream, "", current, timeoutMs).catch(() => null);
  if (done === null) {
    // Placed on a node that does not catch up: one the meta leader still counts online though it
    // died (a SIGKILLed node reads online for a while), or a copy larger than the wait.
    const last = await jsm.streams.info(stream).catch(() => info);
    const behind = (last.cluster?.replicas ?? []).filter((r) => !r.current).map((r) => r.name);
    throw new LanemapError(
      "NATS_SETUP",
      `${stream}: ${wanted} replicas placed (${peerNames(last).join(", ")}) but ${behind.join(", ") || "a peer"} not current within ${timeoutMs / 1000} s; left at num_replicas ${last.config.num_replicas || 1}; once every node is up, see lanemap ops status and run again: lanemap ops repair-replicas --stream ${stream}`,
    );
  }
  steps.push(`peers ${peerNames(done).join(", ")} current`);
  return steps;
}

/**
 * Replaces `node`'s copy of `stream` with a fresh one copied from the leader: the repair of a copy
 * {@link replicaDivergences} names. Steps, each awaited in STREAM.INFO:
 * 1. when `node` leads the stream, `$JS.API.STREAM.LEADER.STEPDOWN.<stream>` until another leads;
 * 2. `$JS.API.STREAM.PEER.REMOVE.<stream>` `{"peer": node}`: the server drops `node` from the
 *    stream's group and deletes its copy. With no spare server to place the replica on (3 nodes,
 *    R3) nats-server 2.9.10 answers 503 "peer remap failed" (err_code 10075), logs "could not
 *    replace peer", and still drops it: the stream is left at num_replicas 3 with 2 peers;
 * 3. {@link placeReplicas}: rescaled to the peers left and back to `num_replicas` until the missing
 *    replica is placed (on `node`, the only server left) as a new peer, which catches up from the
 *    leader's copy, and every peer is current.
 * While it runs the stream has one copy fewer (R3: a quorum of 2 out of 2, so no node may die).
 * @returns the steps taken, in words.
 * @throws LanemapError (NATS_SETUP) when the server refuses a step, a step does not complete in
 *   `timeoutMs`, or the replica cannot be placed again (what {@link placeReplicas} throws: the
 *   stream's state and the command to run again).
 */
export async function replaceReplica(
  nc: NatsConnection,
  jsm: JetStreamManager,
  stream: string,
  node: string,
  timeoutMs = REPAIR_STEP_TIMEOUT_MS,
): Promise<string[]> {
  const steps: string[] = [];
  const refused = (what: string, a: ApiAnswer) =>
    new LanemapError(
      "NATS_SETUP",
      `${stream}: ${what} refused: ${a.error?.description ?? "?"} (${a.error?.err_code ?? a.error?.code})`,
    );
  let info = await jsm.streams.info(stream);
  const wanted = info.config.num_replicas || 1;
  if (!peerNames(info).includes(node))
    throw new LanemapError(
      "NATS_SETUP",
      `${stream}: node ${node} holds no replica of it (peers ${peerNames(info).join(", ")})`,
    );
  if (info.cluster?.leader === node) {
    const a = await jsApi(nc, `$JS.API.STREAM.LEADER.STEPDOWN.${stream}`, {});
    if (a.error) throw refused(`leader step-down of ${node}`, a);
    info = await until(
      jsm,
      stream,
      `a leader other than ${node}`,
      (i) => !!i.cluster?.leader && i.cluster.leader !== node,
      timeoutMs,
    );
    steps.push(`${node} stepped down as leader; ${info.cluster?.leader} leads`);
  }
  const removed = await jsApi(nc, `$JS.API.STREAM.PEER.REMOVE.${stream}`, { peer: node });
  // 10075 "peer remap failed": no spare server for a new replica; the peer is dropped all the same.
  if (removed.error && removed.error.err_code !== 10075) throw refused(`removing peer ${node}`, removed);
  info = await until(
    jsm,
    stream,
    `${node} leaving the group`,
    (i) => !peerNames(i).includes(node) && !!i.cluster?.leader,
    timeoutMs,
  );
  steps.push(`${node}'s copy removed (peers now ${peerNames(info).join(", ")})`);
  // No settling wait: the peer just removed is not coming back by itself.
  steps.push(...(await placeReplicas(jsm, stream, wanted, { timeoutMs, settleMs: 0 })));
  return steps;
}

/**
 * Whether `d`'s odd copy can be mended by {@link pruneToLeader} rather than replaced: a follower's
 * copy holding messages beyond the reference, which is the leader's own copy (the leader is among
 * the agreeing nodes), and not running ahead of it (last_seq not past the leader's). What
 * nats-server 2.9 leaves when a copy is placed anew and catches up by replaying the stream's log:
 * removals made outside that log — a work-queue's acknowledged messages (removed through its
 * consumer's group), messages expired by max_age — come back on the new copy only (an operator's
 * check: 166 acknowledged batch tasks on the copy `ops repair-replicas` had just placed, so every
 * later repair replaced it again and brought them back again).
 */
export function prunable(d: ReplicaDivergence): boolean {
  const leader = d.reference.leader;
  return (
    !d.isLeader &&
    d.copy !== null &&
    leader !== null &&
    d.agreeing.includes(leader) &&
    d.copy.messages > d.reference.messages &&
    d.copy.lastSeq <= d.reference.lastSeq
  );
}

/** At most this many single-message deletes one {@link pruneToLeader} sends. */
export const PRUNE_MAX_DELETES = 100_000;
/** How many of those deletes are in flight at once. */
const PRUNE_CONCURRENCY = 64;
/**
 * The leader's answer to a prune delete, which finds nothing there: "sequence not found" (10043)
 * for a sequence inside its range, "no message found" (10057, a failed delete) below its first.
 */
const nothingThere = (err: unknown): boolean =>
  err instanceof JetStreamApiError &&
  (err.code === 10043 || (err.code === 10057 && /no message found/i.test(err.message)));

/**
 * Removes from every copy of `stream` the messages its leader no longer holds from `fromSeq` on,
 * through the stream's own RAFT log so each copy applies it: a delete (`$JS.API.STREAM.MSG.DELETE`,
 * no_erase) of each sequence below the leader's first one and of each it lists as deleted.
 * nats-server 2.9.10 proposes a clustered delete without looking (server
 * `jsClusteredMsgDeleteRequest`): the leader, holding nothing there, answers "sequence not found"
 * (10043) or "no message found" (10057), and a copy that holds the message removes it. Never a
 * purge: 2.9.10's purge clears every consumer's pending list (server `consumer.purge`:
 * `o.pending = nil`), so tasks in flight would never be delivered again, and a purge below the
 * leader's first sequence of the lease bucket was followed, 2 of 2 in an operator's check, by its
 * copies diverging again at the next writes (deletes only: stable). The leader's messages are never
 * touched: everything removed is below its first sequence or in its deleted list, and a message
 * published meanwhile takes a sequence past both. A stream that denies deletes is left alone, and
 * the steps say so.
 * @returns the steps taken, in words (empty when the leader lacks nothing from `fromSeq` on).
 * @throws LanemapError (NATS_SETUP) when the stream has no leader within `timeoutMs`, or the
 *   server refuses a delete with anything but "sequence not found".
 */
export async function pruneToLeader(
  jsm: JetStreamManager,
  stream: string,
  options: { fromSeq?: number; timeoutMs?: number; maxDeletes?: number } = {},
): Promise<string[]> {
  const fromSeq = Math.max(1, options.fromSeq ?? 1);
  const maxDeletes = options.maxDeletes ?? PRUNE_MAX_DELETES;
  await until(
    jsm,
    stream,
    "a leader",
    (i) => !!i.cluster?.leader,
    options.timeoutMs ?? REPAIR_STEP_TIMEOUT_MS,
  );
  const info = await jsm.streams.info(stream, { deleted_details: true });
  const { messages, first_seq: first, last_seq: last } = info.state;
  const leader = info.cluster?.leader ?? "?";
  const floor = messages > 0 ? first : last + 1;
  const steps: string[] = [];
  const refused = (what: string, err: unknown) =>
    new LanemapError("NATS_SETUP", `${stream}: ${what} refused: ${refusalText(err)}`, { cause: err });
  const below: number[] = [];
  for (let seq = fromSeq; seq < floor && below.length <= maxDeletes; seq++) below.push(seq);
  const deleted = [...below, ...(info.state.deleted ?? []).filter((seq) => seq >= Math.max(fromSeq, floor))];
  if (deleted.length === 0) return steps;
  if (info.config.deny_delete) {
    steps.push(`${deleted.length} message(s) the leader removed left alone: the stream denies deletes`);
    return steps;
  }
  const todo = deleted.slice(0, maxDeletes);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < todo.length) {
      const seq = todo[next++]!;
      try {
        await jsm.streams.deleteMessage(stream, seq, false);
      } catch (err) {
        if (!nothingThere(err)) throw refused(`the delete of seq ${seq}`, err);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(PRUNE_CONCURRENCY, todo.length) }, worker));
  steps.push(
    `deleted from every copy the ${todo.length} message(s) from seq ${fromSeq} on the leader (${leader}) no longer holds` +
      (todo.length < deleted.length ? `; more left (at most ${maxDeletes} a run): run again` : ""),
  );
  return steps;
}
