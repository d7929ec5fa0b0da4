/**
 * Console output of a role: human lines on stdout, pino's JSON lines on stderr (not a TTY here),
 * HTTP requests logged at debug only, and a Ctrl-C (SIGINT) is a clean stop with exit 0.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { projectRoot } from "../helpers/env.js";

const CLI = join(projectRoot, "infra", "bin", "lanemap.js");

test("lanemap serve prints its URL on stdout, logs JSON on stderr without request lines, and stops on Ctrl-C with 0", async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "lanemap-output-"));
  const child = spawn(process.execPath, [CLI, "serve", "--no-nats-live", "--port", "0"], {
    cwd: projectRoot,
    env: { ...process.env, LANEMAP_DATA_DIR: dataDir, LANEMAP_LOG_LEVEL: "info", NATS_URL: "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((r) => child.once("close", (code) => r(code)));
  try {
    const deadline = Date.now() + 60_000;
    let url: string | undefined;
    while (!(url = /lanemap serving at (http:\/\/\S+)/.exec(stdout)?.[1])) {
      assert.ok(Date.now() < deadline && child.exitCode === null, `no URL on stdout; stderr:\n${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    for (let i = 0; i < 3; i++) assert.equal((await fetch(`${url}/health`)).status, 200);
    child.kill("SIGINT");
    assert.equal(await exited, 0, `Ctrl-C is a clean stop; stderr:\n${stderr}`);
  } finally {
    if (child.exitCode === null) child.kill("SIGKILL");
    await rm(dataDir, { recursive: true, force: true });
  }
  const outLines = stdout.trim().split("\n");
  assert.ok(
    outLines.every((l) => !l.startsWith("{")),
    `stdout holds human lines only:\n${stdout}`,
  );
  const logs = stderr
    .trim()
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as { msg?: string; level?: number });
  assert.ok(logs.length > 0, "the role logs on stderr");
  assert.ok(logs.some((l) => l.msg === "serving listening"));
  assert.deepEqual(
    logs.filter((l) => l.msg === "request"),
    [],
    "requests are logged at debug, not at info",
  );
  assert.ok(
    logs.every((l) => (l.level ?? 0) < 50),
    "a Ctrl-C logs no error",
  );
});
