/**
 * A nats-server that requires a login (`authorization { users }`): lanemap's commands log in with
 * the credentials of NATS_URL, a wrong password ends in one NATS_CONNECT line, and no output shows
 * the password. Real nats-server on a free loopback port, the real CLI.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { projectRoot } from "../helpers/env.js";
import { natsMissing } from "../helpers/nats.js";
import { startNatsServerWithUsers } from "../helpers/nats-permissions.js";

const CLI = join(projectRoot, "infra", "bin", "lanemap.js");
const PASSWORD = "Tr0ub4dor-3";

describe("NATS_URL with credentials", { skip: natsMissing() }, () => {
  let server: Awaited<ReturnType<typeof startNatsServerWithUsers>>;
  let dataDir: string;
  before(async () => {
    server = await startNatsServerWithUsers([{ user: "lanemap", password: PASSWORD }]);
    dataDir = mkdtempSync(join(tmpdir(), "lanemap-nats-creds-"));
  });
  after(async () => {
    await server?.[Symbol.asyncDispose]();
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** `lanemap <args>` with NATS_URL = the server's URL, with `userinfo@` spliced in. */
  function lanemap(userinfo: string, ...args: string[]) {
    const url = server.url.replace("nats://", `nats://${userinfo}@`);
    const r = spawnSync(process.execPath, [CLI, ...args], {
      encoding: "utf8",
      cwd: projectRoot,
      env: { ...process.env, NATS_URL: url, LANEMAP_DATA_DIR: dataDir, LANEMAP_LOG_LEVEL: "warn" },
      timeout: 60_000,
    });
    return { status: r.status, out: `${r.stdout}${r.stderr}`, stderr: r.stderr };
  }

  test("the right user and password log in: the model registry in NATS is listed", () => {
    const r = lanemap(`lanemap:${PASSWORD}`, "model", "list");
    assert.equal(r.status, 0, r.out);
    assert.ok(!r.out.includes(PASSWORD), "the password is not printed");
  });

  test("a wrong password is one NATS_CONNECT line naming the server without the credentials", () => {
    const r = lanemap("lanemap:wrong-password", "model", "list");
    assert.notEqual(r.status, 0);
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 1, r.stderr);
    assert.match(
      lines[0]!,
      /^lanemap: .*cannot connect to NATS at nats:\/\/127\.0\.0\.1:\d+: .*[Aa]uthorization/,
    );
    assert.ok(!r.out.includes("wrong-password"), "the password given is not echoed");
  });

  test("`lanemap config` and `ops status` show NATS_URL with the credentials masked", () => {
    const config = lanemap(`lanemap:${PASSWORD}`, "config", "--json");
    assert.equal(config.status, 0, config.out);
    assert.ok(!config.out.includes(PASSWORD), "config hides the password");
    assert.match(config.out, /nats:\/\/\*\*\*@127\.0\.0\.1/);
    const status = lanemap(`lanemap:${PASSWORD}`, "ops", "status");
    assert.ok(!status.out.includes(PASSWORD), "ops status hides the password");
    assert.match(status.out, /nats:\/\/\*\*\*@127\.0\.0\.1:\d+/);
  });
});
