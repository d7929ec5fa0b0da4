/**
 * JetStream replicas of lanemap's resources (`config.storage.replicas`, `LANEMAP_NATS_REPLICAS`):
 * R1 on a single server, R3 on a 3-node cluster, where a stream keeps accepting writes and
 * answering reads with one node down (a RAFT group of 3 keeps its quorum with 2).
 *
 * KV buckets and object stores are streams too (`KV_<bucket>`, `OBJ_<bucket>`), but nats.js's
 * `Kvm.create` / `Objm.create` only set replicas when they create the stream; on an existing one
 * they keep whatever it has. So every lanemap resource goes through {@link ensureReplicas} after it
 * is opened: a stream whose `num_replicas` differs from config is updated in place
 * (`$JS.API.STREAM.UPDATE`, which JetStream allows for num_replicas since 2.7): the server adds or
 * removes peers of the stream's RAFT group and catches the new peers up from the leader; the
 * stream's messages, sequences, KV revisions and object chunks stay as they are, and durable
 * consumers with the stream's replicas (num_replicas 0, "as the stream") follow it.
 *
 * Scaling up needs as many JetStream servers in the cluster as replicas; a single server refuses
 * replicas above 1 ("replicas > 1 not supported in non-clustered mode"), reported as NATS_SETUP.
 */
import { type JetStreamManager, type StreamInfo } from "@nats-io/jetstream";
import { LanemapError } from "../../errors.js";

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
 * Brings an existing stream (a lanemap stream, or the stream of a KV or object store bucket) to
 * `replicas`, in place; a stream that already has them is left alone (no update request, so any
 * number of processes may call this at start-up).
 * @returns the stream's info after the change.
 * @throws ReplicasRefusedError (NATS_SETUP) when the server cannot place `replicas`; LanemapError
 *   (NATS_SETUP) when the stream cannot be read or the server refuses the change otherwise.
 */
export async function ensureReplicas(
  jsm: JetStreamManager,
  stream: string,
  replicas: number,
): Promise<StreamInfo> {
  const wanted = checkReplicas(replicas);
  try {
    const info = await jsm.streams.info(stream);
    refuseUnclustered(info, wanted);
    if ((info.config.num_replicas || 1) === wanted) return info;
    return await atReplicas(stream, wanted, () =>
      jsm.streams.update(stream, { ...info.config, num_replicas: wanted }),
    );
  } catch (err) {
    if (err instanceof ReplicasRefusedError) throw err;
    throw new LanemapError(
      "NATS_SETUP",
      `cannot set ${wanted} replica(s) on stream ${stream}: ${(err as Error).message}`,
      { cause: err },
    );
  }
}

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

/**
 * Every lanemap stream on the server (streams and buckets whose name contains "lanemap", in any
 * case: LANEMAP_TILES, KV_lanemap-live, OBJ_lanemap-tiles, ...) with its replicas and placement,
 * sorted by name. Listing rather than naming them keeps the report complete when a part of
 * lanemap adds a bucket.
 */
export async function lanemapStreamPlacements(jsm: JetStreamManager): Promise<StreamPlacement[]> {
  const out: StreamPlacement[] = [];
  for await (const info of jsm.streams.list()) {
    if (/lanemap/i.test(info.config.name)) out.push(placementOf(info));
  }
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
