/**
 * `lanemap ops repair-replicas`: replaces the copies of lanemap streams that diverged from the
 * others (nats-server 2.9 can leave a replica with other messages than its peers after abrupt
 * stops during catch-up, while its leader reports it current: issue 14 F3, README "Operations").
 * The copies are compared as `ops status` compares them (each node's own /jsz, through
 * LANEMAP_NATS_MONITOR_URLS); each odd copy is dropped and copied again from the leader
 * (shared/adapters/nats/replicas.ts `replaceReplica`), then the copies are compared again.
 *
 * A stream with fewer placed replicas than it should have is repaired too: one whose group has
 * fewer peers than its num_replicas ("unplaced", as `ops status` says: a PEER.REMOVE with no spare
 * server, or a repair whose scale-up placed nothing), or whose num_replicas a failed repair left
 * below LANEMAP_NATS_REPLICAS (shared/adapters/nats/replicas.ts `replicaShortfall`). Its placed
 * copies may all agree: that is not "nothing to repair" (an operator's check, after a repair that
 * failed with "3 current replicas did not happen within 30 s"). It is rescaled to its placed peers
 * and up again until the replica is placed (`placeReplicas`), or left in a stated state with the
 * command to run again.
 *
 * A follower's copy that holds, besides its leader's messages, only messages the leader removed is
 * pruned instead (`pruneToLeader`: those messages deleted through the stream's log), and replaced
 * only when it still disagrees; a copy just placed (a replacement, a placement) that came back
 * holding such messages is pruned after. nats-server 2.9.10 catches a new copy up by replaying the
 * stream's log, which lacks removals made outside it: a work queue's acknowledged tasks came back
 * on every copy this command placed (an operator's check: 166 on LANEMAP_BATCH_TASKS, exit 3 on
 * every run of the timer).
 *
 * A copy is replaced only when every node's monitoring answered (with a node unseen the stream may
 * be down to the one copy being removed) and a strict majority of its stream's group holds the
 * reference copy, or the operator chose the leader's (`trustLeader`): when all three copies differ
 * (6 of 11 divergences in a rolling-kill reproduction, README "Scaling out") no count says which is right, and the leader's is
 * the one every client has been reading.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import {
  BATCH_LEASE_BUCKET,
  BatchLeases,
  describeHolder,
  kvStreamName,
  checkReplicaAgreement,
  lanemapStreamPlacements,
  placeReplicas,
  prunable,
  pruneToLeader,
  replaceReplica,
  replicaShortfall,
  type ReplicaDivergence,
  type ReplicaShortfall,
} from "../../shared/adapters/nats/index.js";
import { LanemapError } from "../../shared/index.js";
import { OPS_EXIT } from "./exit-codes.js";

/**
 * The coordinator lease's bucket: one key every coordinator reads and writes at the leader, nothing
 * else. Killing the node leading it mid-run left its three copies all different three times in an
 * operator's check; replacing a copy then left nats-server 2.9.10 with one that stayed behind every
 * later write (4 of 6 rounds). So it is not repaired copy by copy: when no coordinator holds the
 * lease, the bucket is created afresh (BatchLeases.recreateIfFree); while one does, the repair waits
 * for the next try (the timer's), refused, naming the holder. Without a majority too: no copy of it
 * holds anything a fresh bucket would lack.
 */
const LEASE_STREAM = kvStreamName(BATCH_LEASE_BUCKET);

/** How long a repair waits for the cluster to have a meta leader before listing its streams, in ms. */
export const META_LEADER_WAIT_MS = 30_000;

/** Options of {@link repairReplicas}. */
export interface RepairReplicasOptions {
  readonly nc: NatsConnection;
  /** Every node's monitoring URL (config.storage.monitorUrls). */
  readonly monitorUrls: readonly string[];
  /** Only this stream (`--stream`); default every lanemap stream. */
  readonly stream?: string;
  /** List what would be replaced; change nothing. */
  readonly dryRun: boolean;
  /**
   * With no majority of a stream's copies agreeing, replace every other copy from the leader's
   * (`--trust-leader`): what only the others held is lost. Default false: such a stream is refused.
   */
  readonly trustLeader?: boolean;
  /**
   * The replicas config asks (config.storage.replicas, LANEMAP_NATS_REPLICAS): a stream with fewer
   * is a repair target. Default 1 (then only a stream with fewer peers than its own num_replicas).
   */
  readonly replicas?: number;
  /**
   * How long a placement first waits for a missing peer to come back by itself, in ms
   * (config.storage.replicaSettleMs, LANEMAP_REPLICA_SETTLE_S); default PLACE_SETTLE_MS.
   */
  readonly settleMs?: number;
  readonly logger: Logger;
}

/** One copy replaced, or left alone with the reason. */
export interface ReplicaRepair {
  readonly stream: string;
  readonly node: string;
  readonly why: string;
  /** The steps taken (empty on a dry run or when refused). */
  readonly steps: readonly string[];
  /** Why the copy was not replaced, when it was not. */
  readonly refused?: string;
  /** The repair was tried and failed: the error's one line (what the stream was left at). */
  readonly failed?: string;
  /**
   * The copy holds only messages its leader removed besides the leader's: it is pruned to the
   * leader's (shared/adapters/nats `pruneToLeader`), and replaced only if that does not make it agree.
   */
  readonly prune?: boolean;
}

/** A stream short of placed replicas, placed again or not. */
export interface ReplicaPlacement extends ReplicaShortfall {
  /** The steps taken (empty on a dry run or when it failed before any). */
  readonly steps: readonly string[];
  /** The placement was tried and failed: the error's one line (what the stream was left at). */
  readonly failed?: string;
}

/** What {@link repairReplicas} did. */
export interface RepairReplicasReport {
  readonly dryRun: boolean;
  readonly repairs: readonly ReplicaRepair[];
  /** Streams found short of placed replicas, and what was done about each. */
  readonly placements: readonly ReplicaPlacement[];
  /** Copies that still disagree after the repairs (empty on success; the divergences on a dry run). */
  readonly remaining: readonly ReplicaDivergence[];
  /** Streams still short of placed replicas after the repairs (on a dry run: those found). */
  readonly unplaced: readonly ReplicaShortfall[];
  /**
   * Monitoring URLs that did not answer (a node down or frozen): their nodes' copies were not
   * compared, so "nothing to repair" cannot be said (an operator's check with a node SIGSTOPped).
   */
  readonly unanswered: readonly string[];
}

/** Why a copy is not repaired while some node's monitoring is silent: its copies were not compared. */
function unansweredRefusal(unseen: readonly string[]): string {
  return `node monitoring ${unseen.join(", ")} does not answer: the stream may have no other copy`;
}

/** The lease bucket's repair (see LEASE_STREAM): created afresh when no coordinator holds it. */
async function recreateLeaseBucket(
  nc: NatsConnection,
  logger: Logger,
  unseen: readonly string[],
  dryRun: boolean,
): Promise<{ steps: readonly string[]; refused?: string; failed?: string }> {
  if (unseen.length > 0)
    return {
      steps: [],
      refused: unansweredRefusal(unseen),
    };
  if (dryRun) return { steps: [] };
  try {
    const r = await BatchLeases.recreateIfFree(nc);
    if ("holder" in r)
      return {
        steps: [],
        refused: `a coordinator holds the lease (${describeHolder(r.holder)}): its bucket is created afresh once the lease is free (the next repair, the timer's)`,
      };
    logger.warn({ stream: LEASE_STREAM, steps: r.steps }, "lease bucket created afresh");
    return { steps: r.steps };
  } catch (err) {
    if (!(err instanceof LanemapError)) throw err;
    logger.error({ stream: LEASE_STREAM, err: err.message }, "lease bucket not created afresh");
    return { steps: [], failed: err.message };
  }
}

/**
 * Finds the diverged copies and replaces each from the leader's, then places the replicas of every
 * stream short of them (see the module header). A repair the server refuses does not stop the
 * others: it is reported with its error (`failed`, see {@link repairFailures}).
 * @throws LanemapError (NATS_SETUP) when no monitoring URL is configured, or a stream's placement
 *   cannot be read.
 */
export async function repairReplicas(options: RepairReplicasOptions): Promise<RepairReplicasReport> {
  const { nc, monitorUrls, logger } = options;
  if (monitorUrls.length === 0)
    throw new LanemapError(
      "NATS_SETUP",
      "ops repair-replicas compares each node's copies through its monitoring endpoint: set LANEMAP_NATS_MONITOR_URLS to every node's (README \"Operations\")",
    );
  const mine = (d: { stream: string }) => options.stream === undefined || d.stream === options.stream;
  const configured = options.replicas ?? 1;
  const found = await checkReplicaAgreement(monitorUrls);
  const unseen = found.nodes.flatMap((n) => (n.node === null ? [n.url] : []));
  const targets = found.divergences.filter(mine);
  const repairs: ReplicaRepair[] = [];
  const jsm = await jetstreamManager(nc, { checkAPI: false });
  const shortfalls = async (): Promise<ReplicaShortfall[]> =>
    // Right after a node comes back the cluster may have no meta leader for ~20 s (an operator's
    // check: "JetStream system temporarily unavailable (10008)" twice, then fine): waited for.
    (await lanemapStreamPlacements(nc, jsm, { metaWaitMs: META_LEADER_WAIT_MS }))
      .map((p) => replicaShortfall(p, configured))
      .filter((x): x is ReplicaShortfall => x !== null && mine(x));
  const prunedStreams = new Set<string>();
  const stillDiverged = async (d: ReplicaDivergence): Promise<boolean> =>
    (await checkReplicaAgreement(monitorUrls)).divergences.some(
      (x) => x.stream === d.stream && x.node === d.node,
    );
  /** The lease bucket's outcome, once for all its diverged copies: the steps, or why not. */
  let leaseOutcome: { steps: readonly string[]; refused?: string; failed?: string } | undefined;
  for (const d of targets) {
    if (d.stream === LEASE_STREAM) {
      leaseOutcome ??= await recreateLeaseBucket(nc, logger, unseen, options.dryRun === true);
      // The steps are reported once, on the first copy; a refusal or failure on each.
      const first = !repairs.some((r) => r.stream === d.stream);
      const { refused, failed } = leaseOutcome;
      repairs.push({
        stream: d.stream,
        node: d.node,
        why: d.why,
        steps: first ? leaseOutcome.steps : [],
        ...(refused === undefined ? {} : { refused }),
        ...(failed === undefined ? {} : { failed }),
      });
      continue;
    }
    // The stream's group: the nodes holding the reference copy and every node named diverged.
    const group = new Set([
      ...d.agreeing,
      ...found.divergences.filter((x) => x.stream === d.stream).map((x) => x.node),
    ]).size;
    const trustLeader = options.trustLeader === true;
    const refused =
      unseen.length > 0
        ? unansweredRefusal(unseen)
        : d.agreeing.length * 2 <= group && !(trustLeader && d.agreeing.includes(d.reference.leader ?? ""))
          ? `no majority of ${d.stream}'s copies agree (${d.agreeing.join(", ") || "none"}): no copy to trust; --trust-leader replaces the others from the leader's (README "Operations")`
          : undefined;
    if (refused !== undefined || options.dryRun) {
      repairs.push({
        stream: d.stream,
        node: d.node,
        why: d.why,
        steps: [],
        ...(refused ? { refused } : {}),
        ...(prunable(d) ? { prune: true } : {}),
      });
      continue;
    }
    // A follower holding what its leader removed is pruned, not replaced: a new copy of such a
    // stream brings the removed messages back (prunable's comment), and pruning keeps all 3 copies.
    const pruned: string[] = [];
    if (prunable(d) && !prunedStreams.has(d.stream)) {
      prunedStreams.add(d.stream);
      try {
        pruned.push(...(await pruneToLeader(jsm, d.stream, { fromSeq: d.copy?.firstSeq ?? 1 })));
        logger.warn(
          { stream: d.stream, node: d.node, why: d.why, steps: pruned },
          "pruned a replica to its leader's",
        );
        if (!(await stillDiverged(d))) {
          repairs.push({ stream: d.stream, node: d.node, why: d.why, steps: pruned });
          continue;
        }
      } catch (err) {
        if (!(err instanceof LanemapError)) throw err;
        logger.warn(
          { stream: d.stream, node: d.node, err: err.message },
          "prune refused; replacing the replica",
        );
      }
    }
    logger.warn({ stream: d.stream, node: d.node, why: d.why }, "replacing a diverged replica");
    try {
      const steps = [...pruned, ...(await replaceReplica(nc, jsm, d.stream, d.node))];
      logger.info({ stream: d.stream, node: d.node, steps }, "replica replaced");
      repairs.push({ stream: d.stream, node: d.node, why: d.why, steps });
    } catch (err) {
      if (!(err instanceof LanemapError)) throw err;
      logger.error({ stream: d.stream, node: d.node, err: err.message }, "replica not replaced");
      repairs.push({ stream: d.stream, node: d.node, why: d.why, steps: [], failed: err.message });
    }
  }
  // After the replacements (each ends by placing its stream's replicas): what is still short.
  const failedStreams = new Set(repairs.filter((r) => r.failed !== undefined).map((r) => r.stream));
  const placements: ReplicaPlacement[] = [];
  for (const short of await shortfalls()) {
    // A stream whose replacement just failed was left as its error says: not tried twice in a run.
    if (options.dryRun || failedStreams.has(short.stream)) {
      placements.push({ ...short, steps: [] });
      continue;
    }
    logger.warn({ stream: short.stream, why: short.why }, "placing a stream's missing replicas");
    try {
      const steps = await placeReplicas(
        jsm,
        short.stream,
        short.wanted,
        options.settleMs === undefined ? {} : { settleMs: options.settleMs },
      );
      logger.info({ stream: short.stream, steps }, "replicas placed");
      placements.push({ ...short, steps });
    } catch (err) {
      if (!(err instanceof LanemapError)) throw err;
      logger.error({ stream: short.stream, err: err.message }, "replicas not placed");
      placements.push({ ...short, steps: [], failed: err.message });
    }
  }
  const changed = repairs.some((r) => r.steps.length > 0 || r.failed) || placements.length > 0;
  let remaining =
    options.dryRun || !changed
      ? targets
      : (await checkReplicaAgreement(monitorUrls)).divergences.filter(mine);
  // A copy just placed (a replacement, a placement) that replayed its stream's log holds what the
  // leader removed outside it (a work-queue's acknowledged tasks): pruned now, once per stream.
  const fresh = new Set([
    ...repairs.filter((r) => r.steps.length > 0).map((r) => r.stream),
    ...placements.filter((p) => p.steps.length > 0).map((p) => p.stream),
  ]);
  const afterwards = remaining.filter((d) => fresh.has(d.stream) && prunable(d) && unseen.length === 0);
  for (const stream of new Set(afterwards.map((d) => d.stream))) {
    const fromSeq = Math.min(
      ...afterwards.filter((d) => d.stream === stream).map((d) => d.copy?.firstSeq ?? 1),
    );
    const nodes = afterwards.filter((d) => d.stream === stream).map((d) => d.node);
    try {
      const steps = await pruneToLeader(jsm, stream, { fromSeq });
      logger.warn({ stream, nodes, steps }, "pruned the replicas just placed to their leader's");
      for (const d of afterwards.filter((x) => x.stream === stream)) {
        const i = repairs.findIndex((r) => r.stream === stream && r.node === d.node);
        if (i >= 0) repairs[i] = { ...repairs[i]!, steps: [...repairs[i]!.steps, ...steps] };
        else repairs.push({ stream, node: d.node, why: d.why, steps });
      }
    } catch (err) {
      if (!(err instanceof LanemapError)) throw err;
      logger.error({ stream, nodes, err: err.message }, "replicas just placed not pruned");
      for (const node of nodes)
        repairs.push({
          stream,
          node,
          why: "holds messages its leader removed",
          steps: [],
          failed: err.message,
        });
    }
  }
  if (afterwards.length > 0) remaining = (await checkReplicaAgreement(monitorUrls)).divergences.filter(mine);
  const unplaced = options.dryRun ? placements.map(shortfallOf) : await shortfalls();
  return { dryRun: options.dryRun, repairs, placements, remaining, unplaced, unanswered: unseen };
}

const shortfallOf = (p: ReplicaPlacement): ReplicaShortfall => ({
  stream: p.stream,
  wanted: p.wanted,
  replicas: p.replicas,
  placed: p.placed,
  why: p.why,
});

/** The one-line errors of the repairs and placements that were tried and failed. */
export function repairFailures(r: RepairReplicasReport): string[] {
  return [...r.repairs, ...r.placements].flatMap((x) => (x.failed === undefined ? [] : [x.failed]));
}

/**
 * The exit code of `ops repair-replicas` (README "Operations", infra/ops/README.md): 1 when a
 * repair was tried and failed (the CLI prints its error on stderr); 3 when copies still disagree,
 * a replica is still unplaced, or a node's monitoring did not answer (its copies not compared);
 * 0 otherwise, and on a dry run that found only what it would repair.
 */
export function repairExitCode(r: RepairReplicasReport): number {
  if (repairFailures(r).length > 0) return OPS_EXIT.error;
  if (r.unanswered.length > 0) return OPS_EXIT.checkFailed;
  if (!r.dryRun && (r.remaining.length > 0 || r.unplaced.length > 0)) return OPS_EXIT.checkFailed;
  return OPS_EXIT.ok;
}

/** `ops repair-replicas` as text. */
export function formatRepairReplicas(r: RepairReplicasReport): string {
  if (r.repairs.length === 0 && r.placements.length === 0)
    return r.unanswered.length === 0
      ? "every stream's copies agree and every replica is placed: nothing to repair"
      : `the answering nodes' copies agree; not compared: ${r.unanswered.join(", ")} (its monitoring does not answer), so nothing is repaired until it does`;
  const out: string[] = [];
  for (const x of r.repairs) {
    out.push(`${x.stream} on node ${x.node}: ${x.why}`);
    if (x.refused) out.push(`  NOT REPAIRED: ${x.refused}`);
    else if (x.failed) out.push(`  FAILED: ${x.failed}`);
    else if (r.dryRun)
      out.push(
        x.prune
          ? "  would be pruned to the leader's copy (the messages the leader removed deleted from it), replaced only if it still disagrees (dry run)"
          : "  would be replaced by a fresh copy from the leader (dry run)",
      );
    else for (const s of x.steps) out.push(`  ${s}`);
  }
  for (const x of r.placements) {
    out.push(`${x.stream}: ${x.why}`);
    if (x.failed) {
      for (const s of x.steps) out.push(`  ${s}`);
      out.push(`  FAILED: ${x.failed}`);
    } else if (r.dryRun)
      out.push(
        `  would be rescaled to its ${x.placed.length} placed peer(s) and back to R${x.wanted} until placed (dry run)`,
      );
    else for (const s of x.steps) out.push(`  ${s}`);
  }
  if (!r.dryRun) {
    out.push(
      r.remaining.length === 0
        ? "every stream's copies agree now"
        : `still diverged: ${r.remaining.map((d) => `${d.stream} on ${d.node}`).join(", ")}`,
    );
    if (r.unplaced.length > 0)
      out.push(`still short of replicas: ${r.unplaced.map((u) => `${u.stream} (${u.why})`).join(", ")}`);
  }
  if (r.unanswered.length > 0)
    out.push(`not compared: ${r.unanswered.join(", ")} (its monitoring does not answer)`);
  return out.join("\n");
}
