#!/usr/bin/env node
// The `lanemap` command. It runs the compiled JS in dist/ (built by `npm ci` / `npm run build`),
// which starts in a tenth of the time it takes to compile the TypeScript at run time. When dist/
// is missing or older than a source file (a checkout, an edit), it runs the sources through tsx's
// loader instead, so the command never runs stale code.
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));
const SOURCE_DIRS = ["shared", "batch", "speed", "serving", "infra"];

/** Newest modification time (ms) of the sources that dist/ is built from, or Infinity on doubt. */
function newestSource(dir, newest = 0) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === "node_modules" || entry.name === "vendor") continue;
    const p = join(dir, entry.name);
    if (entry.isDirectory()) newest = newestSource(p, newest);
    else if (
      entry.name.endsWith(".ts") ||
      (dir.endsWith(join("serving", "web")) && !entry.name.endsWith(".md"))
    )
      newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

function distIsFresh() {
  try {
    const built = statSync(join(root, "dist", "BUILT")).mtimeMs;
    return SOURCE_DIRS.every((d) => newestSource(join(root, d)) <= built);
  } catch {
    return false;
  }
}

if (distIsFresh()) {
  await import("../../dist/infra/cli/main.js");
} else {
  if (process.stderr.isTTY)
    console.error(
      "lanemap: dist/ is missing or stale, running the sources (`npm run build` for a fast start)",
    );
  const { register } = await import("tsx/esm/api");
  register();
  await import("../cli/main.ts");
}
