/**
 * `node --import tsx test/bench/crs.bench.ts`: what CRS resolution with PROJ costs, in isolation
 * (README "CRS engine"): engine start-up, resolving a distinct CRS, resolving a tile of a known CRS,
 * and one point through proj4js (the hot path) vs through PROJ (gdal3.js). Prints min/median/max.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  WGS84,
  crsFromEpsg,
  loadProjEngine,
  projectPoint,
  readGeoTiffInfo,
  resolveCrs,
} from "../../shared/index.js";

const root = join(import.meta.dirname, "..", "..");
const fixtures = join(root, "test", "fixtures", "crs");

function stats(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const med = s[Math.floor(s.length / 2)] as number;
  const f = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 1 ? v.toFixed(1) : v.toPrecision(2));
  return `min ${f(s[0] as number)}  median ${f(med)}  max ${f(s[s.length - 1] as number)}`;
}

const rss0 = process.memoryUsage().rss;
let t = performance.now();
const engine = await loadProjEngine();
const startMs = performance.now() - t;
const rssMb = (process.memoryUsage().rss - rss0) / 1e6;
console.log(
  `engine start-up: ${startMs.toFixed(0)} ms, +${rssMb.toFixed(0)} MB RSS (gdal3.js ${engine.version})`,
);

// A distinct CRS each: the first pays for opening proj.db.
const files = [
  "generated/epsg27700.tif",
  "generated/tm_feet.tif",
  "generated/nsidc_polar_stereo.tif",
  "generated/epsg26715.tif",
  "generated/epsg31467.tif",
  "generated/epsg2046.tif",
  "generated/epsg6933_ease2.tif",
  "generated/epsg3035.tif",
  "libgeotiff/lcc2sp.tif",
  "libgeotiff/hotine_oblique_mercator_variant_b.tif",
].map((f) => join(fixtures, f));
const infos = await Promise.all(files.map(async (f) => readGeoTiffInfo(readFileSync(f), { crs: "keys" })));
const distinct: number[] = [];
for (const info of infos) {
  t = performance.now();
  await resolveCrs(info.geoTags!, info.bounds);
  distinct.push(performance.now() - t);
}
console.log(`first distinct CRS (opens proj.db): ${(distinct[0] as number).toFixed(0)} ms`);
console.log(`each further distinct CRS, ms: ${stats(distinct.slice(1))}`);

// A tile of a CRS already read: the check points through PROJ, proj4js's check (and fit if needed).
for (const [label, info] of [
  ["EPSG:3035 (PROJ's export agrees)", infos[7]!],
  ["EPSG:27700 (Helmert fitted)", infos[0]!],
] as const) {
  const times: number[] = [];
  for (let i = 0; i < 50; i++) {
    t = performance.now();
    await resolveCrs(info.geoTags!, info.bounds);
    times.push(performance.now() - t);
  }
  console.log(`tile of a known CRS, ${label}, ms: ${stats(times)}`);
}

// One point: proj4js (cached converter) vs PROJ (OCTTransform through the WASM boundary).
const utm = crsFromEpsg(32615);
const n = 20000;
const p4: number[] = [];
const pj: number[] = [];
const tr = engine.transformer("EPSG:32615", "EPSG:4326");
const xs = new Float64Array(1);
const ys = new Float64Array(1);
for (let round = 0; round < 5; round++) {
  t = performance.now();
  for (let i = 0; i < n; i++) projectPoint(utm, WGS84, 500000 + i, 2000000);
  p4.push(((performance.now() - t) * 1e3) / n);
  t = performance.now();
  for (let i = 0; i < n; i++) {
    xs[0] = 500000 + i;
    ys[0] = 2000000;
    tr(xs, ys);
  }
  pj.push(((performance.now() - t) * 1e3) / n);
}
console.log(`one point, proj4js, µs: ${stats(p4)}`);
console.log(`one point, PROJ via gdal3.js, µs: ${stats(pj)}`);
const bx = new Float64Array(n).map((_, i) => 500000 + i);
const by = new Float64Array(n).fill(2000000);
t = performance.now();
tr(bx, by);
console.log(`${n} points in one PROJ call: ${(((performance.now() - t) * 1e3) / n).toPrecision(2)} µs/point`);
