/**
 * A start-up step on NATS that meets a transient broker error (no JetStream leader yet, here a
 * server without JetStream: "jetstream is not enabled", what nats.js reports for no responders)
 * is retried for a bounded time and then fails with an error naming the step — the operator's
 * bare "lanemap: timeout" of issue 14 came from such steps of `ingest` and `serve`. Real
 * nats-server.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { retryTransient } from "../../shared/adapters/nats/index.js";
import { LanemapError } from "../../shared/index.js";
import { natsMissing, startBareNatsServer } from "../helpers/nats.js";

describe("transient broker errors at start-up", { skip: natsMissing() }, () => {
  test("a step is retried until its deadline, then fails naming the step and the broker's reason", async () => {
    await using server = await startBareNatsServer({ jetstream: false });
    const nc = await connect({ servers: server.url });
    try {
      let attempts = 0;
      const t0 = Date.now();
      await assert.rejects(
        retryTransient("serve start-up: reaching JetStream", () => (attempts++, jetstreamManager(nc)), {
          deadlineMs: 1_500,
        }),
        (err: unknown) =>
          err instanceof LanemapError &&
          err.code === "NATS_CONNECT" &&
          err.message === "serve start-up: reaching JetStream: jetstream is not enabled",
      );
      assert.ok(attempts >= 3, `retried (${attempts} attempts)`);
      assert.ok(Date.now() - t0 < 3_000, "within its deadline");
    } finally {
      await nc.close();
    }
  });
});
