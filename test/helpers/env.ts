/**
 * What a test may rely on beside the project: ../shared (real data and the peer), GDAL, the peer's
 * Python stack. Tests that need one skip visibly (t.skip with the reason) when it is absent.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const projectRoot = fileURLToPath(new URL("../..", import.meta.url));
/**
 * The folder holding data/ and peer/: ../shared beside the project, or LANEMAP_TEST_SHARED (a
 * git worktree elsewhere than beside it still finds the samples).
 */
const sharedRoot = process.env["LANEMAP_TEST_SHARED"] || join(projectRoot, "..", "shared");

/** Absolute path of a file in ../shared/data, or null when ../shared/data is absent. */
export function sharedData(...parts: string[]): string | null {
  const p = join(sharedRoot, "data", ...parts);
  return existsSync(p) ? p : null;
}

/** Absolute path of the peer script, or null when ../shared is absent. */
export function peerScript(): string | null {
  const p = join(sharedRoot, "peer", "thematic_map.py");
  return existsSync(p) ? p : null;
}

function commandWorks(cmd: string, args: string[]): boolean {
  // Bounded: a probe that never ends would hold the test file (see processes.ts, runSync).
  const r = spawnSync(cmd, args, { stdio: "ignore", timeout: 30_000, killSignal: "SIGKILL" });
  return r.status === 0;
}

let gdal: boolean | undefined;
/** True when gdal_translate and gdalinfo are on PATH. */
export function hasGdal(): boolean {
  gdal ??= commandWorks("gdal_translate", ["--version"]);
  return gdal;
}

let peer: boolean | undefined;
/** True when Debian's python3 can import what the peer needs. */
export function hasPeerPython(): boolean {
  peer ??= commandWorks("/usr/bin/python3", ["-c", "import rasterio, sklearn, numpy"]);
  return peer;
}

/** The reason a test must skip, or undefined when everything it needs is present. */
export function missing(needs: { shared?: boolean; gdal?: boolean; peer?: boolean }): string | undefined {
  if (needs.shared && !existsSync(join(sharedRoot, "data")))
    return "../shared/data is absent (a fresh clone has none)";
  if (needs.gdal && !hasGdal()) return "GDAL is not installed (apt-get install gdal-bin)";
  if (needs.peer && !hasPeerPython())
    return "the peer's Python stack is absent (apt-get install python3-rasterio python3-sklearn)";
  return undefined;
}
