import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { jetstreamManager } from "@nats-io/jetstream";
import { LIVE_BUCKET, LiveView } from "../../shared/adapters/nats/index.js";
import { mergeCell, type ClassRaster } from "../../shared/index.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import { startServing } from "../helpers/serving-server.js";
import {
  fixtureCell,
  lonLatTile,
  putLive,
  tempDataDir,
  writeBatchView,
  type LonLatGrid,
  type TileFixture,
} from "../helpers/serving-views.js";

const GRID: LonLatGrid = { lon0: 10, lat0: 50, size: 0.04, pixels: 4 };
const COLS = 3;
const ROWS = 2;
const D = GRID.size / GRID.pixels;
const day = (n: number) => new Date(Date.UTC(2026, 0, 1 + n, 10)).toISOString();

interface TileSpec {
  lane: "batch" | "live";
  id: string;
  col: number;
  row: number;
  day: number;
  seq: number;
  classes: number[];
  votes: number[];
}

interface History {
  hasBatch: boolean;
  watermark: number;
  batch: TileSpec[];
  live: TileSpec[];
}

const pixelsArb = fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 16, maxLength: 16 });
const votesArb = fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 16, maxLength: 16 });
const tileArb = fc.record({
  col: fc.integer({ min: 0, max: COLS - 1 }),
  row: fc.integer({ min: 0, max: ROWS - 1 }),
  day: fc.integer({ min: 0, max: 5 }),
  classes: pixelsArb,
  votes: votesArb,
});

/**
 * Random histories: batch tiles read up to a watermark, live tiles on both sides of it (some the
 * very tiles the batch read, as when the speed lane saw them first). Ingest sequences are unique,
 * as stream sequences are.
 */
const historyArb: fc.Arbitrary<History> = fc
  .record({
    hasBatch: fc.boolean(),
    batch: fc.array(tileArb, { maxLength: 8 }),
    live: fc.array(tileArb, { maxLength: 8 }),
    dupes: fc.array(fc.nat(), { maxLength: 3 }),
    extra: fc.integer({ min: 0, max: 6 }),
    seqs: fc.shuffledSubarray(
      Array.from({ length: 40 }, (_, i) => i + 1),
      { minLength: 16, maxLength: 16 },
    ),
  })
  .map(({ hasBatch, batch, live, dupes, extra, seqs }) => {
    const sorted = [...seqs].sort((a, b) => a - b);
    // The batch read the lowest sequences: its watermark is at or above every one of them.
    const b: TileSpec[] = batch.map((t, i) => ({ ...t, lane: "batch", id: `b${i}`, seq: sorted[i] ?? i }));
    const rest = sorted.slice(b.length);
    const l: TileSpec[] = live.map((t, i) => ({
      ...t,
      lane: "live",
      id: `l${i}`,
      seq: rest[(i * 7) % Math.max(1, rest.length)] ?? 100 + i,
    }));
    const watermark = Math.max(0, ...b.map((t) => t.seq)) + extra;
    for (const k of dupes) {
      const src = b[k % Math.max(1, b.length)];
      if (src) l.push({ ...src, lane: "live" });
    }
    // Unique live sequences (a tile seen by both lanes keeps the batch's).
    const seen = new Set<number>();
    const liveUnique = l.filter((t) => (seen.has(t.seq) ? false : (seen.add(t.seq), true)));
    return { hasBatch, watermark, batch: b, live: liveUnique };
  });

function fixture(t: TileSpec): TileFixture {
  const raster: ClassRaster = {
    width: 4,
    height: 4,
    k: 5,
    classes: Uint8Array.from(t.classes),
    votes: Uint8Array.from(t.classes.map((c, i) => (c === 0 ? 0 : (t.votes[i] ?? 1)))),
  };
  return lonLatTile(GRID, {
    col: t.col,
    row: t.row,
    tileId: t.id,
    lane: t.lane,
    acquired: day(t.day),
    ingestSeq: t.seq,
    raster,
  });
}

/** The reference: every cell's candidates and winner computed directly from the history. */
function reference(h: History) {
  const W = h.hasBatch ? h.watermark : -1;
  const newest = (list: TileSpec[]) =>
    [...list].sort(
      (a, b) => b.day - a.day || b.seq - a.seq || (a.lane === b.lane ? 0 : a.lane === "batch" ? -1 : 1),
    )[0];
  const cells = new Map<string, { batch?: TileSpec; allBatch: TileSpec[]; live: TileSpec[] }>();
  const at = (t: TileSpec) => {
    const key = fixtureCell(t.col, t.row);
    const e = cells.get(key) ?? { live: [], allBatch: [] };
    cells.set(key, e);
    return e;
  };
  if (h.hasBatch)
    for (const t of h.batch) {
      const e = at(t);
      e.batch = newest([...(e.batch ? [e.batch] : []), t]);
      e.allBatch.push(t);
    }
  for (const t of h.live) at(t).live.push(t);
  const out = new Map<
    string,
    {
      winner?: TileSpec;
      candidates: TileSpec[];
      absorbed: TileSpec[];
      batch?: TileSpec;
      newestLive?: TileSpec;
      /** Per pixel, the per-pixel rule's source: the newest candidate in which the pixel is valid. */
      pixels: (TileSpec | undefined)[];
    }
  >();
  for (const [cell, e] of [...cells].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const candidates = [...(e.batch ? [e.batch] : []), ...e.live.filter((t) => t.seq > W)];
    const order = (a: TileSpec, b: TileSpec) =>
      b.day - a.day || b.seq - a.seq || (a.lane === "batch" ? -1 : 1);
    const sorted = [...candidates].sort(order);
    // Per pixel, every batch tile of the cell (the batch view's composite) and the live ones above W.
    const everyTile = [...(h.hasBatch ? e.allBatch : []), ...e.live.filter((t) => t.seq > W)].sort(order);
    const pixels = Array.from({ length: 16 }, (_, i) => everyTile.find((t) => (t.classes[i] ?? 0) !== 0));
    out.set(cell, {
      pixels,
      winner: sorted[0],
      candidates: sorted,
      absorbed: e.live.filter((t) => t.seq <= W),
      ...(e.batch ? { batch: e.batch } : {}),
      ...(e.live.length ? { newestLive: newest(e.live) } : {}),
    });
  }
  return out;
}

/** Centre of global pixel (px, py) of the grid, in lon/lat. */
const centre = (px: number, py: number): [number, number] => [
  GRID.lon0 + (px + 0.5) * D,
  GRID.lat0 - (py + 0.5) * D,
];

function insidePolygon(ring: [number, number][], x: number, y: number): boolean {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i] as [number, number];
    const [xj, yj] = ring[j] as [number, number];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

function distanceToRing(ring: [number, number][], x: number, y: number): number {
  let best = Infinity;
  for (let i = 1; i < ring.length; i++) {
    const [x0, y0] = ring[i - 1] as [number, number];
    const [x1, y1] = ring[i] as [number, number];
    const dx = x1 - x0;
    const dy = y1 - y0;
    const len = dx * dx + dy * dy;
    const t = len === 0 ? 0 : Math.max(0, Math.min(1, ((x - x0) * dx + (y - y0) * dy) / len));
    best = Math.min(best, Math.hypot(x - (x0 + t * dx), y - (y0 + t * dy)));
  }
  return best;
}

/**
 * Reference statistics: every winner's pixel whose centre is inside, each cell once. A centre on
 * the outline (within `near` of it) may go either way, so it is counted apart as "maybe".
 */
function referenceStats(
  ref: ReturnType<typeof reference>,
  inside: (lon: number, lat: number) => boolean,
  onEdge: (lon: number, lat: number) => boolean = () => false,
) {
  const sure = new Map<number, number>();
  const maybe = new Map<number, number>();
  let sureCells = 0;
  let maybeCells = 0;
  for (const [cell, e] of ref) {
    const w = e.winner;
    if (!w) continue;
    const m = /^c(\d+)r(\d+)$/.exec(cell)!;
    const col = Number(m[1]);
    const row = Number(m[2]);
    let any = false;
    let anyMaybe = false;
    for (let r = 0; r < 4; r++)
      for (let c = 0; c < 4; c++) {
        const [lon, lat] = centre(col * 4 + c, row * 4 + r);
        const k = e.pixels[r * 4 + c]?.classes[r * 4 + c] ?? 0;
        if (onEdge(lon, lat)) {
          anyMaybe = true;
          maybe.set(k, (maybe.get(k) ?? 0) + 1);
        } else if (inside(lon, lat)) {
          any = true;
          sure.set(k, (sure.get(k) ?? 0) + 1);
        }
      }
    if (any) sureCells++;
    else if (anyMaybe) maybeCells++;
  }
  return { sure, maybe, sureCells, maybeCells };
}

describe(
  "serving's merged answers against a naive reference model (per-pixel rule)",
  { skip: natsMissing() },
  () => {
    test("for random batch and live histories, tiles, detail, point and stats equal the reference and count each cell once", async () => {
      await using nats = await natsFixture();
      const jsm = await jetstreamManager(nats.nc);
      const lattice = fc.integer({ min: -2, max: COLS * 4 + 2 });
      const latticeY = fc.integer({ min: -2, max: ROWS * 4 + 2 });
      const query = fc.record({
        bbox: fc.tuple(lattice, lattice, latticeY, latticeY),
        triangle: fc.array(
          fc.tuple(
            fc.double({ min: -1, max: COLS * 4 + 1, noNaN: true }),
            fc.double({ min: -1, max: ROWS * 4 + 1, noNaN: true }),
          ),
          {
            minLength: 3,
            maxLength: 3,
          },
        ),
        points: fc.array(
          fc.tuple(fc.integer({ min: -1, max: COLS * 4 }), fc.integer({ min: -1, max: ROWS * 4 })),
          { minLength: 1, maxLength: 4 },
        ),
        from: fc.integer({ min: 0, max: 5 }),
        limit: fc.integer({ min: 1, max: 4 }),
      });
      await fc.assert(
        fc.asyncProperty(historyArb, query, async (h, q) => {
          await jsm.streams.delete(`KV_${LIVE_BUCKET}`).catch(() => undefined);
          await using data = await tempDataDir();
          if (h.hasBatch)
            await writeBatchView(data.dir, {
              version: 1,
              watermark: h.watermark,
              tiles: h.batch.map(fixture),
              composite: true,
            });
          await putLive(await LiveView.open(nats.nc), h.live.map(fixture));
          await using srv = await startServing({ dataDir: data.dir, nc: nats.nc });
          const ref = reference(h);

          // The reference agrees with shared's merge rule (so a bug in both would have to be the same bug).
          for (const [cell, e] of ref) {
            const m = mergeCell(
              cell,
              e.batch
                ? { ...e.batch, tileId: e.batch.id, cell, acquired: day(e.batch.day), ingestSeq: e.batch.seq }
                : undefined,
              h.live
                .filter((t) => fixtureCell(t.col, t.row) === cell)
                .map((t) => ({ ...t, tileId: t.id, cell, acquired: day(t.day), ingestSeq: t.seq })),
              h.hasBatch ? h.watermark : -1,
            );
            assert.equal(m.winner?.tileId, e.winner?.id);
          }

          // Listings, merged and per lane.
          type Item = {
            cell: string;
            tileId: string;
            lane: string;
            provenance: { batchVersion: number | null };
          };
          for (const lane of ["merged", "batch", "live"] as const) {
            const got = await srv.json<{ items: Item[] }>(`/v1/tiles?lane=${lane}&limit=10000`);
            const want = [...ref]
              .map(
                ([cell, e]) =>
                  [cell, lane === "merged" ? e.winner : lane === "batch" ? e.batch : e.newestLive] as const,
              )
              .filter(([, t]) => t)
              .map(([cell, t]) => ({ cell, tileId: t!.id, lane: t!.lane }));
            assert.deepEqual(
              got.body.items.map((i) => ({ cell: i.cell, tileId: i.tileId, lane: i.lane })),
              want,
              lane,
            );
          }
          // Paged with a filter: the pages concatenate to the filtered reference.
          const wantFiltered = [...ref]
            .filter(([, e]) => e.winner && e.winner.day >= q.from)
            .map(([cell]) => cell);
          const paged: string[] = [];
          let path: string | null =
            `/v1/tiles?limit=${q.limit}&datetime=${encodeURIComponent(day(q.from).replace(/T.*/, "T00:00:00Z"))}/..`;
          while (path) {
            const page: { body: { items: Item[]; next: string | null } } = await srv.json(path);
            paged.push(...page.body.items.map((i) => i.cell));
            path = page.body.next ? page.body.next.replace(srv.url, "") : null;
          }
          assert.deepEqual(paged, wantFiltered);

          // Detail of every cell: candidates newest first, the absorbed, the winner.
          for (const [cell, e] of ref) {
            const d = await srv.json<{
              winner: { tileId: string } | null;
              candidates: { tileId: string }[];
              absorbed: { tileId: string }[];
            }>(`/v1/tiles/${cell}`);
            assert.equal(d.body.winner?.tileId ?? null, e.winner?.id ?? null);
            assert.deepEqual(
              d.body.candidates.map((c) => c.tileId),
              e.candidates.map((c) => c.id),
            );
            assert.deepEqual(d.body.absorbed.map((c) => c.tileId).sort(), e.absorbed.map((c) => c.id).sort());
          }

          // Points at pixel centres.
          for (const [px, py] of q.points) {
            const [lon, lat] = centre(px, py);
            const r = await srv.json<{ tileId: string; class: { id: number }; confidence: number }>(
              `/v1/point?lon=${lon}&lat=${lat}`,
            );
            const inGrid = px >= 0 && py >= 0 && px < COLS * 4 && py < ROWS * 4;
            const w = inGrid
              ? ref.get(fixtureCell(Math.floor(px / 4), Math.floor(py / 4)))?.winner
              : undefined;
            if (!w) {
              assert.equal(r.status, 404);
              continue;
            }
            const i = (py % 4) * 4 + (px % 4);
            // The pixel's own source answers (the cell's winner where no source has the pixel valid).
            const src = ref.get(fixtureCell(Math.floor(px / 4), Math.floor(py / 4)))?.pixels[i];
            const cls = src?.classes[i] ?? 0;
            assert.equal(r.body.tileId, (src ?? w).id);
            assert.equal(r.body.class.id, cls);
            assert.equal(r.body.confidence, cls === 0 ? 0 : (src?.votes[i] ?? 0) / 5);
          }

          // Stats over a lattice-aligned bbox (no pixel centre on an edge) and over a triangle.
          type Stats = {
            pixels: number;
            cells: { total: number };
            classes: { id: number; pixels: number; areaM2: number }[];
          };
          const [x0, x1, y0, y1] = q.bbox;
          const bbox = [
            GRID.lon0 + Math.min(x0, x1) * D,
            GRID.lat0 - Math.max(y0, y1) * D,
            GRID.lon0 + Math.max(x0, x1) * D,
            GRID.lat0 - Math.min(y0, y1) * D,
          ];
          const [minLon, minLat, maxLon, maxLat] = bbox as [number, number, number, number];
          const sb = await srv.json<Stats>(`/v1/stats?bbox=${bbox.join(",")}`);
          const rb = referenceStats(
            ref,
            (lon, lat) => lon >= minLon && lon <= maxLon && lat >= minLat && lat <= maxLat,
          );
          const ring = q.triangle.map(([x, y]) => [GRID.lon0 + x * D, GRID.lat0 - y * D] as [number, number]);
          ring.push(ring[0] as [number, number]);
          const sp = await fetch(srv.url + "/v1/stats", {
            method: "POST",
            headers: { "content-type": "application/geo+json" },
            body: JSON.stringify({
              type: "Feature",
              properties: {},
              geometry: { type: "Polygon", coordinates: [ring] },
            }),
          });
          // Random vertices can put a pixel centre exactly on an edge (fast-check likes round numbers).
          const rp = referenceStats(
            ref,
            (lon, lat) => insidePolygon(ring, lon, lat),
            (lon, lat) => distanceToRing(ring, lon, lat) < 1e-9,
          );
          // A lon/lat pixel's area varies by row (the WGS 84 ellipsoid's): a class's m² lies between
          // its pixels at the grid's smallest and at its largest row area.
          const rowAreas = Array.from({ length: ROWS * 4 }, (_, pr) => {
            const r = pr % 4;
            const a = fixture({
              lane: "batch",
              id: "x",
              col: 0,
              row: Math.floor(pr / 4),
              day: 0,
              seq: 0,
              classes: Array.from({ length: 16 }, (_, i) => (Math.floor(i / 4) === r ? 1 : 0)),
              votes: Array(16).fill(1),
            }).result.areasM2[1];
            return (a ?? 0) / 4;
          });
          const [minArea, maxArea] = [Math.min(...rowAreas), Math.max(...rowAreas)];
          for (const [got, want] of [
            [sb.body, rb],
            [(await sp.json()) as Stats, rp],
          ] as const) {
            const byClass = new Map(got.classes.map((c) => [c.id, c]));
            let total = 0;
            for (let k = 0; k <= 4; k++) {
              const n = byClass.get(k)?.pixels ?? 0;
              const lo = want.sure.get(k) ?? 0;
              const hi = lo + (want.maybe.get(k) ?? 0);
              assert.ok(n >= lo && n <= hi, `class ${k}: ${n} pixels, reference ${lo}..${hi}`);
              const m2 = byClass.get(k)?.areaM2 ?? 0;
              const slack = 1e-6 * maxArea * (n + 1);
              // Not classified has no m², as the lanes' tile summaries have it (areasM2[0] = 0).
              if (k === 0) assert.equal(m2, 0, "area of class 0");
              else assert.ok(m2 >= n * minArea - slack && m2 <= n * maxArea + slack, `area of class ${k}`);
              total += n;
            }
            const cells = got.cells.total;
            assert.ok(
              cells >= want.sureCells && cells <= want.sureCells + want.maybeCells,
              `each cell counted once: ${cells} vs ${want.sureCells}+${want.maybeCells}`,
            );
            assert.equal(got.pixels, total);
          }
        }),
        { numRuns: 20 },
      );
    });
  },
);
