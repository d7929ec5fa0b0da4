/**
 * Serving benchmark (`npm run bench:serve`): requests/s and p50/p99 latency with autocannon on the
 * same machine, for a point query, a tile detail, a bbox listing of 1,000 cells and statistics over
 * 10,000 cells, each also as a ratio to a bare Express endpoint (`res.json({ ok: true })`) measured
 * in the same run; and the point query's p99 at a fixed 2,000 requests/s.
 *
 * The view: 100 × 100 cells, one UTM 33N tile each with a 64 × 64-pixel class raster (30 m
 * pixels), written with the serving test helper as a real DuckDB batch view. 64² rasters keep the
 * build short; point and listing costs do not depend on raster size, stats edge work scales with
 * the raster side. The server and the bare endpoint each run in a child process of their own, so
 * autocannon's client work does not share their event loop.
 */
import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import autocannon from "autocannon";
import express from "express";
import { pino } from "pino";
import { WGS84, crsFromEpsg, parseConfig, projectPoint, transformBounds } from "../../shared/index.js";
import { createServer } from "../../serving/index.js";
import {
  makeRaster,
  tempDataDir,
  utmTile,
  writeBatchView,
  type TileFixture,
} from "../helpers/serving-views.js";
import { printTable, writeResults, type Cell } from "./harness.js";

const SIDE = 100;
const PIXELS = 64;
const PIXEL_M = 30;
const X0 = 300_000;
const Y0 = 5_600_000;
const TILE_M = PIXELS * PIXEL_M;
const DURATION_S = Number(process.env["LANEMAP_BENCH_SECONDS"] ?? 8);

if (process.argv[2] === "--child") await child(process.argv[3] ?? "", process.argv[4] ?? "");
else await main();

/** A child process: the serving layer over `dataDir`, or the bare Express endpoint. */
async function child(kind: string, dataDir: string): Promise<void> {
  if (kind === "bare") {
    const app = express();
    app.get("/ok", (_req, res) => {
      res.json({ ok: true });
    });
    const server = app.listen(0, "127.0.0.1", () => {
      const addr = server.address();
      process.send?.({ url: `http://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}` });
    });
    return;
  }
  const config = parseConfig({
    LANEMAP_DATA_DIR: dataDir,
    PORT: "0",
    HOST: "127.0.0.1",
    LANEMAP_LOG_LEVEL: "silent",
  });
  const server = createServer(config, { logger: pino({ level: "silent" }) });
  const l = await server.listen();
  process.send?.({ url: l.url });
}

function spawnChild(kind: string, dataDir = ""): Promise<{ url: string; proc: ChildProcess }> {
  const proc = fork(fileURLToPath(import.meta.url), ["--child", kind, dataDir], {
    execArgv: ["--import", "tsx"],
  });
  return new Promise((resolve, reject) => {
    proc.once("message", (m) => resolve({ url: (m as { url: string }).url, proc }));
    proc.once("exit", (code) => reject(new Error(`${kind} child exited with ${code}`)));
  });
}

interface Measure {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
}

async function cannon(
  url: string,
  paths: readonly string[],
  opts: { connections?: number; seconds?: number; rate?: number } = {},
): Promise<Measure> {
  let i = 0;
  const result = await autocannon({
    url,
    connections: opts.connections ?? 16,
    duration: opts.seconds ?? DURATION_S,
    ...(opts.rate ? { overallRate: opts.rate } : {}),
    requests: [
      {
        setupRequest: (req) => ({ ...req, path: paths[i++ % paths.length] ?? "/" }),
      },
    ],
  });
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
  };
}

/** The view: SIDE² UTM tiles, classes in bands so every class occurs in every tile. */
function buildTiles(): TileFixture[] {
  const tiles: TileFixture[] = [];
  for (let col = 0; col < SIDE; col++)
    for (let row = 0; row < SIDE; row++)
      tiles.push(
        utmTile({
          x0: X0 + col * TILE_M,
          y0: Y0 - row * TILE_M,
          pixels: PIXELS,
          pixelM: PIXEL_M,
          cell: `c${String(col).padStart(4, "0")}r${String(row).padStart(4, "0")}`,
          tileId: `t-${col}-${row}`,
          lane: "batch",
          acquired: "2026-06-01T10:00:00Z",
          ingestSeq: col * SIDE + row,
          raster: makeRaster(
            PIXELS,
            (c, r) => ((c >> 3) + (r >> 3) + col + row) % 5,
            5,
            (c) => 1 + (c % 5),
          ),
        }),
      );
  return tiles;
}

async function main(): Promise<void> {
  await using data = await tempDataDir();
  const t0 = performance.now();
  await writeBatchView(data.dir, { version: 1, watermark: SIDE * SIDE, tiles: buildTiles() });
  const buildS = (performance.now() - t0) / 1000;
  console.log(`built a ${SIDE}×${SIDE}-cell view (${PIXELS}² rasters) in ${buildS.toFixed(1)} s`);

  const utm = crsFromEpsg(32633);
  const lonLat = (x: number, y: number) => projectPoint(utm, WGS84, x, y);
  // Deterministic pseudo-random points inside the grid.
  const points: string[] = [];
  let s = 12345;
  const rnd = () => (s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32;
  for (let i = 0; i < 2000; i++) {
    const [lon, lat] = lonLat(X0 + rnd() * SIDE * TILE_M, Y0 - rnd() * SIDE * TILE_M);
    points.push(`/v1/point?lon=${lon.toFixed(6)}&lat=${lat.toFixed(6)}`);
  }
  const cells: string[] = [];
  for (let i = 0; i < 2000; i++)
    cells.push(
      `/v1/tiles/c${String(Math.floor(rnd() * SIDE)).padStart(4, "0")}r${String(Math.floor(rnd() * SIDE)).padStart(4, "0")}`,
    );
  // A box over the centre ~34 × 34 cells, listing the first 1,000 of them.
  const [aLon, aLat] = lonLat(X0 + 33 * TILE_M, Y0 - 67 * TILE_M);
  const [bLon, bLat] = lonLat(X0 + 67 * TILE_M, Y0 - 33 * TILE_M);
  const list = `/v1/tiles?bbox=${aLon.toFixed(5)},${aLat.toFixed(5)},${bLon.toFixed(5)},${bLat.toFixed(5)}&limit=1000`;
  // A box over all 10,000 cells, a quarter tile inside their outline, so its edges cut the outer ring.
  const all = transformBounds(
    utm,
    WGS84,
    { minX: X0, minY: Y0 - SIDE * TILE_M, maxX: X0 + SIDE * TILE_M, maxY: Y0 },
    16,
  );
  const qx = (all.maxX - all.minX) / SIDE / 4;
  const qy = (all.maxY - all.minY) / SIDE / 4;
  const [sLon, sLat, eLon, eLat] = [all.minX + qx, all.minY + qy, all.maxX - qx, all.maxY - qy];
  const stats = `/v1/stats?bbox=${sLon.toFixed(5)},${sLat.toFixed(5)},${eLon.toFixed(5)},${eLat.toFixed(5)}`;

  const bare = await spawnChild("bare");
  const srv = await spawnChild("serve", data.dir);
  try {
    const check = (await (await fetch(srv.url + stats)).json()) as {
      cells: { total: number; full: number; partial: number };
    };
    const listed = (await (await fetch(srv.url + list)).json()) as { items: unknown[] };
    console.log(
      `stats covers ${check.cells.total} cells (${check.cells.full} full, ${check.cells.partial} cut by the edge); listing returns ${listed.items.length}`,
    );

    // Warm the JIT and the raster cache before measuring.
    await cannon(bare.url, ["/ok"], { seconds: 2 });
    for (const p of [points, cells, [list], [stats]]) await cannon(srv.url, p, { seconds: 2 });

    const base = await cannon(bare.url, ["/ok"]);
    const cases: [string, readonly string[], number][] = [
      ["point", points, 16],
      ["tile detail", cells, 16],
      ["bbox list (1,000 cells)", [list], 4],
      ["stats (10,000 cells)", [stats], 2],
    ];
    const rows: Cell[][] = [["bare Express res.json", base.rps, base.p50, base.p99, 1]];
    const results: Record<string, Measure & { ratio: number }> = { bare: { ...base, ratio: 1 } };
    for (const [name, paths, connections] of cases) {
      const m = await cannon(srv.url, paths, { connections });
      results[name] = { ...m, ratio: m.rps / base.rps };
      rows.push([name, m.rps, m.p50, m.p99, m.rps / base.rps]);
      if (m.errors || m.non2xx) console.warn(`${name}: ${m.errors} errors, ${m.non2xx} non-2xx`);
    }
    // The same fixed rate against the bare endpoint: how much of the tail is the machine (client and
    // server sharing two cores) rather than the point query.
    const bareFixed = await cannon(bare.url, ["/ok"], {
      connections: 32,
      rate: 2000,
      seconds: DURATION_S + 2,
    });
    results["bare @ 2,000 req/s"] = { ...bareFixed, ratio: 1 };
    rows.push(["bare Express @ 2,000 req/s", bareFixed.rps, bareFixed.p50, bareFixed.p99, null]);
    const fixed = await cannon(srv.url, points, { connections: 32, rate: 2000, seconds: DURATION_S + 2 });
    results["point @ 2,000 req/s"] = { ...fixed, ratio: fixed.rps / base.rps };
    rows.push(["point @ 2,000 req/s", fixed.rps, fixed.p50, fixed.p99, null]);

    const point = results["point"]!;
    const statsM = results["stats (10,000 cells)"]!;
    const verdict = (ok: boolean) => (ok ? "met" : "MISSED");
    printTable({
      title: `Serving: ${SIDE}×${SIDE} cells, ${PIXELS}² rasters, autocannon ${DURATION_S} s per case`,
      columns: ["case", "req/s", "p50 ms", "p99 ms", "× bare"],
      rows,
      notes: [
        `targets: point p99 ≤ 10 ms at 2,000 req/s: ${fixed.p99} ms (${verdict(fixed.p99 <= 10)}); stats over 10k cells p99 ≤ 100 ms: ${statsM.p99} ms (${verdict(statsM.p99 <= 100)}); point ≥ 40% of bare Express: ${(point.ratio * 100).toFixed(0)} % (${verdict(point.ratio >= 0.4)})`,
        `server and bare endpoint in child processes; autocannon in this one; ${check.cells.partial} of ${check.cells.total} stats cells need raster work`,
        "2 shared cores: client and server compete for them, so absolute figures are noisy; ratios within one run are the comparable part",
      ],
    });
    writeResults("serve", {
      side: SIDE,
      pixels: PIXELS,
      durationS: DURATION_S,
      buildS,
      statsCells: check.cells,
      results,
    });
  } finally {
    bare.proc.kill();
    srv.proc.kill();
  }
}
