#!/usr/bin/env node
// `npm run build` (also run by `npm ci` / `npm install` through `prepare`): compiles the TypeScript
// sources to dist/ once, so `lanemap` starts as plain JS instead of compiling itself on every run
// (3 s of CPU for `lanemap --help` through tsx). tsc runs incrementally (dist/.tsbuildinfo), so an
// up-to-date dist/ costs a few seconds. The web map's own files (HTML, CSS, the ES modules of the
// page) are copied beside the compiled serving code, which serves them from its own folder.
// dist/BUILT is written last: infra/bin/lanemap.js runs dist/ only while no source is newer.
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));
const dist = join(root, "dist");

let tsc;
try {
  tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
} catch {
  // An install without devDependencies: lanemap then runs its sources through tsx.
  console.warn("lanemap build: typescript is not installed; skipping (lanemap will run through tsx)");
  process.exit(0);
}
const r = spawnSync(process.execPath, [tsc, "-p", join(root, "tsconfig.build.json")], {
  cwd: root,
  stdio: "inherit",
});
if (r.status !== 0) process.exit(r.status ?? 1);

/** Copies every file of `dir` (recursively) that is not TypeScript source or documentation. */
function copyAssets(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== "vendor") copyAssets(p);
    } else if (!entry.name.endsWith(".ts") && !entry.name.endsWith(".md")) {
      const target = join(dist, relative(root, p));
      mkdirSync(join(target, ".."), { recursive: true });
      copyFileSync(p, target);
    }
  }
}
copyAssets(join(root, "serving", "web"));
writeFileSync(join(dist, "BUILT"), `${new Date().toISOString()}\n`);
