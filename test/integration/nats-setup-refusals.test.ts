/**
 * A NATS deployment that cannot do what lanemap needs fails every command at once, with one line
 * naming the cause and the fix and a non-zero exit, because no retry would change it (issue 14,
 * the new operator's report):
 * - a nats-server started without JetStream: not the transient "no responders" of a leader
 *   election (`worker` died with a bare "jetstream is not enabled", `ingest` retried for 29.5 s,
 *   `ops status` took 21 s);
 * - more replicas than the server offers (LANEMAP_NATS_REPLICAS=3 on a single server): the
 *   stream or bucket, the replicas asked, what the server offers and what to set.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { projectRoot } from "../helpers/env.js";
import { natsMissing, startBareNatsServer } from "../helpers/nats.js";

const CLI = join(projectRoot, "infra", "bin", "lanemap.js");

/**
 * Far below the retries these failures used to go through (21–30 s), and above the CLI's own start
 * on this shared 2-core machine under load (up to ~7 s measured with a load average of 11).
 */
const PROMPT_MS = 15_000;

/** Runs `lanemap ...args`; resolves with its exit code, stderr and time, or "hung" after 45 s. */
function run(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | "hung"; stdout: string; stderr: string; ms: number }> {
  const t0 = Date.now();
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: projectRoot,
    env: { ...process.env, LANEMAP_LOG_LEVEL: "warn", LANEMAP_FEED_INTERVAL_S: "0", PORT: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d: Buffer) => (stdout = (stdout + d.toString()).slice(-8000)));
  child.stderr!.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8000)));
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      resolve({ code: "hung", stdout, stderr, ms: Date.now() - t0 });
    }, 45_000);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr, ms: Date.now() - t0 });
    });
  });
}

const COMMANDS: { name: string; args: string[]; env?: Record<string, string> }[] = [
  { name: "worker", args: ["worker"] },
  { name: "ingest", args: ["ingest", "tile.tif"] },
  { name: "serve", args: ["serve", "--no-batch-runs"] },
  { name: "batch run with the stream executor", args: ["batch", "run", "--executor", "stream"] },
  { name: "batch run on the files storage", args: ["batch", "run"] },
  { name: "ops status", args: ["ops", "status"] },
  { name: "model list (the registry)", args: ["model", "list"] },
  {
    name: "archive list with LANEMAP_STORAGE=nats",
    args: ["archive", "list"],
    env: { LANEMAP_STORAGE: "nats" },
  },
];

describe("a nats-server without JetStream", { skip: natsMissing() }, () => {
  for (const c of COMMANDS) {
    test(`lanemap ${c.name} fails at once naming the missing JetStream and how to enable it`, async () => {
      await using server = await startBareNatsServer({ jetstream: false });
      const dataDir = await mkdtemp(join(tmpdir(), "lanemap-nojs-"));
      try {
        const r = await run(c.args, { NATS_URL: server.url, LANEMAP_DATA_DIR: dataDir, ...c.env });
        assert.notEqual(r.code, "hung", `still running; stderr:\n${r.stderr}`);
        assert.notEqual(r.code, 0, `exit code; stderr:\n${r.stderr}`);
        const said = c.name === "ops status" ? r.stdout : r.stderr;
        assert.match(
          said,
          /NATS_SETUP: nats:\/\/127\.0\.0\.1:\d+ has no JetStream; start nats-server with -js or a jetstream \{\} block in its config/,
          said,
        );
        if (c.name !== "ops status") {
          const lines = r.stderr
            .trim()
            .split("\n")
            .filter((l) => l.startsWith("lanemap: "));
          assert.equal(lines.length, 1, `one line naming the failure:\n${r.stderr}`);
          assert.match(lines[0]!, /^lanemap: NATS_SETUP: .* has no JetStream/);
        } else assert.match(r.stdout, /^nats +UNAVAILABLE at nats:\S+: NATS_SETUP: /m);
        assert.ok(r.ms < PROMPT_MS, `took ${r.ms} ms (limit ${PROMPT_MS})`);
      } finally {
        await rm(dataDir, { recursive: true, force: true });
      }
    });
  }
});

/** The command failed, promptly or not, with one NATS_SETUP line refusing 3 replicas on one server. */
function assertReplicasRefused(r: { code: number | "hung"; stderr: string }): void {
  assert.notEqual(r.code, "hung", `still running; stderr:\n${r.stderr}`);
  assert.notEqual(r.code, 0, `exit code; stderr:\n${r.stderr}`);
  const lines = r.stderr
    .trim()
    .split("\n")
    .filter((l) => l.startsWith("lanemap: "));
  assert.equal(lines.length, 1, `one line naming the failure:\n${r.stderr}`);
  assert.match(
    lines[0]!,
    /^lanemap: NATS_SETUP: (LANEMAP_\w+|KV_lanemap-[\w-]+|OBJ_lanemap-[\w-]+) asks for 3 replicas \(LANEMAP_NATS_REPLICAS=3\), but this nats-server is not clustered and offers 1; set LANEMAP_NATS_REPLICAS=1, or run a cluster of 3 nodes/,
  );
}

/** The commands that create or rescale streams: all of the above but the files storage and ops status. */
const REPLICAS_COMMANDS = COMMANDS.filter(
  (c) => c.name !== "batch run on the files storage" && c.name !== "ops status",
);

describe("LANEMAP_NATS_REPLICAS=3 on a single nats-server", { skip: natsMissing() }, () => {
  for (const c of REPLICAS_COMMANDS) {
    test(`lanemap ${c.name} fails at once naming the stream, the 3 replicas asked, the 1 offered and what to set`, async () => {
      await using server = await startBareNatsServer({ jetstream: true });
      const dataDir = await mkdtemp(join(tmpdir(), "lanemap-r3-single-"));
      try {
        const r = await run(c.args, {
          NATS_URL: server.url,
          LANEMAP_DATA_DIR: dataDir,
          LANEMAP_NATS_REPLICAS: "3",
          ...c.env,
        });
        assertReplicasRefused(r);
        assert.ok(r.ms < PROMPT_MS, `took ${r.ms} ms (limit ${PROMPT_MS})`);
      } finally {
        await rm(dataDir, { recursive: true, force: true });
      }
    });
  }
});

/**
 * nats-server 2.9 refuses num_replicas 3 on a stream create when not clustered, but takes it on an
 * UPDATE of an existing stream (and keeps one copy): streams made at R1, then a command at R3,
 * must meet the same refusal as on a fresh server, not a silent "rescale" (issue 14).
 */
describe(
  "LANEMAP_NATS_REPLICAS=3 on a single nats-server whose streams exist at R1",
  { skip: natsMissing() },
  () => {
    // One server and one set of R1 streams for these cases: each asserts that its command left every
    // stream at R1, so the next one meets the same streams (a command that rescaled one fails its own
    // case). Set up once, not per case: a server and two lanemap processes each (2-3 s at load 9).
    let server: Awaited<ReturnType<typeof startBareNatsServer>>;
    let dataDir: string;
    let env: Record<string, string>;
    before(async () => {
      server = await startBareNatsServer({ jetstream: true });
      dataDir = await mkdtemp(join(tmpdir(), "lanemap-r1-then-r3-"));
      env = { NATS_URL: server.url, LANEMAP_DATA_DIR: dataDir, LANEMAP_STORAGE: "nats" };
      for (const args of [
        ["model", "list"],
        ["archive", "list"],
      ]) {
        const made = await run(args, { ...env, LANEMAP_NATS_REPLICAS: "1" });
        assert.equal(made.code, 0, `lanemap ${args.join(" ")} at R1; stderr:\n${made.stderr}`);
      }
    });
    after(async () => {
      await server?.[Symbol.asyncDispose]();
      if (dataDir) await rm(dataDir, { recursive: true, force: true });
    });

    for (const c of REPLICAS_COMMANDS) {
      test(`lanemap ${c.name} fails at once with the same NATS_SETUP line and leaves the streams at R1`, async () => {
        const r = await run(c.args, { ...env, LANEMAP_NATS_REPLICAS: "3", ...c.env });
        assertReplicasRefused(r);
        await using nc = await connect({ servers: server.url });
        const jsm = await jetstreamManager(nc);
        for await (const info of jsm.streams.list())
          assert.equal(info.config.num_replicas, 1, `${info.config.name} rescaled`);
      });
    }

    test("ops status reports a stream rescaled to R3 on the single server as degraded (exit 3), naming it", async () => {
      await using server = await startBareNatsServer({ jetstream: true });
      const dataDir = await mkdtemp(join(tmpdir(), "lanemap-r3-status-"));
      try {
        const env = { NATS_URL: server.url, LANEMAP_DATA_DIR: dataDir, LANEMAP_STORAGE: "nats" };
        const made = await run(["model", "list"], { ...env, LANEMAP_NATS_REPLICAS: "1" });
        assert.equal(made.code, 0, `lanemap model list at R1; stderr:\n${made.stderr}`);
        // What an earlier lanemap (or any client) left behind: the server takes this update.
        await using nc = await connect({ servers: server.url });
        const jsm = await jetstreamManager(nc);
        const info = await jsm.streams.info("KV_lanemap-models");
        await jsm.streams.update("KV_lanemap-models", { ...info.config, num_replicas: 3 });

        const r = await run(["ops", "status"], { ...env, LANEMAP_NATS_REPLICAS: "1" });
        assert.equal(r.code, 3, `exit code; stdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
        assert.match(r.stdout, /DEGRADED/);
        assert.match(r.stdout, /KV_lanemap-models asks for 3 replicas on a single server/);
      } finally {
        await rm(dataDir, { recursive: true, force: true });
      }
    });
  },
);
