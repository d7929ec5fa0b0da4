/**
 * Which of V8's two WebAssembly compilers a module's code gets: Liftoff (a one-pass baseline
 * compiler) for every function, then TurboFan (the optimising compiler) for the functions that run
 * hot — V8's "dynamic tiering" (v8.dev/docs/wasm-compilation-pipeline), decided for a module when
 * V8 creates it.
 *
 * Why lanemap cares: gdal3.js (GDAL + PROJ, 27 MB of WebAssembly) runs enough of its code while it
 * starts (drivers, proj.db) that V8 recompiles much of it with TurboFan on background threads: about
 * 1 s of CPU, more than the rest of a `lanemap classify` of a 250² scene, for code that then answers
 * one GDALInfo and a few hundred point transforms per process. Created under V8's `--liftoff-only`
 * it starts for ~0.65 s of CPU instead of ~1.7 s (Node 20.20; README "CRS engine"). The k-NN kernel
 * is the opposite: Liftoff runs it at about half the rate, so it must be created with tiering on.
 *
 * V8 has no per-module option, so this sets the process-wide flags for as short a window as a
 * module's creation and start, then sets back what later modules need. `--liftoff-only` implies
 * `--no-wasm-tier-up` and `--no-wasm-dynamic-tiering` (V8's flag-definitions.h), which stay off
 * unless set back: with dynamic tiering off every module created later stays on Liftoff for good
 * (seen: a k-NN kernel at half its rate), so it is set back; `--wasm-tier-up` is not, because a
 * module created without dynamic tiering (GDAL's) then has every function recompiled by TurboFan
 * in the background (seen: Chiapas' first train 1.5 -> 3.7 CPU s), and modules with dynamic tiering
 * tier up without it (test/unit/wasm-tier.test.ts checks both with V8's intrinsics, on V8 11.3 and
 * 12.4). V8 keys its code cache by the flags, so `restoreFlagsForCodeCache` (published on
 * globalThis for infra/bin/lanemap.js) sets that last one back when nothing runs any more, at exit.
 * V8 reuses one compiled module for identical bytes across the process's threads, so the first
 * creation decides for all; the flags are shared by every thread, and `createOptimisable` sets
 * them back before it creates a module, so a window another thread opened can only end early
 * (costing the saving, never the kernel's tier). Nothing is changed on another V8 major or when the
 * process was started with tiering flags of its own (BASELINE_WINDOWS).
 *
 * The same window defers WebAssembly validation (`--wasm-lazy-validation`, LAZY_VALIDATION_WINDOWS):
 * gdal3.js is validated function by function as its start compiles them, not all 27 MB up front.
 * A module a window did not create is validated whole as by default, so the k-NN kernel's bytes are
 * still checked before it runs.
 */
import { setFlagsFromString } from "node:v8";

/**
 * Whether the windows put new modules on the baseline tier: on the V8 lines whose flags and their
 * implications were checked (11.x, Node 20; 12.x, Node 22 — on 13 and 14, Node 24 and 26,
 * `--liftoff-only` set at run time does not reach a new module, so it would only cost the flag
 * calls), and when the process was not started with tiering flags of its own (Node refuses them in
 * NODE_OPTIONS; V8 takes `-` or `_`). Elsewhere the saving is lost, nothing else.
 */
export const BASELINE_WINDOWS =
  /^1[12]\./.test(process.versions.v8) &&
  !process.execArgv.some((a) =>
    /^--(no-?)?(liftoff|liftoff[-_]only|wasm[-_]tier[-_]up|wasm[-_]dynamic[-_]tiering)(=|$)/.test(a),
  );

/**
 * Whether the windows defer validation (`--wasm-lazy-validation`: a function is validated when it
 * is first compiled, not the whole module when it is created): V8 11 to 14 (Node 20 to 26), where
 * the run-time flag was checked to reach a new module and to be set back (test/unit/wasm-tier.test.ts),
 * unless the process was started with the flag. GDAL's start compiles a small part of its 27 MB;
 * validating all of it up front cost 0.10-0.16 s of CPU (10 paired starts, Node 20.20; ~0.1 s on
 * Node 24).
 */
export const LAZY_VALIDATION_WINDOWS =
  /^1[1-4]\./.test(process.versions.v8) &&
  !process.execArgv.some((a) => /^--(no-?)?wasm[-_]lazy[-_]validation(=|$)/.test(a));

const WINDOWS = BASELINE_WINDOWS || LAZY_VALIDATION_WINDOWS;

let open = 0;

/** The key on globalThis under which infra/bin/lanemap.js finds `restoreFlagsForCodeCache`. */
export const RESTORE_FLAGS_KEY = Symbol.for("lanemap.restoreV8FlagsForCodeCache");

/**
 * Tiering and validation as later modules need them (see the module comment for why not
 * `--wasm-tier-up`): a module of ours is validated whole when created, as by default.
 */
function restoreTiers(): void {
  if (BASELINE_WINDOWS) {
    setFlagsFromString("--no-liftoff-only");
    setFlagsFromString("--wasm-dynamic-tiering");
  }
  if (LAZY_VALIDATION_WINDOWS) setFlagsFromString("--no-wasm-lazy-validation");
}

/**
 * Every flag a window changed back at V8's default, so a code cache written now is one a fresh
 * process accepts. Only when no WebAssembly runs any more (at exit): GDAL's module would then be
 * recompiled by TurboFan as it runs.
 */
function restoreFlagsForCodeCache(): void {
  if (open === 0 && BASELINE_WINDOWS) setFlagsFromString("--wasm-tier-up");
}

/**
 * Runs `create` (which creates and starts a WebAssembly module) with V8's optimising compiler off
 * (BASELINE_WINDOWS) and validation deferred to each function's first compile
 * (LAZY_VALIDATION_WINDOWS) for the modules created meanwhile, then restores V8's tiering and
 * validation. Re-entrant: nested or concurrent windows in one thread end with the last.
 * @throws whatever `create` throws (tiering is restored first).
 */
export async function createBaselineOnly<T>(create: () => Promise<T>): Promise<T> {
  if (!WINDOWS) return create();
  if (open++ === 0) {
    (globalThis as Record<symbol, unknown>)[RESTORE_FLAGS_KEY] = restoreFlagsForCodeCache;
    if (BASELINE_WINDOWS) setFlagsFromString("--liftoff-only");
    if (LAZY_VALIDATION_WINDOWS) setFlagsFromString("--wasm-lazy-validation");
  }
  try {
    return await create();
  } finally {
    if (--open === 0) restoreTiers();
  }
}

/**
 * Runs `create` (which creates a WebAssembly module, synchronously) with V8's tiering as by
 * default, whatever window another caller opened (which then ends early; see the module comment).
 * @throws whatever `create` throws.
 */
export function createOptimisable<T>(create: () => T): T {
  if (WINDOWS) restoreTiers();
  return create();
}
