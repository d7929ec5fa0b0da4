import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { StreamInfo } from "@nats-io/jetstream";
import { degradedReasons, formatStatus, type OpsStatus } from "../../infra/ops/index.js";
import {
  LANEMAP_STREAMS,
  checkReplicas,
  expectedLanemapStreams,
  isArchiveStream,
  isViewStream,
  mergeStreamPages,
  placementOf,
  type StreamListPage,
} from "../../shared/adapters/nats/index.js";

/** A StreamInfo as the server sends it, with only what placementOf reads. */
const info = (name: string, replicas: number, cluster?: StreamInfo["cluster"]): StreamInfo =>
  ({
    config: { name, num_replicas: replicas },
    state: { messages: 7, bytes: 1024 },
    ...(cluster ? { cluster } : {}),
  }) as unknown as StreamInfo;

const status = (streams: OpsStatus["streams"]): OpsStatus => ({
  at: "2026-11-30T18:00:00.000Z",
  dataDir: "/var/lib/lanemap/data",
  batch: { storage: "files", current: null, versions: [], runs: { active: [], abandoned: [], advice: [] } },
  nats: { ok: true, url: "nats://a:4222,nats://b:4222,nats://c:4222" },
  health: "ok",
  degraded: [],
  live: null,
  ingest: null,
  ingestBehind: null,
  consumer: null,
  deadLetters: 0,
  model: null,
  archive: null,
  streams,
  replicaCopies: null,
});

describe("where a stream lives in the cluster", () => {
  test("a single server's stream has no cluster, no leader and no peers", () => {
    const p = placementOf(info("LANEMAP_TILES", 1));
    assert.deepEqual(p, {
      stream: "LANEMAP_TILES",
      replicas: 1,
      messages: 7,
      bytes: 1024,
      cluster: null,
      leader: null,
      healthy: true,
      peers: [],
    });
  });

  test("a cluster stream names its leader and its peers, with their activity in seconds and whether they are offline", () => {
    const p = placementOf(
      info("KV_lanemap-live", 3, {
        name: "lanemap",
        leader: "lanemap-a",
        replicas: [
          { name: "lanemap-b", current: true, offline: false, active: 250_000_000, lag: 0 },
          { name: "lanemap-c", current: false, offline: true, active: 12_000_000_000, lag: 40 },
        ],
      }),
    );
    assert.equal(p.leader, "lanemap-a");
    assert.deepEqual(p.peers, [
      { name: "lanemap-b", current: true, offline: false, activeS: 0.25, lag: 0 },
      { name: "lanemap-c", current: false, offline: true, activeS: 12, lag: 40 },
    ]);
  });

  test("ops status prints one line per stream: replicas, leader, peers behind or offline, and a leaderless stream as no quorum", () => {
    const text = formatStatus(
      status([
        placementOf(
          info("KV_lanemap-live", 3, {
            name: "lanemap",
            leader: "lanemap-a",
            replicas: [
              { name: "lanemap-b", current: false, offline: false, active: 200_000_000, lag: 3 },
              { name: "lanemap-c", current: false, offline: true, active: 0, lag: 0 },
            ],
          }),
        ),
        placementOf(info("LANEMAP_DLQ", 3, { name: "lanemap" })),
        placementOf(info("LANEMAP_TILES", 1)),
      ]),
    );
    const lines = text.split("\n").filter((l) => /^(streams| {10})/.test(l));
    assert.deepEqual(lines, [
      "streams   KV_lanemap-live  R3  cluster lanemap  leader lanemap-a  peers lanemap-b behind (lag 3), lanemap-c offline  7 msg  DEGRADED",
      "          LANEMAP_DLQ  R3  cluster lanemap  leader NONE (no quorum)  7 msg  DEGRADED",
      "          LANEMAP_TILES  R1  single server  7 msg",
    ]);
    // A cluster whose copies were not compared says how to have them compared.
    assert.match(
      text,
      /^copies +not compared \(set LANEMAP_NATS_MONITOR_URLS to every node's monitoring URL\)$/m,
    );
  });

  test("a SIGKILLed node, which the server still calls online and current for 10 s, reads offline once silent for 3 s, and its streams degraded", () => {
    // What nats-server 2.9 answers 4 s after `kill -9` of n3 (offline false, current still true).
    const killed = placementOf(
      info("LANEMAP_TILES", 3, {
        name: "lanemap",
        leader: "n1",
        replicas: [
          { name: "n2", current: true, offline: false, active: 36_037_647, lag: 0 },
          { name: "n3", current: true, offline: false, active: 4_035_427_729, lag: 0 },
        ],
      }),
    );
    assert.equal(killed.healthy, false);
    assert.deepEqual(
      killed.peers.map((r) => [r.name, r.offline]),
      [
        ["n2", false],
        ["n3", true],
      ],
    );
    const alive = placementOf(
      info("KV_lanemap-live", 3, {
        name: "lanemap",
        leader: "n2",
        replicas: [
          { name: "n1", current: true, offline: false, active: 28_060_417, lag: 0 },
          { name: "n3", current: true, offline: false, active: 1_027_096_434, lag: 0 },
        ],
      }),
    );
    assert.equal(alive.healthy, true, "one second of silence is a heartbeat in flight, not a dead node");
    assert.deepEqual(degradedReasons([killed, alive]), [
      "node n3 offline (not heard from): LANEMAP_TILES without it",
    ]);
    const text = formatStatus({
      ...status([killed, alive]),
      health: "degraded",
      degraded: degradedReasons([killed]),
    });
    assert.match(text, /^nats +nats:\/\/a:4222,\S+ DEGRADED: node n3 offline/m);
    assert.match(
      text,
      /LANEMAP_TILES {2}R3 {2}cluster lanemap {2}leader n1 {2}peers n2, n3 offline {2}7 msg {2}DEGRADED$/m,
    );
  });

  test("a replica catching up is behind, not offline, and a stream short of a replica is degraded", () => {
    const p = placementOf(
      info("OBJ_lanemap-views", 3, {
        name: "lanemap",
        leader: "n1",
        replicas: [{ name: "n2", current: false, offline: false, active: 120_000_000, lag: 12 }],
      }),
    );
    assert.equal(p.healthy, false);
    assert.deepEqual(degradedReasons([p]), [
      'OBJ_lanemap-views: num_replicas 3 but 2 placed (n1, n2): 1 replica(s) unplaced; repair: lanemap ops repair-replicas --stream OBJ_lanemap-views (README "Operations")',
      "node n2 behind on OBJ_lanemap-views (lag 12)",
    ]);
  });

  test("replicas outside JetStream's 1 to 5 are refused before a request is sent", () => {
    assert.equal(checkReplicas(3), 3);
    for (const bad of [0, 6, 2.5, Number.NaN])
      assert.throws(() => checkReplicas(bad), { code: "NATS_SETUP" });
  });
});

describe("merging the pages of a stream listing taken during a leader election", () => {
  const page = (offset: number, names: string[], missing?: string[]): StreamListPage => ({
    total: 5,
    offset,
    limit: 2,
    streams: names.map((n) => info(n, 3)),
    ...(missing ? { missing } : {}),
  });
  const names = (found: ReadonlyMap<string, StreamInfo>) => [...found.keys()].sort();

  test("a stream on two pages is taken once, and an expected one no page lists is looked up", () => {
    // Page 2 repeats OBJ_lanemap-views from page 1 and so skips LANEMAP_BATCH_RESULTS (issue 14, F2).
    const merged = mergeStreamPages(
      [
        page(0, ["KV_lanemap-models", "OBJ_lanemap-views"]),
        page(2, ["OBJ_lanemap-views", "LANEMAP_TILES"]),
        page(4, ["other-app-stream"]),
      ],
      ["KV_lanemap-models", "OBJ_lanemap-views", "LANEMAP_TILES", "LANEMAP_BATCH_RESULTS"],
    );
    assert.deepEqual(names(merged.found), ["KV_lanemap-models", "LANEMAP_TILES", "OBJ_lanemap-views"]);
    assert.deepEqual(merged.lookUp, ["LANEMAP_BATCH_RESULTS"]);
  });

  test("a stream the server names missing is looked up even when lanemap does not expect it", () => {
    const merged = mergeStreamPages(
      [page(0, ["LANEMAP_TILES"], ["KV_lanemap-new-bucket", "not-ours"])],
      ["LANEMAP_TILES"],
    );
    assert.deepEqual(merged.lookUp, ["KV_lanemap-new-bucket"]);
  });

  test("a published version's own stream the server names is looked up when a listing page leaves it out, and other apps' streams are not", () => {
    const named = ["OBJ_lanemap-view-v000041", "OBJ_lanemap-view-v000042", "LANEMAP_TILES", "OBJ_other"];
    const merged = mergeStreamPages(
      [page(0, [...LANEMAP_STREAMS, "OBJ_lanemap-view-v000041"])],
      expectedLanemapStreams(named),
    );
    assert.deepEqual(merged.lookUp, ["OBJ_lanemap-view-v000042"]);
  });

  test("the view streams are the legacy bucket's and each version's own, and no other", () => {
    assert.deepEqual(
      ["OBJ_lanemap-views", "OBJ_lanemap-view-v000042", "KV_lanemap-view-pointer", "OBJ_lanemap-tiles"].map(
        isViewStream,
      ),
      [true, true, false, false],
    );
  });

  test("an archive generation's stream the server names is looked up when a listing page leaves it out", () => {
    const named = ["OBJ_lanemap-archive-g000002", "OBJ_lanemap-archive-g000003", "OBJ_lanemap-archived"];
    const merged = mergeStreamPages(
      [page(0, [...LANEMAP_STREAMS, "OBJ_lanemap-archive-g000002"])],
      expectedLanemapStreams(named),
    );
    assert.deepEqual(merged.lookUp, ["OBJ_lanemap-archive-g000003"]);
  });

  test("the archive streams are each generation's, the legacy one's, the pointer, the catalogue and the bad tiles, and no other", () => {
    assert.deepEqual(
      [
        "OBJ_lanemap-archive",
        "OBJ_lanemap-archive-g000001",
        "KV_lanemap-archive-pointer",
        "KV_lanemap-catalogue",
        "KV_lanemap-bad",
        "OBJ_lanemap-tiles",
        "OBJ_lanemap-view-v000042",
      ].map(isArchiveStream),
      [true, true, true, true, true, false, false],
    );
  });

  test("ops status names the archive's garbage and the command that drops it", () => {
    const text = formatStatus({
      ...status([]),
      archive: {
        current: 2,
        generations: [
          { generation: 0, bucket: "lanemap-archive", objects: 3, bytes: 3 * 2 ** 20 },
          { generation: 2, bucket: "lanemap-archive-g000002", objects: 1, bytes: 2 ** 20 },
        ],
        pending: [],
        entries: 2,
        named: { objects: 2, bytes: 2 * 2 ** 20 },
        garbage: { objects: 2, bytes: 2 * 2 ** 20 },
        missing: [],
      },
    });
    assert.match(
      text,
      /^archive {3}2 catalogue entries, 2 object\(s\) 2\.0 MiB {2}garbage 2 object\(s\) 2\.0 MiB \(`lanemap archive compact` drops it\) {2}generations lanemap-archive, lanemap-archive-g000002\*$/m,
    );
  });

  test("a complete listing leaves nothing to look up and no stream twice", () => {
    const merged = mergeStreamPages([page(0, [...LANEMAP_STREAMS])]);
    assert.deepEqual(names(merged.found), [...LANEMAP_STREAMS].sort());
    assert.deepEqual(merged.lookUp, []);
  });

  test("a stream that did not answer is degraded, named, with the reason", () => {
    const silent = (noAnswer: string) => ({
      stream: "LANEMAP_BATCH_RESULTS",
      replicas: 0,
      messages: 0,
      bytes: 0,
      cluster: null,
      leader: null,
      healthy: false,
      peers: [],
      noAnswer,
    });
    const text = formatStatus({
      ...status([silent("left out of the listing, and STREAM.INFO LANEMAP_BATCH_RESULTS: timeout")]),
    });
    assert.match(text, /LANEMAP_BATCH_RESULTS {2}no answer now {2}DEGRADED$/m);
    assert.deepEqual(degradedReasons([silent("timeout")]), [
      "LANEMAP_BATCH_RESULTS: no answer now (timeout)",
    ]);
  });
});
