import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, test } from "node:test";
import { pathToFileURL } from "node:url";

const { projectRoot } = await import("../helpers/env.js");
const { BASELINE_WINDOWS, LAZY_VALIDATION_WINDOWS } = await import("../../shared/util/wasm-tier.js");
const { compiledTwin } = await import("../../shared/util/worker.js");

/** What a module created inside a window gets: Liftoff only where the windows act (V8 11 and 12). */
const insideWindow = BASELINE_WINDOWS ? "baseline" : "optimised";
/** What V8 says of a module with an invalid function inside a window: deferred on V8 11 to 14. */
const invalidInsideWindow = LAZY_VALIDATION_WINDOWS ? "created" : "CompileError";

const sources = [
  pathToFileURL(join(projectRoot, "shared", "util", "wasm-tier.ts")),
  pathToFileURL(join(projectRoot, "shared", "crs", "proj.ts")),
];
// The compiled modules while dist/ is fresh (a child then starts without tsx: seconds less), else
// the sources through tsx.
const twins = sources.map((s) => compiledTwin(s));
const compiled = twins.every((t) => t !== null);
const [wasmTier, proj] = (compiled ? (twins as URL[]) : sources).map((u) => u.href);

/**
 * A child process with V8's test intrinsics (%IsTurboFanFunction), which a module of this file
 * cannot use: it defines `make()` (a new WebAssembly module each call — V8 reuses one compiled
 * module for identical bytes — whose `sum(n)` loops n times) and `tier(f)` (runs f hot until V8's
 * background compiler has given it TurboFan code, else reports the tier it stayed on), runs `body`
 * and returns what it printed, one line per probe.
 */
function probe(body: string): string[] {
  const script = `
const { createBaselineOnly, createOptimisable } = await import(${JSON.stringify(wasmTier)});
// (func (export "sum") (param i32) (result i32)): s = 0 + 1 + ... + (n - 1)
const bytes = [0,97,115,109,1,0,0,0, 1,6,1,0x60,1,0x7f,1,0x7f, 3,2,1,0, 7,7,1,3,115,117,109,0,0,
  10,0x25,1,0x23, 1,2,0x7f, 2,0x40, 3,0x40, 0x20,1,0x20,0,0x4e,0x0d,1, 0x20,2,0x20,1,0x6a,0x21,2,
  0x20,1,0x41,1,0x6a,0x21,1, 0x0c,0, 0x0b,0x0b, 0x20,2, 0x0b];
let serial = 0;
// A custom section named after a serial number makes each module's bytes new.
const make = () => new WebAssembly.Instance(new WebAssembly.Module(
  new Uint8Array([...bytes, 0, 2, 1, 65 + serial++]))).exports.sum;
// (func (result i32) i32.add): invalid (the stack is empty), never called.
const invalid = [0,97,115,109,1,0,0,0, 1,5,1,0x60,0,1,0x7f, 3,2,1,0, 10,5,1,3,0,0x6a,0x0b];
function createInvalid() {
  try {
    new WebAssembly.Module(new Uint8Array([...invalid, 0, 2, 1, 65 + serial++]));
    return "created";
  } catch (e) {
    return e.constructor.name;
  }
}
async function tier(f) {
  if (f(10) !== 45) throw new Error("wrong sum");
  for (let round = 0; round < 200; round++) {
    f(100000);
    await new Promise((r) => setTimeout(r, 10));
    if (%IsTurboFanFunction(f)) return "optimised";
  }
  return %IsLiftoffFunction(f) ? "baseline" : "other";
}
${body}`;
  const child = spawnSync(
    process.execPath,
    ["--allow-natives-syntax", ...(compiled ? [] : ["--import", "tsx"]), "--input-type=module", "-e", script],
    { cwd: projectRoot, encoding: "utf8", timeout: 60_000 },
  );
  assert.equal(child.status, 0, child.stderr);
  return child.stdout.trim().split("\n");
}

describe("V8's WebAssembly tiers around the PROJ engine's start (wasm-tier.ts)", () => {
  test("a module created inside a baseline-only window stays on Liftoff however hot it runs (where the windows act: V8 11 and 12), and one created after it reaches TurboFan", () => {
    const lines = probe(`
console.log(await tier(make()));
let inside;
await createBaselineOnly(async () => { inside = make(); inside(10); });
console.log(await tier(inside));
console.log(await tier(make()));`);
    assert.deepEqual(lines, ["optimised", insideWindow, "optimised"]);
  });

  test("a module created by createOptimisable reaches TurboFan even while another caller's window is open", () => {
    const lines = probe(`
let kernel;
const during = await createBaselineOnly(async () => { kernel = createOptimisable(make); return tier(kernel); });
console.log(during);
console.log(await tier(make()));`);
    assert.deepEqual(lines, ["optimised", "optimised"]);
  });

  test("a module created inside a window is validated function by function as each is first compiled (V8 11 to 14), one created after it whole again", () => {
    const lines = probe(`
console.log(createInvalid());
console.log(await createBaselineOnly(async () => createInvalid()));
console.log(createInvalid());
let kernel;
await createBaselineOnly(async () => { kernel = createOptimisable(createInvalid); });
console.log(kernel);`);
    assert.deepEqual(lines, ["CompileError", invalidInsideWindow, "CompileError", "CompileError"]);
  });

  test("once the PROJ engine has started (in its window), modules created after it are optimised as by default", () => {
    const lines = probe(`
const { loadProjEngine } = await import(${JSON.stringify(proj)});
const engine = await loadProjEngine();
const xs = new Float64Array([500000]), ys = new Float64Array([1800000]);
engine.transformer("EPSG:32615", "EPSG:4326")(xs, ys);
console.log(xs[0].toFixed(6), ys[0].toFixed(6));
console.log(await tier(make()));`);
    // (500000, 1800000) in UTM zone 15N lies on the zone's central meridian, 93° W.
    assert.deepEqual(lines, ["-93.000000 16.280833", "optimised"]);
  });
});
