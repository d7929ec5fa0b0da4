/**
 * A live-view follower whose watch delivers nothing gives its start up instead of waiting forever:
 * nats-server 2.9 may place the watch's consumer on an offline peer of a cluster (nats-server
 * PR #7165), and then its initial replay never comes; `serve` awaited it at start (issue 14).
 * Made exact here: the server creates the consumer but never delivers its messages to this
 * client. nats.js delivers an ordered consumer's messages to `_INBOX.<token>.<serial>` (serial 1,
 * then 2, ... each time it recreates the consumer); the replies to requests come on
 * `_INBOX.<token>.<random token>`, never a small number, so they still arrive.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { connect } from "@nats-io/transport-node";
import { LiveView } from "../../shared/adapters/nats/index.js";
import { isTransientBrokerError } from "../../shared/adapters/nats/jetstream-errors.js";
import { natsMissing } from "../helpers/nats.js";
import { startNatsServerWithUsers } from "../helpers/nats-permissions.js";

/** The follower's bound on a replay without progress here, and how long the test waits at most. */
const IDLE_MS = 3_000;
const WAIT_MS = 20_000;

describe("a live-view follower whose watch is stalled", { skip: natsMissing() }, () => {
  test("gives its start up with a transient error once the replay delivers nothing for its bound", async () => {
    await using server = await startNatsServerWithUsers([
      { user: "admin", password: "admin" },
      {
        user: "deaf",
        password: "deaf",
        denySubscribe: Array.from({ length: 9 }, (_, i) => `_INBOX.*.${i + 1}`),
      },
    ]);
    const admin = await connect({ servers: server.url, user: "admin", pass: "admin" });
    const deaf = await connect({ servers: server.url, user: "deaf", pass: "deaf" });
    try {
      const writer = await LiveView.open(admin);
      await writer.put({
        result: {
          lane: "live",
          tileId: "t1",
          cell: "c0001r0001",
          acquired: "2026-11-01T10:00:00Z",
          ingestSeq: 1,
          contentHash: "a".repeat(64),
          modelVersion: "m1",
          width: 1,
          height: 1,
          geoTransform: [0, 30, 0, 0, 0, -30],
          epsg: 32615,
          proj4: null,
          boundsWgs84: null,
          validPixels: 1,
          counts: [0, 1],
          areasM2: [0, 900],
          dominantClass: 1,
          meanConfidence: 1,
          processedAt: "2026-11-01T10:00:01Z",
        },
        k: 5,
        raster: new Uint8Array([1, 5]),
      });
      const view = await LiveView.open(deaf);
      const at = performance.now();
      const outcome = await Promise.race([
        view.follow(undefined, { idleMs: IDLE_MS }).then(
          (f) => {
            f.stop();
            return "followed" as const;
          },
          (err: unknown) => err,
        ),
        new Promise<"hung">((r) => setTimeout(() => r("hung"), WAIT_MS).unref()),
      ]);
      const took = performance.now() - at;
      assert.notEqual(outcome, "hung", `follow() settled within ${WAIT_MS} ms`);
      assert.notEqual(outcome, "followed", "a follower that heard nothing is not a follower");
      assert.ok(
        isTransientBrokerError(outcome),
        `a transient error, which serving retries: ${String(outcome)}`,
      );
      assert.ok(
        took >= IDLE_MS && took < IDLE_MS + 5_000,
        `given up after its bound: ${Math.round(took)} ms`,
      );
    } finally {
      await deaf.close();
      await admin.close();
    }
  });
});
