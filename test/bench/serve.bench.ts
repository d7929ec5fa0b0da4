/**
 * Serving benchmark (`npm run bench:serve [-- --rounds 5 --seconds 8]`): requests/s, p50/p99
 * latency and the server's CPU time per request, with autocannon on the same machine, for a point
 * query, a tile detail, a bbox listing of 1,000 cells and statistics over 10,000 cells, each also as
 * a ratio to a bare Express endpoint (`res.json({ ok: true })`) measured in the same round; and the
 * point query's p99 at a fixed 2,000 requests/s next to the bare endpoint's at the same rate.
 *
 * Rounds (default 5): each round starts a fresh server process and a fresh bare Express process,
 * warms both (2 s per case, then one request per path of each case, so every tile the measured
 * seconds touch is cached however loaded the machine is), and measures one side then the other,
 * the side that goes first alternating by round
 * (rounds.ts); ratios are paired within a round and every figure is min / median / max over the
 * rounds. The server's CPU time per request (user + system from /proc, over the measured seconds) is
 * the figure other load inflates least.
 *
 * Targets (issue 13 / the serving README): point ≥ 40 % of bare Express req/s; stats over 10k cells
 * p99 ≤ 100 ms; point p99 ≤ 10 ms at 2,000 req/s.
 *
 * The view: 100 × 100 cells, one UTM 33N tile each with a 64 × 64-pixel class raster (30 m
 * pixels), written with the serving test helper as a real DuckDB batch view. 64² rasters keep the
 * build short; point and listing costs do not depend on raster size, stats edge work scales with
 * the raster side. The server and the bare endpoint each run in a child process of their own, so
 * autocannon's client work does not share their event loop.
 *
 * `data.results` in serve.json keeps one figure per case (the median over the rounds) in the shape
 * `npm run bench:compare` reads; `data.rounds` has every round.
 */
import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import autocannon from "autocannon";
import { WGS84, crsFromEpsg, projectPoint, transformBounds } from "../../shared/index.js";
import { tempDataDir, writeBatchView } from "../helpers/serving-views.js";
import { median, minMedMax, printTable, spreadOf, writeResults, type Cell } from "./harness.js";
import { PIXELS, SIDE, TILE_M, X0, Y0, bareChild, buildTiles, serveChild } from "./serve-view.js";
import {
  digitsFor,
  heldIn,
  loadNow,
  paired,
  positiveInt,
  processCpuSeconds,
  sidesOf,
  stat,
} from "./rounds.js";

// LANEMAP_BENCH_SECONDS is how `npm run bench:compare` sets it; --seconds wins.
const { values: cli } = parseArgs({
  // A child process gets positional arguments of its own, not the bench's options.
  args: process.argv[2] === "--child" ? [] : process.argv.slice(2),
  options: { rounds: { type: "string" }, seconds: { type: "string" } },
});
const ROUNDS = positiveInt("--rounds", cli.rounds, 5);
const SECONDS = positiveInt("--seconds", cli.seconds ?? process.env["LANEMAP_BENCH_SECONDS"], 8);

/** Fixed-rate cases: the point query and the bare endpoint at the same 2,000 req/s. */
const FIXED_RATE = 2000;
const BARE = "bare";
const BARE_FIXED = "bare @ 2,000 req/s";
const POINT_FIXED = "point @ 2,000 req/s";

if (process.argv[2] === "--child") await child(process.argv[3] ?? "", process.argv[4] ?? "");
else await main();

/** A child process: the serving layer over `dataDir`, or the bare Express endpoint. */
async function child(kind: string, dataDir: string): Promise<void> {
  if (kind === "bare") bareChild();
  else await serveChild(dataDir);
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
  /** Requests completed in the measured seconds. */
  requests: number;
  /** The server process's CPU time (user + system) per request, microseconds. */
  cpuUsPerRequest: number;
}

/** autocannon against `server`, with the server process's CPU time over the same seconds. */
async function cannon(
  server: { url: string; proc: ChildProcess },
  paths: readonly string[],
  opts: { connections?: number; rate?: number } & ({ seconds: number } | { amount: number }),
): Promise<Measure> {
  let i = 0;
  const pid = server.proc.pid as number;
  const cpu0 = processCpuSeconds(pid);
  const result = await autocannon({
    url: server.url,
    connections: opts.connections ?? 16,
    ...("amount" in opts ? { amount: opts.amount } : { duration: opts.seconds }),
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
    requests: result.requests.total,
    cpuUsPerRequest: ((processCpuSeconds(pid) - cpu0) * 1e6) / Math.max(1, result.requests.total),
  };
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

  const cases: Case[] = [
    { name: "point", paths: points, connections: 16 },
    { name: "tile detail", paths: cells, connections: 16 },
    { name: "bbox list (1,000 cells)", paths: [list], connections: 4 },
    { name: "stats (10,000 cells)", paths: [stats], connections: 2 },
  ];

  // What the stats query covers, from a server of its own (not one a round measures).
  let covered: { total: number; full: number; partial: number };
  {
    const srv = await spawnChild("serve", data.dir);
    try {
      covered = ((await (await fetch(srv.url + stats)).json()) as { cells: typeof covered }).cells;
      const listed = (await (await fetch(srv.url + list)).json()) as { items: unknown[] };
      console.log(
        `stats covers ${covered.total} cells (${covered.full} full, ${covered.partial} cut by the edge); listing returns ${listed.items.length}`,
      );
    } finally {
      srv.proc.kill();
    }
  }

  const rounds: Record<string, Measure>[] = [];
  const loadDuring: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    loadDuring.push(loadNow());
    const order = sidesOf(r, ["bare", "lanemap"] as const);
    console.log(`round ${r + 1}/${ROUNDS}: ${order.join(" then ")} (load ${loadDuring.at(-1)})`);
    rounds.push(await round(order, data.dir, cases));
  }
  report(rounds, cases, loadDuring, covered, buildS);
}

interface Case {
  readonly name: string;
  readonly paths: readonly string[];
  readonly connections: number;
}

/** One round: fresh processes for both sides, each warmed, measured in `order`. */
async function round(
  order: readonly ("bare" | "lanemap")[],
  dataDir: string,
  cases: readonly Case[],
): Promise<Record<string, Measure>> {
  const bare = await spawnChild("bare");
  const srv = await spawnChild("serve", dataDir);
  const out: Record<string, Measure> = {};
  const warn = (name: string, m: Measure) => {
    if (m.errors || m.non2xx) console.warn(`${name}: ${m.errors} errors, ${m.non2xx} non-2xx`);
  };
  try {
    for (const side of order) {
      if (side === "bare") {
        // Warm the JIT before measuring.
        await cannon(bare, ["/ok"], { seconds: 2 });
        out[BARE] = await cannon(bare, ["/ok"], { seconds: SECONDS });
        // The same fixed rate as the point query below: how much of the tail is the machine
        // (client and server sharing two cores) rather than the point query.
        out[BARE_FIXED] = await cannon(bare, ["/ok"], {
          connections: 32,
          rate: FIXED_RATE,
          seconds: SECONDS + 2,
        });
      } else {
        // Warm the JIT, then the raster cache with one request per path: a warm-up of fixed seconds
        // reached fewer of the 2,000 points on a loaded machine, and the measured seconds then
        // read cold tiles a quiet run had cached (issue 11: 93 % raster-cache misses loaded, 14 %
        // quiet), so the CPU per request compared different work.
        for (const c of cases) {
          await cannon(srv, c.paths, { seconds: 2 });
          if (c.paths.length > 1) await cannon(srv, c.paths, { amount: c.paths.length });
        }
        for (const c of cases)
          out[c.name] = await cannon(srv, c.paths, { connections: c.connections, seconds: SECONDS });
        out[POINT_FIXED] = await cannon(srv, cases[0]!.paths, {
          connections: 32,
          rate: FIXED_RATE,
          seconds: SECONDS + 2,
        });
      }
    }
    for (const [name, m] of Object.entries(out)) warn(name, m);
    return out;
  } finally {
    bare.proc.kill();
    srv.proc.kill();
  }
}

function report(
  rounds: readonly Record<string, Measure>[],
  cases: readonly Case[],
  loadDuring: readonly number[],
  covered: { total: number; full: number; partial: number },
  buildS: number,
): void {
  const series = (name: string, field: keyof Measure) => rounds.map((r) => r[name]?.[field] ?? NaN);
  const bareRps = series(BARE, "rps");
  const mmm = (xs: readonly number[]) => minMedMax(xs, digitsFor(xs));
  const names = [BARE, ...cases.map((c) => c.name), BARE_FIXED, POINT_FIXED];
  const label: Record<string, string> = {
    [BARE]: "bare Express res.json",
    [BARE_FIXED]: `bare Express @ ${FIXED_RATE.toLocaleString("en-US")} req/s`,
  };
  const rows: Cell[][] = names.map((name) => {
    const rps = series(name, "rps");
    const fixed = name === BARE_FIXED || name === POINT_FIXED;
    return [
      label[name] ?? name,
      mmm(rps),
      mmm(series(name, "p50")),
      mmm(series(name, "p99")),
      fixed ? null : minMedMax(paired(rps, bareRps), 2, "×"),
      mmm(series(name, "cpuUsPerRequest")),
      fixed ? null : spreadOf(rps),
    ];
  });

  const pointRatio = paired(series("point", "rps"), bareRps);
  const statsP99 = series("stats (10,000 cells)", "p99");
  const fixedP99 = series(POINT_FIXED, "p99");
  const fixedExtra = paired(fixedP99, series(BARE_FIXED, "p99"));
  const verdicts = {
    pointVsBare: pointRatio.map((x) => x >= 0.4),
    statsP99: statsP99.map((x) => x <= 100),
    pointFixedP99: fixedP99.map((x) => x <= 10),
  };
  const table = {
    title: `Serving: ${SIDE}×${SIDE} cells of ${PIXELS}² class rasters, autocannon ${SECONDS} s per case, ${rounds.length} interleaved rounds (min / median / max)`,
    columns: [
      "case",
      "req/s",
      "p50 ms",
      "p99 ms",
      "× bare req/s (paired)",
      "server CPU µs per request",
      "req/s spread (max/min)",
    ],
    rows,
    notes: [
      `Targets: point ≥ 40 % of bare Express req/s: ${minMedMax(pointRatio.map((x) => x * 100))} % (${heldIn(verdicts.pointVsBare)}); ` +
        `stats over 10k cells p99 ≤ 100 ms: ${minMedMax(statsP99)} ms (${heldIn(verdicts.statsP99)}); ` +
        `point p99 ≤ 10 ms at ${FIXED_RATE.toLocaleString("en-US")} req/s: ${minMedMax(fixedP99)} ms (${heldIn(verdicts.pointFixedP99)}), ` +
        `where the bare endpoint at the same rate has a p99 of ${minMedMax(series(BARE_FIXED, "p99"))} ms (point ÷ bare, paired: ${minMedMax(fixedExtra, 2, "×")}).`,
      `Each round starts a fresh server and a fresh bare Express process (child processes; autocannon runs in the bench process) and measures one side then the other, the first side alternating by round. ` +
        `${covered.partial} of the ${covered.total.toLocaleString("en-US")} stats cells are cut by the box's edge and need raster work. ` +
        `Server CPU per request is user + system time of the server process over the measured seconds (/proc), which the machine's other load inflates least; req/s and latency share 2 cores with the client.`,
      `1-minute load average when each round started: ${minMedMax(loadDuring, 2)} (min / median / max).`,
    ],
  };
  printTable(table);

  // One figure per case (the median over the rounds) where `npm run bench:compare` reads it.
  const results: Record<string, Measure & { ratio: number }> = {};
  for (const name of names) {
    const med = (field: keyof Measure) => median(series(name, field));
    const m: Measure = {
      rps: med("rps"),
      p50: med("p50"),
      p99: med("p99"),
      errors: med("errors"),
      non2xx: med("non2xx"),
      requests: med("requests"),
      cpuUsPerRequest: med("cpuUsPerRequest"),
    };
    results[name] = { ...m, ratio: median(paired(series(name, "rps"), bareRps)) };
  }
  writeResults(
    "serve",
    {
      side: SIDE,
      pixels: PIXELS,
      durationS: SECONDS,
      rounds: rounds.length,
      buildS,
      statsCells: covered,
      results,
      perRound: rounds,
      stats: Object.fromEntries(
        names.map((n) => [
          n,
          {
            rps: stat(series(n, "rps")),
            p99: stat(series(n, "p99")),
            cpuUsPerRequest: stat(series(n, "cpuUsPerRequest")),
          },
        ]),
      ),
      verdicts,
      loadDuring,
    },
    [table],
  );
}
