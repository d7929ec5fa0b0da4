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
// timer): such a leak must fail a test, not hang the run. A file still running at two thirds of its
// timeout has its process tree printed (`run-tests:` lines: state, kernel wait, command), since the
// runner's kill names no test (CI once lost a file that way, with nothing to show where it stood).
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

/** Processes as `ps` lists them: pid, parent, seconds since start, state, kernel wait, command line. */
function processTable() {
  const r = spawnSync("ps", ["-e", "-o", "pid=,ppid=,etimes=,stat=,wchan:24=,args="], {
    encoding: "utf8",
    timeout: 10_000,
  });
  if (r.status !== 0) return [];
  return r.stdout
    .split("\n")
    .map((line) => /^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\S+)\s+(\S+)\s+(.*)$/.exec(line))
    .filter((m) => m !== null)
    .map((m) => ({
      pid: Number(m[1]),
      ppid: Number(m[2]),
      etimes: Number(m[3]),
      stat: m[4],
      wchan: m[5],
      args: m[6],
    }));
}

/**
 * Prints, once per test file process, what it and its children are doing when it has run for two
 * thirds of the file timeout: the runner then kills it naming no test (a spawnSync or a hang at
 * import reports nothing), and this is all a CI log would keep of where it stood.
 */
function reportStuckFiles(runnerPid, reported) {
  const table = processTable();
  const childrenOf = (pid) => table.filter((p) => p.ppid === pid);
  for (const file of childrenOf(runnerPid)) {
    if (file.etimes < (fileTimeoutS * 2) / 3 || reported.has(file.pid)) continue;
    reported.add(file.pid);
    const lines = [];
    const walk = (p, depth) => {
      lines.push(`${"  ".repeat(depth)}${p.pid} ${p.etimes}s ${p.stat} ${p.wchan} ${p.args.slice(0, 240)}`);
      for (const c of childrenOf(p.pid)) walk(c, depth + 1);
    };
    walk(file, 0);
    console.log(
      `run-tests: a test file has run for ${file.etimes} s; its processes (pid, age, state, wait, command):`,
    );
    for (const l of lines) console.log(`run-tests:   ${l}`);
  }
}

const runner = spawn(
  process.execPath,
  [
    "--import",
    "tsx",
    "--test",
    "--test-reporter=spec",
    `--test-concurrency=${concurrency}`,
    `--test-timeout=${fileTimeoutS * 1000}`,
    "--test-force-exit",
    ...flags,
    ...files,
  ],
  { cwd: root, stdio: "inherit" },
);
const reported = new Set();
const watchdog = setInterval(
  () => reportStuckFiles(runner.pid, reported),
  Math.min(30_000, fileTimeoutS * 100),
);
runner.on("exit", (code, signal) => {
  clearInterval(watchdog);
  process.exit(code ?? (signal ? 1 : 0));
});
