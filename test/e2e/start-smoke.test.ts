/**
 * `npm start` as a newcomer runs it: `npm start` itself in a child process on a fresh data
 * directory, with its own embedded nats-server. Start, wait for /ready, query a merged tile and a
 * point, publish a fresh tile with `lanemap ingest` and see it served from the live lane, stop
 * with SIGTERM to the PID `npm start` gave (as a supervisor would), and check nothing is left
 * behind: no process of the tree npm started, no nats-server, no half-written view.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { generateTile } from "../../sample/index.js";
import { projectRoot } from "../helpers/env.js";
import { natsMissing } from "../helpers/nats.js";

const cli = join(projectRoot, "infra", "bin", "lanemap.js");

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

function exited(child: ChildProcess): Promise<number | null> {
  return child.exitCode !== null
    ? Promise.resolve(child.exitCode)
    : new Promise((r) => child.once("exit", (c) => r(c)));
}

/** The PIDs of every live descendant of `pid` (from `ps`: children, their children...). */
function descendants(pid: number): number[] {
  const r = spawnSync("ps", ["-eo", "pid=,ppid="], { encoding: "utf8" });
  const children = new Map<number, number[]>();
  for (const line of (r.stdout ?? "").trim().split("\n")) {
    const [child, parent] = line.trim().split(/\s+/).map(Number) as [number, number];
    children.set(parent, [...(children.get(parent) ?? []), child]);
  }
  const out: number[] = [];
  const todo = [pid];
  while (todo.length > 0) {
    for (const c of children.get(todo.pop()!) ?? []) {
      out.push(c);
      todo.push(c);
    }
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function natsServersUsing(dir: string): string[] {
  const r = spawnSync("pgrep", ["-af", "nats-server"], { encoding: "utf8" });
  return (r.stdout ?? "").split("\n").filter((l) => l.includes(dir));
}

test(
  "npm start runs the whole platform, serves both lanes and stops cleanly",
  { skip: natsMissing(), timeout: 300_000 },
  async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "lanemap-start-"));
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      LANEMAP_DATA_DIR: dataDir,
      PORT: "0",
      LANEMAP_FEED_INTERVAL_S: "0",
      LANEMAP_LOG_LEVEL: "warn",
    };
    delete env["NATS_URL"];
    // npm as a supervisor meets it: `npm start`, whose PID is npm's own, not lanemap's.
    const child = spawn("npm", ["start", "--silent"], {
      cwd: projectRoot,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let tree: number[] = [];
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8000)));
    try {
      const url = await until("the URLs on stdout", async () => {
        if (child.exitCode !== null) throw new Error(`start exited ${child.exitCode}: ${stderr}`);
        return /web map\s+(http:\/\/\S+?)\/?\s/.exec(stdout)?.[1];
      });
      const ready = await until("/ready", async () => {
        const r = await fetch(`${url}/ready`);
        return r.status === 200 ? ((await r.json()) as { ready: boolean }) : undefined;
      });
      assert.equal(ready.ready, true);
      tree = descendants(child.pid!);
      assert.ok(tree.length >= 2, `npm start runs lanemap and its nats-server: ${tree.join(", ")}`);

      const list = (await (await fetch(`${url}/v1/tiles?limit=100`)).json()) as {
        items: { cell: string; lane: string; bbox: number[] }[];
      };
      assert.equal(list.items.length, 64, "the 8x8 sample archive is served");
      assert.ok(list.items.every((i) => i.lane === "batch"));
      const first = list.items[0]!;
      const tile = (await (await fetch(`${url}/v1/tiles/${first.cell}`)).json()) as {
        winner: { lane: string };
      };
      assert.equal(tile.winner.lane, "batch");
      const [minLon, minLat, maxLon, maxLat] = first.bbox as [number, number, number, number];
      const point = await fetch(`${url}/v1/point?lon=${(minLon + maxLon) / 2}&lat=${(minLat + maxLat) / 2}`);
      assert.equal(point.status, 200);
      const p = (await point.json()) as { classId: number; provenance: { lane: string } };
      assert.equal(p.provenance.lane, "batch");

      // A fresh acquisition of the same cell, published the way a producer would.
      const m = /^c(\d+)r(\d+)$/.exec(first.cell)!;
      const acquired = new Date().toISOString().replace(/\.\d+Z$/, "Z");
      const fresh = generateTile({
        seed: 1,
        col: Number(m[1]),
        row: Number(m[2]),
        tileSize: 128,
        acquired,
        scenario: "flood",
        // The sample archive of `lanemap start` carries a QA_PIXEL band, and so does its model.
        quality: true,
      });
      const file = join(dataDir, "fresh.tif");
      await writeFile(file, fresh.bytes);
      const ingest = spawnSync(
        process.execPath,
        [cli, "ingest", file, "--cell", first.cell, "--acquired", acquired],
        {
          env,
          encoding: "utf8",
        },
      );
      assert.equal(ingest.status, 0, ingest.stderr);
      const live = await until("the live result", async () => {
        const t = (await (await fetch(`${url}/v1/tiles/${first.cell}`)).json()) as {
          winner?: { lane: string; acquired: string };
        };
        return t.winner?.lane === "live" ? t.winner : undefined;
      });
      assert.equal(live.acquired, acquired);
    } finally {
      if (tree.length === 0) tree = descendants(child.pid!);
      process.kill(child.pid!, "SIGTERM");
    }
    const code = await exited(child);
    // npm exits once lanemap has; give the kernel a moment to reap what lanemap stopped.
    const left = await until(
      "the process tree to be gone",
      async () => {
        const running = tree.filter(alive);
        return running.length === 0 ? running : undefined;
      },
      10_000,
    ).catch(() => tree.filter(alive));
    // Survivors would hold this test's pipes open: end them before reporting them.
    for (const pid of left) process.kill(pid, "SIGKILL");
    assert.equal(code, 0, `npm start stopped with ${code}: ${stderr}`);
    assert.deepEqual(left, [], "nothing npm start ran is left running");
    assert.deepEqual(natsServersUsing(dataDir), [], "no nats-server left running");
    const views = join(dataDir, "views", "batch");
    for (const name of await readdir(views)) {
      if (/^v\d{6}$/.test(name))
        assert.ok(existsSync(join(views, name, "manifest.json")), `${name} is complete`);
    }
    const staging = join(views, ".staging");
    assert.deepEqual(existsSync(staging) ? await readdir(staging) : [], [], "no half-written view");
    await rm(dataDir, { recursive: true, force: true });
  },
);
