/**
 * NATS_URL may carry credentials as nats-server's own clients read them (`nats://user:pass@host`,
 * `nats://token@host`); lanemap hands them to nats.js apart from the URLs and never shows them.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { redactNatsUrl, splitUrlCredentials } from "../../shared/adapters/nats/index.js";
import { LanemapError } from "../../shared/index.js";

describe("credentials in NATS_URL", () => {
  test("a user and password are split off every URL, percent-decoded, and the URLs keep host and port", () => {
    const r = splitUrlCredentials(["nats://ops:p%40ss%3Aw@a:4222", "nats://b:4222"]);
    assert.deepEqual(r.servers, ["nats://a:4222", "nats://b:4222"]);
    assert.deepEqual(r.credentials, { user: "ops", pass: "p@ss:w" });
  });

  test("userinfo without a colon is a token, also on a URL without a scheme", () => {
    const r = splitUrlCredentials(["s3cr3t@127.0.0.1:4222"]);
    assert.deepEqual(r.servers, ["127.0.0.1:4222"]);
    assert.deepEqual(r.credentials, { token: "s3cr3t" });
  });

  test("URLs without credentials pass through untouched", () => {
    assert.deepEqual(splitUrlCredentials(["nats://a:4222", "b:4222"]), {
      servers: ["nats://a:4222", "b:4222"],
    });
  });

  test("two URLs with different credentials are refused as CONFIG, without echoing either", () => {
    assert.throws(
      () => splitUrlCredentials(["nats://ops:pw-alpha@a:4222", "nats://ops:pw-beta@b:4222"]),
      (e: unknown) => e instanceof LanemapError && e.code === "CONFIG" && !/pw-alpha|pw-beta/.test(e.message),
    );
  });

  test("a redacted NATS_URL says credentials are there and hides them", () => {
    assert.equal(
      redactNatsUrl("nats://ops:secret@a:4222, token@b:4222,nats://c:4222"),
      "nats://***@a:4222, ***@b:4222,nats://c:4222",
    );
  });
});
