/**
 * The serving README's endpoint examples, run as written against `lanemap start` on a fresh data
 * directory (PORT=0, the sample archive): the README's `sh` block is executed by bash with
 * `localhost:8080` replaced by the real address and curl made to fail on any HTTP error, so an
 * example that names a cell, a box or a member the sample lacks fails here, not for a reader.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { projectRoot } from "../helpers/env.js";
import { natsMissing } from "../helpers/nats.js";

const curlMissing = (): string | false =>
  spawnSync("curl", ["--version"]).status === 0 ? false : "curl is not installed (.ci/run installs it)";

/** The first ```sh block after the "## Endpoints" heading of serving/README.md. */
async function endpointExamples(): Promise<string> {
  const readme = await readFile(join(projectRoot, "serving", "README.md"), "utf8");
  const m = /^## Endpoints[^\n]*\n[\s\S]*?^```sh\n([\s\S]*?)^```$/m.exec(readme);
  assert.ok(m?.[1], "serving/README.md has an Endpoints section with a sh block");
  return m[1];
}

test(
  "every example of the serving README answers 2xx on the sample archive of lanemap start",
  { skip: natsMissing() || curlMissing(), timeout: 300_000 },
  async () => {
    const dir = await mkdtemp(join(tmpdir(), "lanemap-readme-"));
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      LANEMAP_DATA_DIR: join(dir, "data"),
      PORT: "0",
      LANEMAP_FEED_INTERVAL_S: "0",
      LANEMAP_LOG_LEVEL: "warn",
    };
    delete env["NATS_URL"];
    delete env["LANEMAP_OPERATOR_TOKEN"];
    const child = spawn(process.execPath, [join(projectRoot, "infra", "bin", "lanemap.js"), "start"], {
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8000)));
    try {
      const deadline = Date.now() + 240_000;
      let url: string | undefined;
      let token: string | undefined;
      while (!(url && token)) {
        if (child.exitCode !== null) throw new Error(`start exited ${child.exitCode}: ${stderr}`);
        if (Date.now() > deadline) throw new Error(`no banner: ${stdout}\n${stderr}`);
        url = /web map\s+(http:\/\/\S+?)\/?\s/.exec(stdout)?.[1];
        token = /operator token\s+(\S+)/.exec(stdout)?.[1];
        await new Promise((r) => setTimeout(r, 250));
      }
      const host = new URL(url).host;
      // -f: an HTTP error fails the line; -N (the event stream) never ends, so its timeout is success.
      // A stream's status line comes with its first bytes (its hello), so 3 s tells an HTTP error
      // as well as 10 s did; a request-response example keeps 10 s to answer.
      const script = [
        "set -u",
        "failed=0",
        'curl() { local stream=0; for a in "$@"; do [ "$a" = -N ] && stream=1; done',
        "  local max=10; [ $stream = 1 ] && max=3",
        '  command curl -sS -f --max-time $max "$@"; local r=$?',
        '  if [ $r -ne 0 ] && ! { [ $stream = 1 ] && [ $r = 28 ]; }; then echo "FAILED ($r): curl $*" >&2; failed=1; fi; }',
        (await endpointExamples()).replaceAll("localhost:8080", host),
        "exit $failed",
      ].join("\n");
      const r = spawnSync("bash", ["-c", script], {
        cwd: dir,
        env: { ...env, LANEMAP_OPERATOR_TOKEN: token },
        encoding: "utf8",
        timeout: 120_000,
      });
      // A line piped into another command fails in a subshell: its FAILED line on stderr still tells.
      assert.equal(r.status, 0, `README examples failed:\n${r.stderr}`);
      assert.doesNotMatch(r.stderr, /FAILED/, `README examples failed:\n${r.stderr}`);
      // The examples' outputs are real answers, not empty files.
      assert.match(await readFile(join(dir, "c.png"), "latin1"), /^\x89PNG/);
      assert.ok((await readFile(join(dir, "tiles.arrows"))).length > 1000);
    } finally {
      child.kill("SIGTERM");
      if (child.exitCode === null) await new Promise((r) => child.once("exit", r));
      await rm(dir, { recursive: true, force: true });
    }
  },
);
