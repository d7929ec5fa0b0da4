/**
 * Serving scales sideways (issue 14, item 5): two `lanemap serve` processes with
 * LANEMAP_STORAGE=nats and empty data directories of their own follow CURRENT in KV, download a
 * newly published view into their local caches, switch, and answer the same, each answer naming
 * the view version. The views are published from a third data directory, as a batch coordinator on
 * another machine would.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import { NatsPublishedViews } from "../../shared/adapters/nats/index.js";
import { dataPaths, type ClassRaster } from "../../shared/index.js";
import { projectRoot } from "../helpers/env.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import { eventually } from "../helpers/serving-server.js";
import {
  DEFAULT_GRID,
  lonLatTile,
  makeRaster,
  tempDataDir,
  writeBatchView,
  type TileFixture,
} from "../helpers/serving-views.js";

const CLI = join(projectRoot, "infra", "bin", "lanemap.js");

/** Version v of a 4×4-cell view: every pixel of every tile is class v, model "m-v<v>". */
function versionTiles(v: number): TileFixture[] {
  const out: TileFixture[] = [];
  for (let col = 0; col < 4; col++)
    for (let row = 0; row < 4; row++)
      out.push(
        lonLatTile(DEFAULT_GRID, {
          col,
          row,
          tileId: `v${v}-${col}-${row}`,
          lane: "batch",
          acquired: `2026-0${v}-01T10:00:00Z`,
          ingestSeq: v * 100 + col * 4 + row,
          raster: makeRaster(4, (): ClassRaster["classes"][number] => v),
          modelVersion: `m-v${v}`,
        }),
      );
  return out;
}

interface Serve {
  readonly url: string;
  readonly child: ChildProcess;
  stderr(): string;
}

async function startServe(dataDir: string, natsUrl: string): Promise<Serve> {
  const child = spawn(process.execPath, [CLI, "serve", "--port", "0", "--nats", natsUrl], {
    cwd: projectRoot,
    env: {
      ...process.env,
      LANEMAP_DATA_DIR: dataDir,
      LANEMAP_STORAGE: "nats",
      LANEMAP_LOG_LEVEL: "warn",
      NATS_URL: "",
      LANEMAP_OPERATOR_TOKEN: "",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const deadline = Date.now() + 60_000;
  let url: string | undefined;
  while (!(url = /lanemap serving at (http:\/\/\S+)/.exec(stdout)?.[1])) {
    assert.ok(Date.now() < deadline && child.exitCode === null, `no URL on stdout; stderr:\n${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url, child, stderr: () => stderr };
}

async function stop(s: Serve): Promise<void> {
  if (s.child.exitCode !== null) return;
  const exited = new Promise((r) => s.child.once("close", r));
  s.child.kill("SIGTERM");
  await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
  if (s.child.exitCode === null) s.child.kill("SIGKILL");
}

async function getJson(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

interface ViewsAnswer {
  batch: { state: string; current: string | null; versions: { name: string; current: boolean }[] };
}

/** Waits until a serve process reads version `name` and returns its /v1/views answer. */
async function servingVersion(s: Serve, name: string): Promise<ViewsAnswer> {
  return eventually(async () => {
    const r = await getJson(`${s.url}/v1/views`);
    const body = r.body as unknown as ViewsAnswer;
    return r.status === 200 && body.batch.current === name ? body : undefined;
  }, 1200);
}

/** The point answer without what is measured by the clock at the instant of asking (ages, staleness). */
function pointFacts(body: Record<string, unknown>): unknown {
  return JSON.parse(
    JSON.stringify(body, (key, value: unknown) =>
      key === "ageDays" || key === "staleness" || key === "snapshot" ? undefined : value,
    ),
  ) as unknown;
}

const skip = natsMissing();

describe("serving on NATS-published views", { ...(skip ? { skip } : {}) }, () => {
  test("two serve processes on one NATS switch to a newly published view and answer the same", async () => {
    await using nats = await natsFixture();
    await using publisherDir = await tempDataDir();
    await using dirA = await tempDataDir();
    await using dirB = await tempDataDir();
    const publisher = await NatsPublishedViews.open(nats.nc, {
      cacheDir: join(publisherDir.dir, "cache", "views"),
    });
    const publish = async (v: number, expected: number | null) => {
      const name = await writeBatchView(publisherDir.dir, {
        version: v,
        watermark: v * 100 + 50,
        modelVersion: `m-v${v}`,
        tiles: versionTiles(v),
        publish: false,
      });
      await publisher.publish(join(dataPaths(publisherDir.dir).batchViews, name), name);
      return publisher.setCurrent(name, expected);
    };

    const a = await startServe(dirA.dir, nats.server.url);
    const b = await startServe(dirB.dir, nats.server.url);
    try {
      for (const s of [a, b]) {
        const r = await getJson(`${s.url}/v1/views`);
        assert.equal((r.body as unknown as ViewsAnswer).batch.state, "none-yet", s.stderr());
      }

      const first = await publish(1, null);
      for (const s of [a, b]) await servingVersion(s, "v000001");
      const second = await publish(2, first.revision);
      assert.equal(second.name, "v000002");

      const answers = [];
      for (const s of [a, b]) {
        const views = await servingVersion(s, "v000002");
        assert.deepEqual(
          views.batch.versions.map((v) => [v.name, v.current]),
          [
            ["v000001", false],
            ["v000002", true],
          ],
          "every instance lists the versions in the shared store",
        );
        const point = await getJson(`${s.url}/v1/point?lon=10.045&lat=49.955`);
        assert.equal(point.status, 200, JSON.stringify(point.body));
        answers.push(point.body);
      }
      const [pa, pb] = answers as [Record<string, unknown>, Record<string, unknown>];
      assert.deepEqual(pointFacts(pa), pointFacts(pb), "both instances answer the same");
      const text = JSON.stringify(pa);
      assert.match(text, /"batchVersion":2\b/, `the answer names view version 2: ${text}`);
      assert.match(text, /m-v2/);

      // Each instance downloaded the views into its own cache; no half-downloaded copy remains.
      for (const d of [dirA.dir, dirB.dir])
        assert.deepEqual((await readdir(join(d, "cache", "views"))).sort(), ["v000001", "v000002"]);
      assert.deepEqual(await readdir(dataPaths(dirA.dir).root).then((e) => e.includes("views")), false);

      // A third version: each cache keeps the current and the previous copy, the oldest goes once closed.
      await publish(3, second.revision);
      for (const s of [a, b]) await servingVersion(s, "v000003");
      for (const d of [dirA.dir, dirB.dir])
        await eventually(async () => {
          const cached = (await readdir(join(d, "cache", "views"))).sort();
          return cached.join() === "v000002,v000003" ? true : undefined;
        }, 1200);
    } finally {
      await stop(a);
      await stop(b);
    }
  });
});
