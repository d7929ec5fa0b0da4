#!/usr/bin/env node
// `npm test`: type-check, lint and format-check (fail fast), build dist/ if it is stale (tests that
// spawn `lanemap` then run the compiled CLI, as users do), then every test file under test/ with
// Node's built-in runner. With file arguments it runs only those files and skips the checks and the
// build (a stale dist/ makes `lanemap` run its sources through tsx: slower, never stale).
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));
const args = process.argv.slice(2);

function run(cmd, cmdArgs) {
  const r = spawnSync(cmd, cmdArgs, { cwd: root, stdio: "inherit" });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

function findTests(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) {
      if (name !== "results" && name !== "bench") out.push(...findTests(p));
    } else if (name.endsWith(".test.ts")) out.push(relative(root, p));
  }
  return out;
}

let files = args.filter((a) => !a.startsWith("-"));
const flags = args.filter((a) => a.startsWith("-"));
if (files.length === 0) {
  const bin = (n) => join(root, "node_modules", ".bin", n);
  console.log("› tsc --noEmit");
  run(bin("tsc"), ["-p", "tsconfig.json", "--noEmit"]);
  console.log("› eslint .");
  run(bin("eslint"), ["."]);
  console.log("› prettier --check .");
  run(bin("prettier"), ["--check", "--log-level", "warn", "."]);
  console.log("› build (dist/)");
  run(process.execPath, [join(root, "infra", "bin", "build.js")]);
  files = findTests(join(root, "test"));
}
run(process.execPath, ["--import", "tsx", "--test", "--test-reporter=spec", ...flags, ...files]);
