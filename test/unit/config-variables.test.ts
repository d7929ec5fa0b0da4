/**
 * A misspelt LANEMAP_* variable must not be ignored silently (issue 14's operator check): the names
 * nothing reads are found with the closest known one, and the new stall bound is parsed.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { configReference, parseConfig, unknownVariables } from "../../shared/index.js";
import { projectRoot } from "../helpers/env.js";

describe("LANEMAP_* variables", () => {
  test("a misspelt variable is reported with the closest known name", () => {
    assert.deepEqual(unknownVariables({ LANEMAP_BATCH_WORKER: "4" }), [
      { name: "LANEMAP_BATCH_WORKER", suggestion: "LANEMAP_BATCH_WORKERS" },
    ]);
    assert.deepEqual(unknownVariables({ LANEMAP_STORGE: "nats", LANEMAP_DATADIR: "/x" }), [
      { name: "LANEMAP_DATADIR", suggestion: "LANEMAP_DATA_DIR" },
      { name: "LANEMAP_STORGE", suggestion: "LANEMAP_STORAGE" },
    ]);
  });

  test("a name close to nothing known is reported without a suggestion", () => {
    assert.deepEqual(unknownVariables({ LANEMAP_FROBNICATE_EVERYTHING: "1" }), [
      { name: "LANEMAP_FROBNICATE_EVERYTHING", suggestion: undefined },
    ]);
  });

  test("every configured variable, the test hooks, the benchmarks' and the other documented ones are known", () => {
    const env: Record<string, string> = {};
    for (const v of configReference()) env[v.name] = v.default ?? "x";
    Object.assign(env, {
      LANEMAP_TEST_TILE_DELAY_MS: "300",
      LANEMAP_BENCH_ROUNDS: "5",
      LANEMAP_DEBUG: "1",
      LANEMAP_CI_LTS: "0",
      LANEMAP_CI_CACHE: "/tmp/ci",
      PATH: "/usr/bin",
      NATS_URL: "nats://127.0.0.1:4222",
    });
    assert.deepEqual(unknownVariables(env), []);
  });

  test("the README's configuration reference lists every variable, LANEMAP_BATCH_STALL_S included", () => {
    const readme = readFileSync(join(projectRoot, "README.md"), "utf8");
    for (const v of configReference())
      assert.ok(readme.includes(`| \`${v.name}\` |`), `${v.name} is in the README`);
  });

  test("LANEMAP_BATCH_STALL_S bounds a stream run's wait, five minutes unless set", () => {
    assert.equal(parseConfig({}).batch.stallMs, 300_000);
    assert.equal(parseConfig({ LANEMAP_BATCH_STALL_S: "2" }).batch.stallMs, 2_000);
    assert.throws(() => parseConfig({ LANEMAP_BATCH_STALL_S: "0" }), /LANEMAP_BATCH_STALL_S/);
  });

  test("LANEMAP_REPLICA_SETTLE_S is how long a replica repair waits for a missing peer, 6 s unless set, 0 for none", () => {
    assert.equal(parseConfig({}).storage.replicaSettleMs, 6_000);
    assert.equal(parseConfig({ LANEMAP_REPLICA_SETTLE_S: "0" }).storage.replicaSettleMs, 0);
    assert.throws(() => parseConfig({ LANEMAP_REPLICA_SETTLE_S: "-1" }), /LANEMAP_REPLICA_SETTLE_S/);
  });
});
