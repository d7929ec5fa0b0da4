import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { divergenceReasons, formatRepairReplicas } from "../../infra/ops/index.js";
import {
  copyDisagreement,
  replicaDivergences,
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
});

describe("ops repair-replicas' report", () => {
  test("with a node's monitoring silent it does not say there is nothing to repair: it names the node not compared", () => {
    const text = formatRepairReplicas({
      dryRun: false,
      repairs: [],
      remaining: [],
      unanswered: ["http://127.0.0.1:8222"],
    });
    assert.doesNotMatch(text, /nothing to repair$/);
    assert.match(text, /not compared: http:\/\/127\.0\.0\.1:8222 \(its monitoring does not answer\)/);
  });

  test("with every node answering and no copy diverged there is nothing to repair", () => {
    const text = formatRepairReplicas({ dryRun: false, repairs: [], remaining: [], unanswered: [] });
    assert.equal(text, "every stream's copies agree: nothing to repair");
  });
});
