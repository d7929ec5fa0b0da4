#!/usr/bin/env node
// The `lanemap` command. It runs the compiled JS in dist/ (built by `npm ci` / `npm run build`),
// which starts in a tenth of the time it takes to compile the TypeScript at run time. When dist/
// is missing or older than a source file (a checkout, an edit), it runs the sources through tsx's
// loader instead, so the command never runs stale code. Of dist/ it runs the bundles in dist/cli/
// (see infra/bin/build.js), which load a few files where the compiled modules are ~300; the
// compiled modules when the bundles are absent (no esbuild at build time). A file command with a
// CommonJS bundle of its own (dist/cli/<command>.cjs: train, classify...) runs it through V8's
// code cache, kept beside PROJ's answers in $XDG_CACHE_HOME/lanemap (else ~/.cache/lanemap): a
// process then compiles next to nothing of the bundle, where compiling it costs ~0.1 s of CPU.
// Node's built-ins through process.getBuiltinModule (Node 20.16+, 22.3+), as require() gets them:
// an ES module `import` of a built-in makes the ES module loader build a module record of each
// (seven here: a few ms of CPU per command). An older Node imports them.
const builtin =
  process.getBuiltinModule?.bind(process) ?? (await import("node:module")).createRequire(import.meta.url);
const { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, statSync, unlinkSync, writeFileSync } =
  builtin("node:fs");
const Module = builtin("node:module");
const { createRequire } = Module;
const { homedir } = builtin("node:os");
const { dirname, join } = builtin("node:path");
const { fileURLToPath } = builtin("node:url");
const vm = builtin("node:vm");

const root = fileURLToPath(new URL("../..", import.meta.url));
/**
 * True when dist/ was built from the sources as they are: every source file that dist/SOURCES lists
 * (infra/bin/build.js writes it, one path a line) still exists and none is newer than dist/BUILT.
 * A file added since the build changes what dist/ should hold only once an existing file imports it,
 * and that edit is newer; a listed file removed makes dist/ stale. Stat'ing a list is ~2 ms of CPU
 * where walking the source folders for it was 10-18 ms, every command.
 */
function distIsFresh() {
  try {
    const built = statSync(join(root, "dist", "BUILT")).mtimeMs;
    const sources = readFileSync(join(root, "dist", "SOURCES"), "utf8").split("\n");
    for (const source of sources)
      if (source !== "" && !(statSync(join(root, source)).mtimeMs <= built)) return false;
    return true;
  } catch {
    // No build, a build from before SOURCES, or a listed source removed.
    return false;
  }
}

/** The command a command line runs: its first word, or the one after `help` (as main.ts reads it). */
function commandNamed(argv) {
  const words = argv.filter((a) => !a.startsWith("-"));
  return words[0] === "help" ? words[1] : words[0];
}

/**
 * The code cache of a bundle: a file per command, named after the bundle's content hash (its first
 * line), Node's version and the architecture, so a rebuilt bundle or another Node never reads a
 * cache that is not its own (V8 checks only the source's length, its own version and flags).
 */
function codeCachePath(command, id) {
  const base = process.env["XDG_CACHE_HOME"] || join(homedir(), ".cache");
  return join(base, "lanemap", "code-cache", `${command}-${id}-node${process.version}-${process.arch}.v8`);
}

/** Caches kept per command: a few builds (checkouts, worktrees sharing a home) side by side. */
const CODE_CACHES_PER_COMMAND = 4;

/**
 * Writes a code cache atomically (temporary file + rename: a concurrent reader sees a whole file or
 * none) and removes the command's oldest caches past CODE_CACHES_PER_COMMAND. A folder that cannot
 * be written only means no cache.
 */
function writeCodeCache(path, data, command) {
  try {
    const folder = dirname(path);
    mkdirSync(folder, { recursive: true });
    const temp = `${path}.${process.pid}.tmp`;
    writeFileSync(temp, data);
    renameSync(temp, path);
    const older = readdirSync(folder)
      .filter((n) => n.startsWith(`${command}-`) && n.endsWith(".v8"))
      .map((n) => ({ path: join(folder, n), mtimeMs: statSync(join(folder, n)).mtimeMs }))
      .sort((a, b) => b.mtimeMs - a.mtimeMs)
      .slice(CODE_CACHES_PER_COMMAND);
    for (const o of older) unlinkSync(o.path);
  } catch {
    // No cache this time.
  }
}

/**
 * Runs a command's CommonJS bundle as Node's CommonJS loader would, compiled with its code cache.
 * Without one (or with one V8 rejects), the cache is written when the command succeeds: after the
 * run, so it holds the functions the command compiled, not only the outermost ones. A help screen
 * compiles too little to be worth keeping.
 */
function runWithCodeCache(file, command, argv) {
  const source = readFileSync(file, "utf8");
  // The first line: `// lanemap-bundle <content hash>`.
  const id = /^\/\/ lanemap-bundle ([0-9a-f]+)\n/.exec(source)?.[1];
  const cachePath = id === undefined ? null : codeCachePath(command, id);
  let cachedData;
  try {
    if (cachePath !== null) cachedData = readFileSync(cachePath);
  } catch {
    cachedData = undefined;
  }
  const script = new vm.Script(Module.wrap(source), {
    filename: file,
    cachedData,
    // import() inside the bundle (a package left outside it) loads as it would from a file.
    importModuleDynamically: vm.constants?.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  });
  const help = argv.some((a) => a === "-h" || a === "--help") || argv[0] === "help";
  if (cachePath !== null && (cachedData === undefined || script.cachedDataRejected) && !help)
    process.once("exit", (code) => {
      if (code !== 0) return;
      // V8 keys a code cache by the process's flags: those the PROJ engine's start changed go back to
      // their defaults first (shared/util/wasm-tier.ts), or the next process would refuse the cache.
      globalThis[Symbol.for("lanemap.restoreV8FlagsForCodeCache")]?.();
      writeCodeCache(cachePath, script.createCachedData(), command);
    });
  const module = { exports: {} };
  script.runInThisContext()(module.exports, createRequire(file), module, file, dirname(file));
}

if (distIsFresh()) {
  const argv = process.argv.slice(2);
  const command = commandNamed(argv);
  const ownBundle = command && /^[a-z-]+$/.test(command) ? join(root, "dist", "cli", `${command}.cjs`) : null;
  // A command's CommonJS bundle require()s the ES module packages it leaves outside (NATS, when
  // `train --activate` stores into a NATS registry): only where Node loads ES modules with require().
  if (ownBundle && process.features.require_module === true && existsSync(ownBundle))
    runWithCodeCache(ownBundle, command, argv);
  else if (existsSync(join(root, "dist", "cli", "main.js"))) await import("../../dist/cli/main.js");
  else await import("../../dist/infra/cli/main.js");
} else {
  if (process.stderr.isTTY)
    console.error(
      "lanemap: dist/ is missing or stale, running the sources (`npm run build` for a fast start)",
    );
  const { register } = await import("tsx/esm/api");
  register();
  await import("../cli/main.ts");
}
