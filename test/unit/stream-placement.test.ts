import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { StreamInfo } from "@nats-io/jetstream";
import { formatStatus, type OpsStatus } from "../../infra/ops/index.js";
import { checkReplicas, placementOf } from "../../shared/adapters/nats/index.js";

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
  batch: { storage: "files", current: null, versions: [] },
  nats: { ok: true, url: "nats://a:4222,nats://b:4222,nats://c:4222" },
  live: null,
  ingest: null,
  consumer: null,
  deadLetters: 0,
  model: null,
  streams,
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
              { name: "lanemap-b", current: false, offline: false, active: 0, lag: 3 },
              { name: "lanemap-c", current: false, offline: true, active: 0, lag: 0 },
            ],
          }),
        ),
        placementOf(info("LANEMAP_DLQ", 3, { name: "lanemap" })),
        placementOf(info("LANEMAP_TILES", 1)),
      ]),
    );
    const lines = text.split("\n").filter((l) => /KV_|LANEMAP_/.test(l));
    assert.deepEqual(lines, [
      "streams   KV_lanemap-live  R3  cluster lanemap  leader lanemap-a  peers lanemap-b behind, lanemap-c offline  7 msg",
      "          LANEMAP_DLQ  R3  cluster lanemap  leader NONE (no quorum)  7 msg",
      "          LANEMAP_TILES  R1  single server  7 msg",
    ]);
  });

  test("replicas outside JetStream's 1 to 5 are refused before a request is sent", () => {
    assert.equal(checkReplicas(3), 3);
    for (const bad of [0, 6, 2.5, Number.NaN])
      assert.throws(() => checkReplicas(bad), { code: "NATS_SETUP" });
  });
});
