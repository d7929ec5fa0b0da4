/**
 * The PROJ engine: GDAL and PROJ compiled to WebAssembly (the `gdal3.js` package, works offline from npm).
 * lanemap asks it two things, so that a CRS means exactly what it means to GDAL:
 *   1. what a GeoTIFF's georeferencing is (`readGeoTiffCrs`: GDAL's own GeoKey reader, then PROJ's
 *      WKT2, PROJJSON, EPSG identification and proj4 export);
 *   2. where points go (`transformer`: OGRCoordinateTransformation, i.e. the operation PROJ picks,
 *      including its ballpark fallback when a datum shift needs a grid file that is not there).
 * Start-up costs about 0.2–0.3 s of CPU (27 MB of WASM, baseline-compiled and validated lazily: see
 * shared/util/wasm-tier.ts; GDAL's GTiff driver only: see gdal-drivers.ts; loading proj.db), then
 * ~0.1 s for the first CRS GDAL reads (proj.db's lookups), so the engine is loaded
 * lazily, once per process, on the thread that resolves CRSs (never in decoder workers); after that
 * every call is synchronous. Measured figures: README "CRS engine".
 */
import { createRequire } from "node:module";
import { dirname, join, relative } from "node:path";
import { createBaselineOnly } from "../util/wasm-tier.js";
import { CrsError } from "./crs.js";
import { GDAL_DRIVERS_SKIPPED } from "./gdal-drivers.js";

/** What GDAL says about a GeoTIFF's CRS. */
export interface GdalCrsReading {
  /** WKT2 (2019) as `gdalinfo -json` prints it under `coordinateSystem.wkt`. */
  readonly wkt: string;
  /** PROJJSON (`stac["proj:projjson"]`). */
  readonly projjson: unknown;
  /** The EPSG code GDAL identifies (`stac["proj:epsg"]`), or null. */
  readonly epsg: number | null;
  /** GDAL's proj4 export (`coordinateSystem.proj4`), or null when it has none. */
  readonly proj4: string | null;
  /** The CRS's name from PROJJSON, or null. */
  readonly name: string | null;
  /** What GDAL warned while reading the keys (e.g. keys that differ from the EPSG registry's). */
  readonly warnings: readonly string[];
}

/** Transforms points in place; a point that does not map becomes NaN, NaN. */
export type PointsTransform = (xs: Float64Array, ys: Float64Array) => void;

/** The loaded engine: every method is synchronous. */
export interface ProjEngine {
  /** gdal3.js version (it pins its GDAL and PROJ). */
  readonly version: string;
  /** The GDAL drivers registered, by short name: GTiff alone unless gdal-drivers.ts lacks one. */
  readonly drivers: readonly string[];
  /**
   * GDAL's reading of a GeoTIFF's CRS, or null when GDAL finds none.
   * @throws CrsError when GDAL cannot open the bytes.
   */
  readGeoTiffCrs(bytes: Uint8Array): GdalCrsReading | null;
  /**
   * A transform between two CRSs given as anything `OSRSetFromUserInput` takes (WKT, "EPSG:n",
   * PROJJSON), both in GIS axis order (x = easting/longitude). Cached per pair.
   * @throws CrsError when either CRS is not understood or PROJ finds no operation between them.
   */
  transformer(from: string, to: string): PointsTransform;
}

/** The Emscripten module surface we use (gdal3.js exposes it as `Gdal.Module`). */
interface EmscriptenModule {
  ccall(name: string, ret: "number" | "string" | null, types: string[], args: unknown[]): unknown;
  readonly HEAPF64: Float64Array;
  readonly HEAP32: Int32Array;
  readonly HEAPU8: Uint8Array;
  _malloc(bytes: number): number;
  _free(ptr: number): void;
  FS: {
    mkdir(path: string): void;
    writeFile(path: string, data: Uint8Array): void;
    unlink(path: string): void;
  };
}

interface Gdal3 {
  readonly Module: EmscriptenModule;
  /** gdal3.js's listing of the registered drivers, by short name. */
  readonly drivers: { readonly raster: Record<string, unknown>; readonly vector: Record<string, unknown> };
}

type InitGdalJs = (config: {
  path: string;
  useWorker?: boolean;
  /** Environment variables of the WebAssembly process (GDAL reads its configuration options there). */
  env?: Record<string, string>;
  logHandler?: (message: string, stream: string) => void;
  errorHandler?: (message: string, stream: string) => void;
}) => Promise<Gdal3>;

/** GDAL's messages since the last `takeMessages()`: kept for the caller, never printed on stderr. */
const messages: string[] = [];
function takeMessages(): string[] {
  return messages.splice(0, messages.length);
}

const OAMS_TRADITIONAL_GIS_ORDER = 0;
const SCRATCH_POINTS = 1024;
const MAX_TRANSFORMS = 256;

let loading: Promise<ProjEngine> | null = null;
let loaded: ProjEngine | null = null;

/**
 * The process's PROJ engine, loaded on first use (about 2–3 s) and shared by every caller after that.
 * @throws CrsError when gdal3.js is not installed or fails to start.
 */
export function loadProjEngine(): Promise<ProjEngine> {
  loading ??= start().then(
    (engine) => (loaded = engine),
    (err: unknown) => {
      loading = null;
      throw new CrsError("the PROJ engine (gdal3.js) could not start", { cause: err });
    },
  );
  return loading;
}

/** The engine if this process has already loaded it, else null (for synchronous callers). */
export function loadedProjEngine(): ProjEngine | null {
  return loaded;
}

async function start(): Promise<ProjEngine> {
  const require = createRequire(import.meta.url);
  const pkg = require.resolve("gdal3.js/package.json");
  const version = (require("gdal3.js/package.json") as { version: string }).version;
  const init = require("gdal3.js/node.js") as InitGdalJs;
  // gdal3.js reads its data file as "./" + path in Node, so the path must be relative to the
  // working directory (an absolute one would become ".//abs/path").
  const dir = relative(process.cwd(), join(dirname(pkg), "dist", "package"));
  // Baseline-compiled only (wasm-tier.ts): GDAL's start runs much of its code once, and V8's
  // optimising recompiles of it cost more CPU than the rest of a short command.
  return createBaselineOnly(async () => {
    const gdal = await init({
      path: dir === "" ? "." : dir,
      useWorker: false,
      // Only GTiff stays registered: gdal3.js's listing of every driver is half its start (gdal-drivers.ts).
      env: { GDAL_SKIP: GDAL_DRIVERS_SKIPPED.join(",") },
      // GDAL's warnings belong to the reading they concern (GdalCrsReading.warnings), not to stderr.
      logHandler: () => {},
      errorHandler: (message) => {
        if (messages.length < 100) messages.push(message);
      },
    });
    return new GdalProjEngine(gdal, version);
  });
}

class GdalProjEngine implements ProjEngine {
  private readonly m: EmscriptenModule;
  private readonly transforms = new Map<string, PointsTransform>();
  private readonly handles = new Map<string, number>();
  private readonly scratch: number;
  private serial = 0;
  readonly drivers: readonly string[];

  constructor(
    gdal: Gdal3,
    readonly version: string,
  ) {
    this.m = gdal.Module;
    this.drivers = [...new Set([...Object.keys(gdal.drivers.raster), ...Object.keys(gdal.drivers.vector)])];
    try {
      this.m.FS.mkdir("/lanemap-crs");
    } catch {
      // Already there: a second engine over the same module.
    }
    // x, y and z scratch arrays for OCTTransform, allocated once.
    this.scratch = this.m._malloc(SCRATCH_POINTS * 8 * 3);
    // Network grids are never fetched: a transform must not depend on reaching a CDN.
    this.m.ccall("CPLSetConfigOption", null, ["string", "string"], ["PROJ_NETWORK", "OFF"]);
  }

  readGeoTiffCrs(bytes: Uint8Array): GdalCrsReading | null {
    const path = `/lanemap-crs/${this.serial++}.tif`;
    this.m.FS.writeFile(path, bytes);
    let ds = 0;
    takeMessages();
    try {
      this.m.ccall("CPLErrorReset", null, [], []);
      ds = this.m.ccall("GDALOpen", "number", ["string", "number"], [path, 0]) as number;
      if (ds === 0) throw new CrsError(`GDAL cannot open the GeoTIFF: ${this.lastError()}`);
      // GDALInfo (the library behind `gdalinfo -json -proj4`) called directly: synchronous.
      const json = this.m.ccall("GDALInfo", "string", ["number", "number"], [ds, this.infoOptions()]);
      return readingOf(JSON.parse(json as string) as unknown, takeMessages());
    } finally {
      if (ds !== 0) this.m.ccall("GDALClose", null, ["number"], [ds]);
      this.m.FS.unlink(path);
    }
  }

  private infoOptionsPtr = 0;

  /** GDALInfoOptions for `-json -proj4`, built once (a NULL-terminated char* array). */
  private infoOptions(): number {
    if (this.infoOptionsPtr !== 0) return this.infoOptionsPtr;
    const args = ["-json", "-proj4"];
    const argv = this.m._malloc((args.length + 1) * 4);
    args.forEach((a, i) => {
      const bytes = new TextEncoder().encode(`${a}\0`);
      const p = this.m._malloc(bytes.length);
      this.m.HEAPU8.set(bytes, p);
      this.m.HEAP32[(argv >> 2) + i] = p;
    });
    this.m.HEAP32[(argv >> 2) + args.length] = 0;
    this.infoOptionsPtr = this.m.ccall(
      "GDALInfoOptionsNew",
      "number",
      ["number", "number"],
      [argv, 0],
    ) as number;
    return this.infoOptionsPtr;
  }

  private lastError(): string {
    return (this.m.ccall("CPLGetLastErrorMsg", "string", [], []) as string) || "unknown error";
  }

  private srs(definition: string): number {
    const h = this.m.ccall("OSRNewSpatialReference", "number", ["number"], [0]) as number;
    this.m.ccall("CPLErrorReset", null, [], []);
    const err = this.m.ccall("OSRSetFromUserInput", "number", ["number", "string"], [h, definition]);
    if (err !== 0) {
      this.m.ccall("OSRDestroySpatialReference", null, ["number"], [h]);
      throw new CrsError(`PROJ does not understand the CRS ${short(definition)}: ${this.lastError()}`);
    }
    this.m.ccall("OSRSetAxisMappingStrategy", null, ["number", "number"], [h, OAMS_TRADITIONAL_GIS_ORDER]);
    return h;
  }

  transformer(from: string, to: string): PointsTransform {
    const key = `${from}\u0000${to}`;
    const known = this.transforms.get(key);
    if (known !== undefined) return known;
    const src = this.srs(from);
    const dst = this.srs(to);
    this.m.ccall("CPLErrorReset", null, [], []);
    const ct = this.m.ccall("OCTNewCoordinateTransformation", "number", ["number", "number"], [src, dst]);
    // The transformation keeps its own copies of both CRSs.
    this.m.ccall("OSRDestroySpatialReference", null, ["number"], [src]);
    this.m.ccall("OSRDestroySpatialReference", null, ["number"], [dst]);
    if (ct === 0)
      throw new CrsError(
        `PROJ finds no transformation from ${short(from)} to ${short(to)}: ${this.lastError()}`,
      );
    // A caller may keep the function: after an eviction it rebuilds the transform, never touching a
    // freed handle.
    const run: PointsTransform = (xs, ys) => {
      const handle = this.handles.get(key);
      if (handle === undefined) this.transformer(from, to)(xs, ys);
      else this.run(handle, xs, ys);
    };
    // Bounded: CRSs come from files; evicted handles are freed.
    if (this.transforms.size >= MAX_TRANSFORMS) {
      for (const handle of this.handles.values())
        this.m.ccall("OCTDestroyCoordinateTransformation", null, ["number"], [handle]);
      this.transforms.clear();
      this.handles.clear();
    }
    this.transforms.set(key, run);
    this.handles.set(key, ct as number);
    return run;
  }

  private run(ct: number, xs: Float64Array, ys: Float64Array): void {
    const base = this.scratch;
    for (let start = 0; start < xs.length; start += SCRATCH_POINTS) {
      const n = Math.min(SCRATCH_POINTS, xs.length - start);
      // HEAPF64 is replaced when the WASM memory grows: read it afresh for every batch.
      const heap = this.m.HEAPF64;
      const x0 = base >> 3;
      const y0 = x0 + SCRATCH_POINTS;
      const z0 = y0 + SCRATCH_POINTS;
      heap.set(xs.subarray(start, start + n), x0);
      heap.set(ys.subarray(start, start + n), y0);
      heap.fill(0, z0, z0 + n);
      this.m.ccall(
        "OCTTransform",
        "number",
        ["number", "number", "number", "number", "number"],
        [ct, n, base, base + SCRATCH_POINTS * 8, base + SCRATCH_POINTS * 16],
      );
      const out = this.m.HEAPF64;
      for (let i = 0; i < n; i++) {
        const x = out[x0 + i] as number;
        const y = out[y0 + i] as number;
        // PROJ marks a failed point with HUGE_VAL; lanemap's convention is NaN.
        const ok = Number.isFinite(x) && Number.isFinite(y) && Math.abs(x) < 1e300;
        xs[start + i] = ok ? x : NaN;
        ys[start + i] = ok ? y : NaN;
      }
    }
  }
}

function short(definition: string): string {
  const s = definition.replace(/\s+/g, " ");
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function readingOf(info: unknown, warnings: readonly string[]): GdalCrsReading | null {
  if (typeof info !== "object" || info === null) return null;
  const cs = (info as { coordinateSystem?: { wkt?: unknown; proj4?: unknown } }).coordinateSystem;
  const wkt = typeof cs?.wkt === "string" && cs.wkt.trim() !== "" ? cs.wkt : null;
  // Keys that name no CRS (a RasterType key alone) read as an engineering CRS with an unknown datum:
  // nothing a point can be transformed from, so no CRS.
  if (wkt === null || /^\s*ENGCRS\[/.test(wkt)) return null;
  const stac = (info as { stac?: Record<string, unknown> }).stac ?? {};
  const epsg = stac["proj:epsg"];
  const projjson = stac["proj:projjson"] ?? null;
  const name =
    typeof projjson === "object" &&
    projjson !== null &&
    typeof (projjson as { name?: unknown }).name === "string"
      ? (projjson as { name: string }).name
      : null;
  return {
    wkt,
    projjson,
    epsg: typeof epsg === "number" && Number.isInteger(epsg) ? epsg : null,
    proj4: typeof cs?.proj4 === "string" && cs.proj4.trim() !== "" ? cs.proj4.trim() : null,
    name,
    warnings,
  };
}
