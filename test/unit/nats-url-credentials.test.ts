/**
 * NATS_URL may carry credentials as nats-server's own clients read them (`nats://user:pass@host`,
 * `nats://token@host`); lanemap hands them to nats.js apart from the URLs and never shows them.
 */
import assert from "node:assert/strict";
import { createServer, type Socket } from "node:net";
import { describe, test } from "node:test";
import { connectNats, redactNatsUrl, splitUrlCredentials } from "../../shared/adapters/nats/index.js";
import { ConfigError, LanemapError, parseConfig } from "../../shared/index.js";

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

  test("a refused configuration quotes NATS_URL without its credentials and the operator token not at all", () => {
    assert.throws(
      () => parseConfig({ NATS_URL: "http://ops:hunter2@a:8222", LANEMAP_OPERATOR_TOKEN: "short-secret" }),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.message.includes('NATS_URL="http://***@a:8222"') &&
        e.message.includes("LANEMAP_OPERATOR_TOKEN=(12 characters, not shown)") &&
        !/hunter2|short-secret/.test(e.message),
    );
  });
});

describe("NATS_URL's form", () => {
  test("nats://, tls:// and bare host:port URLs are taken, with or without credentials", () => {
    const url = "nats://a:4222, tls://ops:pw@b:4222,c:4222";
    assert.equal(parseConfig({ NATS_URL: url }).natsUrl, url);
  });

  test("an http:// URL (nats-server's monitoring endpoint) is refused naming NATS_URL and what it is", () => {
    for (const url of ["http://127.0.0.1:8222", "nats://a:4222,https://b:8222"])
      assert.throws(
        () => parseConfig({ NATS_URL: url }),
        (e: unknown) =>
          e instanceof ConfigError &&
          /NATS_URL=.*must be nats:\/\/ or tls:\/\/ URLs.*monitoring/.test(e.message),
        url,
      );
  });

  test("a port that accepts the connection but never speaks NATS fails with a hint at the port, not a bare timeout", async () => {
    const sockets: Socket[] = [];
    const server = createServer((s) => sockets.push(s));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as { port: number };
    try {
      await assert.rejects(
        connectNats({ servers: `nats://127.0.0.1:${port}`, name: "test", timeoutMs: 300 }),
        (e: unknown) =>
          e instanceof LanemapError &&
          e.code === "NATS_CONNECT" &&
          /timeout \(nothing answered as a NATS server: is it nats-server's client port/.test(e.message),
      );
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
