/**
 * `lanemap ops repair-replicas`: replaces the copies of lanemap streams that diverged from the
 * others (nats-server 2.9 can leave a replica with other messages than its peers after abrupt
 * stops during catch-up, while its leader reports it current: issue 14 F3, README "Operations").
 * The copies are compared as `ops status` compares them (each node's own /jsz, through
 * LANEMAP_NATS_MONITOR_URLS); each odd copy is dropped and copied again from the leader
 * (shared/adapters/nats/replicas.ts `replaceReplica`), then the copies are compared again.
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
  checkReplicaAgreement,
  replaceReplica,
  type ReplicaDivergence,
} from "../../shared/adapters/nats/index.js";
import { LanemapError } from "../../shared/index.js";

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
}

/** What {@link repairReplicas} did. */
export interface RepairReplicasReport {
  readonly dryRun: boolean;
  readonly repairs: readonly ReplicaRepair[];
  /** Copies that still disagree after the repairs (empty on success; the divergences on a dry run). */
  readonly remaining: readonly ReplicaDivergence[];
  /**
   * Monitoring URLs that did not answer (a node down or frozen): their nodes' copies were not
   * compared, so "nothing to repair" cannot be said (an operator's check with a node SIGSTOPped).
   */
  readonly unanswered: readonly string[];
}

/**
 * Finds the diverged copies and replaces each from the leader's (see the module header).
 * @throws LanemapError (NATS_SETUP) when no monitoring URL is configured; what `replaceReplica`
 *   throws when the server refuses a step.
 */
export async function repairReplicas(options: RepairReplicasOptions): Promise<RepairReplicasReport> {
  const { nc, monitorUrls, logger } = options;
  if (monitorUrls.length === 0)
    throw new LanemapError(
      "NATS_SETUP",
      "ops repair-replicas compares each node's copies through its monitoring endpoint: set LANEMAP_NATS_MONITOR_URLS to every node's (README \"Operations\")",
    );
  const mine = (d: ReplicaDivergence) => options.stream === undefined || d.stream === options.stream;
  const found = await checkReplicaAgreement(monitorUrls);
  const unseen = found.nodes.flatMap((n) => (n.node === null ? [n.url] : []));
  const targets = found.divergences.filter(mine);
  const repairs: ReplicaRepair[] = [];
  const jsm = await jetstreamManager(nc, { checkAPI: false });
  for (const d of targets) {
    // The stream's group: the nodes holding the reference copy and every node named diverged.
    const group = new Set([
      ...d.agreeing,
      ...found.divergences.filter((x) => x.stream === d.stream).map((x) => x.node),
    ]).size;
    const refused =
      unseen.length > 0
        ? `node monitoring ${unseen.join(", ")} does not answer: the stream may have no other copy`
        : d.agreeing.length * 2 <= group &&
            !(options.trustLeader && d.agreeing.includes(d.reference.leader ?? ""))
          ? `no majority of ${d.stream}'s copies agree (${d.agreeing.join(", ") || "none"}): no copy to trust; --trust-leader replaces the others from the leader's (README "Operations")`
          : undefined;
    if (refused !== undefined || options.dryRun) {
      repairs.push({
        stream: d.stream,
        node: d.node,
        why: d.why,
        steps: [],
        ...(refused ? { refused } : {}),
      });
      continue;
    }
    logger.warn({ stream: d.stream, node: d.node, why: d.why }, "replacing a diverged replica");
    const steps = await replaceReplica(nc, jsm, d.stream, d.node);
    logger.info({ stream: d.stream, node: d.node, steps }, "replica replaced");
    repairs.push({ stream: d.stream, node: d.node, why: d.why, steps });
  }
  const remaining =
    options.dryRun || repairs.every((r) => r.steps.length === 0)
      ? targets
      : (await checkReplicaAgreement(monitorUrls)).divergences.filter(mine);
  return { dryRun: options.dryRun, repairs, remaining, unanswered: unseen };
}

/** `ops repair-replicas` as text. */
export function formatRepairReplicas(r: RepairReplicasReport): string {
  if (r.repairs.length === 0)
    return r.unanswered.length === 0
      ? "every stream's copies agree: nothing to repair"
      : `the answering nodes' copies agree; not compared: ${r.unanswered.join(", ")} (its monitoring does not answer), so nothing is repaired until it does`;
  const out: string[] = [];
  for (const x of r.repairs) {
    out.push(`${x.stream} on node ${x.node}: ${x.why}`);
    if (x.refused) out.push(`  NOT REPAIRED: ${x.refused}`);
    else if (r.dryRun) out.push("  would be replaced by a fresh copy from the leader (dry run)");
    else for (const s of x.steps) out.push(`  ${s}`);
  }
  if (!r.dryRun)
    out.push(
      r.remaining.length === 0
        ? "every stream's copies agree now"
        : `still diverged: ${r.remaining.map((d) => `${d.stream} on ${d.node}`).join(", ")}`,
    );
  return out.join("\n");
}
