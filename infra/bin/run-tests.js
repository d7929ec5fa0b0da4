#!/usr/bin/env node
// `npm test`: type-check, lint and format-check (all three at once; any failure stops the run),
// build dist/ if it is stale (tests that spawn `lanemap` then run the compiled CLI, as users do),
// then every test file under test/ with Node's built-in runner. With file arguments it runs only
// those files and skips the checks and the build (a stale dist/ makes `lanemap` run its sources
// through tsx: slower, never stale).
//
// Test files run three at a time (LANEMAP_TEST_CONCURRENCY, default 3): most integration files
// spend their time waiting on child processes, nats-server and timers, so other files fill the
// cores they leave idle. Node's own default is one fewer than the cores (1 on a 2-core CI
// machine), which leaves the suite serial there. On 2 cores, quiet, the whole `npm test` took
// 18.5 min with two at a time and the checks one after another, 15.3 min with three and the
// checks at once (2026-12-02). Every file is isolated (own temporary
// directories, nats-server on port -1), so files never share state.
//
// No file can hold the suite: Node 20 times out a whole test file (not each test) after
// --test-timeout, kills it and reports it failed, so a file stuck on an unbounded wait costs at most
// LANEMAP_TEST_FILE_TIMEOUT_S (default 900 s; the slowest file takes about 2 min here) instead of CI's
// whole 90 minutes (it did once: a run that never ended). --test-force-exit ends a file's process once
// its tests are done even when something it started still holds the event loop (a child's pipe, a
// timer): such a leak must fail a test, not hang the run.
import { spawn, spawnSync } from "node:child_process";
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
/**
 * Runs the checks at once and waits for all: on 2 cores tsc (~30 s), eslint (~20 s) and prettier
 * (~33 s) took 83 s one after another and about 50 s together. Each one's output is printed when it
 * ends, whole, so the three never interleave; any failure fails the run after all have ended.
 */
async function checks(list) {
  const results = await Promise.all(
    list.map(
      ({ label, cmd, cmdArgs }) =>
        new Promise((resolve) => {
          const child = spawn(cmd, cmdArgs, { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
          const out = [];
          child.stdout.on("data", (d) => out.push(d));
          child.stderr.on("data", (d) => out.push(d));
          child.on("error", (err) => resolve({ label, code: 1, output: String(err) }));
          child.on("close", (code) => {
            const output = Buffer.concat(out).toString();
            console.log(`› ${label}${code === 0 ? "" : ` (failed, exit ${code})`}`);
            if (output.trim() !== "") process.stdout.write(output.endsWith("\n") ? output : `${output}\n`);
            resolve({ label, code: code ?? 1 });
          });
        }),
    ),
  );
  const failed = results.find((r) => r.code !== 0);
  if (failed) process.exit(failed.code);
}

if (files.length === 0) {
  const bin = (n) => join(root, "node_modules", ".bin", n);
  await checks([
    { label: "tsc --noEmit", cmd: bin("tsc"), cmdArgs: ["-p", "tsconfig.json", "--noEmit"] },
    { label: "eslint .", cmd: bin("eslint"), cmdArgs: ["."] },
    { label: "prettier --check .", cmd: bin("prettier"), cmdArgs: ["--check", "--log-level", "warn", "."] },
  ]);
  console.log("› build (dist/)");
  run(process.execPath, [join(root, "infra", "bin", "build.js")]);
  files = findTests(join(root, "test"));
}
function positiveInteger(name, fallback) {
  const v = process.env[name] ?? fallback;
  if (!/^[1-9][0-9]*$/.test(v)) {
    console.error(`run-tests: ${name} must be a positive integer, got "${v}"`);
    process.exit(2);
  }
  return Number(v);
}
const concurrency = positiveInteger("LANEMAP_TEST_CONCURRENCY", "3");
const fileTimeoutS = positiveInteger("LANEMAP_TEST_FILE_TIMEOUT_S", "900");
run(process.execPath, [
  "--import",
  "tsx",
  "--test",
  "--test-reporter=spec",
  `--test-concurrency=${concurrency}`,
  `--test-timeout=${fileTimeoutS * 1000}`,
  "--test-force-exit",
  ...flags,
  ...files,
]);
