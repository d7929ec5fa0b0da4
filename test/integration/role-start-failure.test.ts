/**
 * A role whose start fails exits non-zero, so a supervisor (systemd's Restart=on-failure) can
 * restart it: `lanemap speed`, `serve` and `start` against a nats-server without JetStream and
 * against one that goes away (SIGKILL) as the role connects; `lanemap batch schedule` on a data directory it cannot use.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { projectRoot } from "../helpers/env.js";
import { natsMissing, startBareNatsServer } from "../helpers/nats.js";

const CLI = join(projectRoot, "infra", "bin", "lanemap.js");

/** Runs `lanemap ...args`; resolves with its exit code and stderr, or "hung" after `limitMs`. */
function runRole(
  args: string[],
  env: Record<string, string>,
  limitMs = 60_000,
): Promise<{ code: number | "hung"; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: projectRoot,
    env: { ...process.env, LANEMAP_LOG_LEVEL: "warn", LANEMAP_FEED_INTERVAL_S: "0", PORT: "0", ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8000)));
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      resolve({ code: "hung", stderr });
    }, limitMs);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stderr });
    });
  });
}

/** The last line a failed role printed: `lanemap: <reason>`. */
function reason(stderr: string): string {
  return (
    stderr
      .trim()
      .split("\n")
      .filter((l) => l.startsWith("lanemap: "))
      .pop() ?? ""
  );
}

const ROLES: { role: string; args: string[] }[] = [
  { role: "speed", args: ["speed"] },
  { role: "serve", args: ["serve", "--no-batch-runs"] },
  { role: "start", args: ["start"] },
];

describe("a role whose start fails exits non-zero", { skip: natsMissing() }, () => {
  for (const { role, args } of ROLES) {
    test(`lanemap ${role} against a nats-server without JetStream exits 1 naming the reason`, async () => {
      await using server = await startBareNatsServer({ jetstream: false });
      const dataDir = await mkdtemp(join(tmpdir(), `lanemap-fail-${role}-`));
      try {
        const r = await runRole(args, { NATS_URL: server.url, LANEMAP_DATA_DIR: dataDir });
        assert.equal(r.code, 1, `exit code; stderr:\n${r.stderr}`);
        assert.match(reason(r.stderr), /^lanemap: .*jetstream/i);
      } finally {
        await rm(dataDir, { recursive: true, force: true });
      }
    });

    test(`lanemap ${role} exits 1 when the nats-server goes away while it starts`, async () => {
      await using server = await startBareNatsServer({ jetstream: true, killOnConnect: true });
      const dataDir = await mkdtemp(join(tmpdir(), `lanemap-fail-${role}-`));
      try {
        const r = await runRole(args, { NATS_URL: server.url, LANEMAP_DATA_DIR: dataDir });
        await server.exited; // it did go away, as the role connected
        assert.equal(r.code, 1, `exit code; stderr:\n${r.stderr}`);
        assert.match(reason(r.stderr), /^lanemap: ./);
      } finally {
        await rm(dataDir, { recursive: true, force: true });
      }
    });
  }

  test("lanemap batch schedule on a data directory it cannot create exits non-zero", async () => {
    const dir = await mkdtemp(join(tmpdir(), "lanemap-fail-batch-"));
    try {
      const file = join(dir, "not-a-dir");
      await writeFile(file, "");
      const r = await runRole(["batch", "schedule"], { LANEMAP_DATA_DIR: join(file, "data") });
      assert.notEqual(r.code, "hung", `batch schedule stayed alive; stderr:\n${r.stderr}`);
      assert.notEqual(r.code, 0);
      assert.match(reason(r.stderr), /^lanemap: .*not-a-dir/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
