/**
 * How long an idempotent broker operation is retried (shared/adapters/nats/guarded.ts): a refusal
 * for want of a leader lasts a whole election, longer than five quick retries; a timeout costs its
 * own wait and counts against the retries. The errors are the ones nats.js throws, made here.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { JetStreamApiError } from "@nats-io/jetstream";
import { errors } from "@nats-io/transport-node";
import { LEADERLESS_WAIT_MS, READ_RETRIES, guarded } from "../../shared/adapters/nats/guarded.js";
import { isLeaderlessAnswer, isTransientBrokerError } from "../../shared/adapters/nats/jetstream-errors.js";
import { LanemapError } from "../../shared/index.js";

/** What nats-server 2.9 answers while the meta group elects a leader. */
const noMetaLeader = () =>
  new JetStreamApiError({
    code: 503,
    err_code: 10008,
    description: "JetStream system temporarily unavailable",
  });

test("a refusal for want of a leader is transient and leaderless; a timeout is transient only", () => {
  assert.ok(isLeaderlessAnswer(noMetaLeader()) && isTransientBrokerError(noMetaLeader()));
  const timeout = new errors.TimeoutError();
  assert.ok(isTransientBrokerError(timeout));
  assert.equal(isLeaderlessAnswer(timeout), false);
  const notFound = new JetStreamApiError({ code: 404, err_code: 10059, description: "stream not found" });
  assert.equal(isLeaderlessAnswer(notFound), false);
});

test("a read refused for want of a leader for 4.5 s, longer than its retries' backoff, is answered once a leader is elected", async () => {
  const electedAt = Date.now() + 4_500;
  let attempts = 0;
  const answer = await guarded(
    "reading a test stream",
    async () => {
      attempts++;
      if (Date.now() < electedAt) throw noMetaLeader();
      return "the message";
    },
    READ_RETRIES,
  );
  assert.equal(answer, "the message");
  assert.ok(
    attempts > READ_RETRIES + 1,
    `retried past its ${READ_RETRIES} counted retries (${attempts} attempts)`,
  );
  assert.ok(LEADERLESS_WAIT_MS > 4_500);
});

test("timeouts are retried only as many times as asked, then end in STORAGE naming the operation", async () => {
  let attempts = 0;
  await assert.rejects(
    guarded(
      "reading a test stream",
      async () => {
        attempts++;
        throw new errors.TimeoutError();
      },
      2,
    ),
    (err: unknown) =>
      err instanceof LanemapError &&
      err.code === "STORAGE" &&
      /^reading a test stream: timeout/.test(err.message),
  );
  assert.equal(attempts, 3);
});

test("an operation without retries is not retried through an election either", async () => {
  let attempts = 0;
  await assert.rejects(
    guarded("writing a test record", async () => {
      attempts++;
      throw noMetaLeader();
    }),
    /writing a test record: JetStream system temporarily unavailable/,
  );
  assert.equal(attempts, 1);
});
