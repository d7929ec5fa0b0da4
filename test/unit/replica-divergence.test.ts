import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  degradedReasons,
  divergenceReasons,
  formatRepairReplicas,
  repairExitCode,
  repairFailures,
  type RepairReplicasReport,
} from "../../infra/ops/index.js";
import {
  copyDisagreement,
  placementOf,
  prunable,
  replicaDivergences,
  replicaShortfall,
  type NodeCopies,
  type ReplicaCopy,
} from "../../shared/adapters/nats/index.js";

const NODES = ["a", "b", "c"] as const;

/** A copy of the stream on `node`, led by `leader`, in a group of a, b and c. */
const copy = (
  node: string,
  leader: string,
  messages: number,
  firstSeq: number,
  lastSeq: number,
): ReplicaCopy => ({
  messages,
  firstSeq,
  lastSeq,
  numDeleted: lastSeq - firstSeq + 1 - messages,
  leader,
  peers: NODES.filter((n) => n !== node),
});

/** Each node's copy of OBJ_lanemap-views ([messages, first_seq, last_seq], or null for none). */
const sample = (leader: string, ...copies: ([number, number, number] | null)[]): NodeCopies[] =>
  NODES.map((node, i) => {
    const c = copies[i];
    return {
      node,
      streams: new Map(c ? [["OBJ_lanemap-views", copy(node, leader, ...c)]] : []),
    };
  });

describe("which copies of a stream diverged", () => {
  test("copies that agree on every node are no divergence", () => {
    assert.deepEqual(replicaDivergences(sample("a", [262, 5, 266], [262, 5, 266], [262, 5, 266])), []);
  });

  test("empty copies agree whatever first_seq each node reports (0 never written, last_seq + 1 after)", () => {
    assert.deepEqual(replicaDivergences(sample("b", [0, 0, 0], [0, 1, 0], [0, 1, 0])), []);
    assert.equal(copyDisagreement(copy("a", "b", 0, 0, 0), copy("b", "b", 0, 1, 0), true), null);
  });

  test("a follower behind its leader, or a leader ahead of its followers, is catching up, not diverged", () => {
    assert.deepEqual(replicaDivergences(sample("a", [262, 5, 266], [250, 5, 254], [262, 5, 266])), []);
    assert.deepEqual(replicaDivergences(sample("a", [270, 9, 278], [262, 5, 266], [262, 5, 266])), []);
  });

  test("the operator's case: node a holds 141 messages from another first_seq where b and c hold 262; a is named, whether it leads or not", () => {
    for (const leader of ["a", "b"]) {
      const d = replicaDivergences(sample(leader, [141, 126, 266], [262, 5, 266], [262, 5, 266]));
      assert.deepEqual(
        d.map((x) => [x.stream, x.node, x.isLeader, x.agreeing]),
        [["OBJ_lanemap-views", "a", leader === "a", ["b", "c"]]],
      );
      assert.match(
        d[0]!.why,
        /holds 141 msgs, first_seq 126, last_seq 266, 0 deleted where the others hold 262 msgs, first_seq 5, last_seq 266, 0 deleted at the same last_seq/,
      );
    }
  });

  test("a follower holding messages its leader removed is pruned, not replaced; a leader's odd copy, a copy lacking messages or one running ahead is replaced", () => {
    // The operator's case: the copy just placed kept 166 acknowledged tasks the others removed.
    const [follower] = replicaDivergences(sample("b", [166, 1, 166], [0, 167, 166], [0, 167, 166]));
    assert.equal(prunable(follower!), true);
    const [leader] = replicaDivergences(sample("a", [166, 1, 166], [0, 167, 166], [0, 167, 166]));
    assert.equal(prunable(leader!), false, "the leader's copy: stepped down and replaced");
    const [lacking] = replicaDivergences(sample("b", [141, 126, 266], [262, 5, 266], [262, 5, 266]));
    assert.equal(prunable(lacking!), false, "a copy that lost messages gets them back only by a copy");
    const [ahead] = replicaDivergences(
      sample("b", [40, 1, 300], [0, 267, 266], [0, 267, 266]),
      new Set(["OBJ_lanemap-views"]),
    );
    assert.equal(prunable(ahead!), false, "messages past the leader's last are not the leader's to judge");
  });

  test("a node the stream's group names that holds no copy is named", () => {
    const d = replicaDivergences(sample("b", null, [262, 5, 266], [262, 5, 266]));
    assert.deepEqual(
      d.map((x) => [x.node, x.copy]),
      [["a", null]],
    );
    assert.match(d[0]!.why, /holds no copy/);
  });

  test("a node whose monitoring did not answer is not named: it is reported as unanswered instead", () => {
    const answered = sample("b", [1, 1, 1], [262, 5, 266], [262, 5, 266]).slice(1);
    assert.deepEqual(replicaDivergences(answered), []);
  });

  test("with no majority the leader's copy is the reference", () => {
    const d = replicaDivergences(sample("c", [100, 5, 266], [200, 5, 266], [262, 5, 266]));
    assert.deepEqual(
      d.map((x) => [x.node, x.agreeing]),
      [
        ["a", ["c"]],
        ["b", ["c"]],
      ],
    );
    assert.match(d[0]!.why, /where the leader c holds 262 msgs/, "not 'the others', who disagree too");
  });

  test("a copy behind with first_seq ahead of the others lost its head: diverged even while writes go on", () => {
    const ref = copy("b", "b", 262, 5, 266);
    assert.match(copyDisagreement(copy("a", "b", 20, 200, 219), ref, false) ?? "", /opposite sides/);
  });

  test("a copy behind is diverged only once the stream was idle between two samples", () => {
    const ref = copy("b", "b", 262, 5, 266);
    const behind = copy("a", "b", 250, 5, 254);
    assert.equal(copyDisagreement(behind, ref, false), null);
    assert.match(copyDisagreement(behind, ref, true) ?? "", /while the stream was idle/);
  });

  test("ops status names the stream, the node, both figures and the repair, and every silent monitoring URL", () => {
    const divergences = replicaDivergences(sample("a", [141, 126, 266], [262, 5, 266], [262, 5, 266]));
    const lines = divergenceReasons({
      nodes: [{ url: "http://c:8222", node: null, error: "connect ECONNREFUSED" }],
      divergences,
    });
    assert.deepEqual(lines, [
      "node monitoring http://c:8222 does not answer (connect ECONNREFUSED): its copies not compared",
      `OBJ_lanemap-views diverged on node a (its leader): ${divergences[0]!.why} (b, c agree); repair: lanemap ops repair-replicas --stream OBJ_lanemap-views (README "Operations", replicas that diverge)`,
    ]);
  });

  test("with no majority ops status says whose copy it compared with, not that one node 'agrees'", () => {
    const divergences = replicaDivergences(sample("c", [100, 5, 266], [200, 5, 266], [262, 5, 266]));
    const [line] = divergenceReasons({ nodes: [], divergences });
    assert.match(
      line!,
      /where the leader c holds 262 msgs.* \(no majority agrees: compared with c's copy\); repair:/,
    );
  });
});

/** A clustered stream's placement: num_replicas `replicas`, led by `leader`, other peers `peers`. */
const placed = (stream: string, replicas: number, leader: string, ...peers: string[]) =>
  placementOf({
    config: { name: stream, num_replicas: replicas },
    state: { messages: 230, bytes: 23_000 },
    cluster: {
      name: "lanemap",
      leader,
      replicas: peers.map((name) => ({ name, current: true, offline: false, active: 50_000_000, lag: 0 })),
    },
  } as unknown as Parameters<typeof placementOf>[0]);

describe("a stream short of placed replicas", () => {
  test("num_replicas 3 with two peers placed is one replica unplaced, named with the peers it has", () => {
    const short = replicaShortfall(placed("OBJ_lanemap-views", 3, "n2", "n3"));
    assert.deepEqual(short, {
      stream: "OBJ_lanemap-views",
      wanted: 3,
      replicas: 3,
      placed: ["n2", "n3"],
      why: "num_replicas 3 but 2 placed (n2, n3): 1 replica(s) unplaced",
    });
  });

  test("num_replicas lowered below LANEMAP_NATS_REPLICAS (a repair whose scale-up was refused) is short; unknown config leaves it alone", () => {
    const p = placed("OBJ_lanemap-views", 2, "n2", "n3");
    assert.equal(replicaShortfall(p), null);
    assert.deepEqual(replicaShortfall(p, 3), {
      stream: "OBJ_lanemap-views",
      wanted: 3,
      replicas: 2,
      placed: ["n2", "n3"],
      why: "num_replicas 2 (n2, n3) where LANEMAP_NATS_REPLICAS asks 3: lowered",
    });
  });

  test("a stream with every replica placed, or more than config asks, is not short", () => {
    assert.equal(replicaShortfall(placed("KV_lanemap-live", 3, "n1", "n2", "n3"), 3), null);
    assert.equal(replicaShortfall(placed("KV_lanemap-live", 3, "n1", "n2", "n3"), 1), null);
  });

  test("ops status calls a lowered stream degraded and names the repair", () => {
    assert.deepEqual(degradedReasons([placed("OBJ_lanemap-views", 2, "n2", "n3")], 3), [
      'OBJ_lanemap-views: num_replicas 2 (n2, n3) where LANEMAP_NATS_REPLICAS asks 3: lowered; repair: lanemap ops repair-replicas --stream OBJ_lanemap-views (README "Operations")',
    ]);
    assert.deepEqual(degradedReasons([placed("OBJ_lanemap-views", 2, "n2", "n3")]), []);
  });
});

const report = (r: Partial<RepairReplicasReport>): RepairReplicasReport => ({
  dryRun: false,
  repairs: [],
  placements: [],
  remaining: [],
  unplaced: [],
  unanswered: [],
  ...r,
});

const unplacedViews = replicaShortfall(placed("OBJ_lanemap-views", 3, "n2", "n3"))!;

describe("ops repair-replicas' report", () => {
  test("with a node's monitoring silent it does not say there is nothing to repair: it names the node not compared", () => {
    const r = report({ unanswered: ["http://127.0.0.1:8222"] });
    const text = formatRepairReplicas(r);
    assert.doesNotMatch(text, /nothing to repair$/);
    assert.match(text, /not compared: http:\/\/127\.0\.0\.1:8222 \(its monitoring does not answer\)/);
    assert.equal(repairExitCode(r), 3);
  });

  test("with every node answering, no copy diverged and every replica placed there is nothing to repair (exit 0)", () => {
    const r = report({});
    assert.equal(
      formatRepairReplicas(r),
      "every stream's copies agree and every replica is placed: nothing to repair",
    );
    assert.equal(repairExitCode(r), 0);
  });

  test("a dry run lists an unplaced replica though the placed copies agree, and exits 0", () => {
    const r = report({
      dryRun: true,
      placements: [{ ...unplacedViews, steps: [] }],
      unplaced: [unplacedViews],
    });
    const text = formatRepairReplicas(r);
    assert.equal(
      text,
      "OBJ_lanemap-views: num_replicas 3 but 2 placed (n2, n3): 1 replica(s) unplaced\n" +
        "  would be rescaled to its 2 placed peer(s) and back to R3 until placed (dry run)",
    );
    assert.equal(repairExitCode(r), 0);
  });

  test("an unplaced replica placed is reported with its steps (exit 0); one still short after the run is exit 3", () => {
    const steps = ["rescaled R2 -> R3: 1 new replica(s) placed", "peers n2, n3, n1 current"];
    const done = report({ placements: [{ ...unplacedViews, steps }] });
    assert.equal(
      formatRepairReplicas(done),
      "OBJ_lanemap-views: num_replicas 3 but 2 placed (n2, n3): 1 replica(s) unplaced\n" +
        "  rescaled R2 -> R3: 1 new replica(s) placed\n  peers n2, n3, n1 current\n" +
        "every stream's copies agree now",
    );
    assert.equal(repairExitCode(done), 0);
    const still = report({ placements: [{ ...unplacedViews, steps }], unplaced: [unplacedViews] });
    assert.match(
      formatRepairReplicas(still),
      /still short of replicas: OBJ_lanemap-views \(num_replicas 3 but 2 placed/,
    );
    assert.equal(repairExitCode(still), 3);
  });

  test("a placement or replacement the server refused is FAILED with its one line, and the command exits 1", () => {
    const failed =
      "OBJ_lanemap-views: 3 replicas not placed after 3 attempt(s) (last: R3 refused: no suitable peers for placement, peer offline (10005)); left at num_replicas 2 with 2 placed (n2, n3); run again once every node is up and current: lanemap ops repair-replicas --stream OBJ_lanemap-views";
    const r = report({ placements: [{ ...unplacedViews, steps: [], failed }], unplaced: [unplacedViews] });
    assert.match(formatRepairReplicas(r), new RegExp(`\n  FAILED: ${failed.replace(/[()]/g, "\\$&")}\n`));
    assert.deepEqual(repairFailures(r), [failed]);
    assert.equal(repairExitCode(r), 1);
    const replaced = report({
      repairs: [
        {
          stream: "KV_lanemap-live",
          node: "n1",
          why: "holds no copy",
          steps: [],
          failed: "KV_lanemap-live: x",
        },
      ],
    });
    assert.deepEqual(repairFailures(replaced), ["KV_lanemap-live: x"]);
    assert.equal(repairExitCode(replaced), 1);
  });

  test("copies still diverged after the repairs exit 3; on a dry run the divergences found exit 0", () => {
    const d = replicaDivergences(sample("b", [141, 126, 266], [262, 5, 266], [262, 5, 266]));
    assert.equal(repairExitCode(report({ remaining: d })), 3);
    assert.equal(repairExitCode(report({ dryRun: true, remaining: d })), 0);
  });
});
