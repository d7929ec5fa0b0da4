#!/usr/bin/env node
// `npm run build` (also run by `npm ci` / `npm install` through `prepare`): compiles the TypeScript
// sources to dist/ once, so `lanemap` starts as plain JS instead of compiling itself on every run
// (3 s of CPU for `lanemap --help` through tsx). tsc runs incrementally (dist/.tsbuildinfo), so an
// up-to-date dist/ costs a few seconds. The web map's own files (HTML, CSS, the ES modules of the
// page) are copied beside the compiled serving code, which serves them from its own folder.
// The CLI is then bundled from the compiled files into dist/cli/ (see bundleCli below).
// dist/SOURCES lists the source files dist/ is built from and dist/BUILT is written last:
// infra/bin/lanemap.js runs dist/ only while every listed source exists and none is newer.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join, relative, sep } from "node:path";
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

/**
 * The packages bundled into dist/cli/ with our own code: pure JavaScript that the file commands
 * (train, classify, info, evaluate...) load at every start, none of which finds files beside
 * itself through __dirname. Everything else (DuckDB's native addon, gdal3.js and its WebAssembly
 * files, NATS, Express, pino and its transport threads, Arrow...) stays external: loaded from
 * node_modules at run time exactly as the unbundled dist/ loads it.
 */
const BUNDLED_PACKAGES = new Set([
  "commander",
  "zod",
  "proj4",
  "geotiff",
  "@petamoriken/float16",
  "xml-utils",
  "quick-lru",
  "fast-xml-parser",
  "fast-xml-builder",
  "strnum",
  "path-expression-matcher",
  "xml-naming",
  "@nodable/entities",
  "is-unsafe",
  "anynum",
]);

/** The package a bare import names: "zod/v4/core" -> "zod", "@nats-io/kv" -> "@nats-io/kv". */
function packageOf(specifier) {
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
}

/**
 * The commands that run from a CommonJS bundle of their own, dist/cli/<command>.cjs, which
 * infra/bin/lanemap.js compiles with V8's code cache (Node 20 has none for ES modules): the file
 * commands, a short process each, where compiling is a large share of the CPU a run costs. None
 * sets V8 flags for its whole life (V8 refuses a code cache written under other flags than the
 * reader's): the PROJ engine's baseline-only window (shared/util/wasm-tier.ts) ends long before
 * the cache is written at exit.
 */
const CODE_CACHED_COMMANDS = ["train", "classify", "evaluate", "info"];

/**
 * Bundles the compiled CLI (dist/infra/cli/main.js) into dist/cli/, in two forms:
 * - main.js: an ES module entry, one chunk per command (esbuild's code splitting turns each
 *   command's `import()` into a chunk) and chunks they share. A command then loads a handful of
 *   files instead of ~300 modules (lanemap classify: ~0.3 s of CPU less per process, most of it
 *   module resolution, compiling and proj4's CommonJS export scan).
 * - <command>.cjs for each CODE_CACHED_COMMANDS: the same entry with only that command, as one
 *   CommonJS script, whose first line names its content's hash (the code cache's key).
 * Each bundled module keeps its own location: `import.meta.url` is rewritten to the URL of the
 * file it came from (relative to the bundle, so dist/ stays relocatable), so worker entries
 * (dist/shared/.../*-thread.js), the web page's folder and createRequire() resolve as in dist/.
 * esbuild comes with tsx (a dependency); without it the CLI runs the unbundled dist/.
 */
async function bundleCli() {
  const out = join(dist, "cli");
  rmSync(out, { recursive: true, force: true });
  let esbuild;
  try {
    esbuild = await import(createRequire(import.meta.url).resolve("esbuild"));
  } catch {
    console.warn("lanemap build: esbuild is not installed; the CLI runs the unbundled dist/");
    return;
  }
  /** `base`: the expression of the bundle's own URL at run time. */
  const keepLocation = (base) => ({
    name: "keep-location",
    setup(build) {
      build.onResolve({ filter: /^[^./]/ }, (args) => {
        if (args.kind === "entry-point" || args.path.startsWith("node:")) return undefined;
        return BUNDLED_PACKAGES.has(packageOf(args.path)) ? undefined : { path: args.path, external: true };
      });
      build.onLoad({ filter: /\.(m?js)$/ }, (args) => {
        const source = readFileSync(args.path, "utf8");
        if (!source.includes("import.meta.url")) return undefined;
        const from = relative(out, args.path).split(sep).join("/");
        return {
          contents: source.replaceAll("import.meta.url", `new URL(${JSON.stringify(from)}, ${base}).href`),
          loader: "js",
        };
      });
    },
  });
  /**
   * commander requires node:child_process at load for one thing, running a subcommand that is an
   * executable of its own (lanemap has none), and child_process brings ~30 of Node's modules with
   * it (net, dgram, streams: ~2 % of a cached `lanemap classify`'s CPU). Bundled, the require is
   * deferred to that use. A commander whose source no longer has the line is bundled as it is.
   */
  const lazyChildProcess = {
    name: "lazy-child-process",
    setup(build) {
      build.onLoad({ filter: /[\\/]commander[\\/]lib[\\/]command\.js$/ }, (args) => {
        const source = readFileSync(args.path, "utf8");
        const eager = "const childProcess = require('node:child_process');";
        if (!source.includes(eager)) return undefined;
        return {
          contents: source.replace(
            eager,
            "const childProcess = { spawn: (...a) => require('node:child_process').spawn(...a) };",
          ),
          loader: "js",
        };
      });
    },
  };
  const common = {
    entryPoints: [join(dist, "infra", "cli", "main.js")],
    bundle: true,
    platform: "node",
    target: "node20",
    // Whitespace only: names stay (stack traces, and error classes take their name from the
    // class: a worker thread running dist/ must name an error as the bundle does).
    minifyWhitespace: true,
    keepNames: true,
    logLevel: "warning",
  };
  await esbuild.build({
    ...common,
    outdir: out,
    splitting: true,
    format: "esm",
    plugins: [lazyChildProcess, keepLocation("import.meta.url")],
    // CommonJS packages bundled into ESM (commander, proj4) call require() for Node's built-ins.
    banner: {
      js: 'import { createRequire as __lanemapCreateRequire } from "node:module"; const require = __lanemapCreateRequire(import.meta.url);',
    },
  });
  const commandsIndex = join(dist, "infra", "cli", "commands", "index.js");
  for (const command of CODE_CACHED_COMMANDS) {
    // The catalogue's other commands become empty modules: lanemap.js runs this bundle only for
    // `command`, and main.js loads no command but the one named.
    const onlyCommand = {
      name: "only-command",
      setup(build) {
        build.onResolve({ filter: /^\.\/[a-z-]+\.js$/ }, (args) =>
          args.kind === "dynamic-import" && args.importer === commandsIndex && args.path !== `./${command}.js`
            ? { path: args.path, namespace: "other-command" }
            : undefined,
        );
        build.onLoad({ filter: /.*/, namespace: "other-command" }, () => ({ contents: "export {};" }));
      },
    };
    const result = await esbuild.build({
      ...common,
      outfile: join(out, `${command}.cjs`),
      write: false,
      format: "cjs",
      plugins: [onlyCommand, lazyChildProcess, keepLocation("__lanemapBundleUrl")],
      // "use strict" first: the bundle's own directive, after the banner, would no longer be one.
      banner: {
        js: '"use strict"; var __lanemapBundleUrl = require("node:url").pathToFileURL(__filename).href;',
      },
    });
    if (result.warnings.length > 0) throw new Error(`lanemap build: ${command}.cjs has warnings`);
    const code = result.outputFiles[0].contents;
    const id = createHash("sha256").update(code).digest("hex").slice(0, 16);
    writeFileSync(
      join(out, `${command}.cjs`),
      Buffer.concat([Buffer.from(`// lanemap-bundle ${id}\n`), code]),
    );
  }
}
/**
 * The source files dist/ is built from, relative to the root with "/" separators: the TypeScript
 * of the five folders (their node_modules and vendor folders aside) and the web page's files.
 */
function sourceFiles(dir, out = []) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === "node_modules" || entry.name === "vendor") continue;
    const p = join(dir, entry.name);
    if (entry.isDirectory()) sourceFiles(p, out);
    else if (
      entry.name.endsWith(".ts") ||
      (dir.endsWith(join("serving", "web")) && !entry.name.endsWith(".md"))
    )
      out.push(relative(root, p).split(sep).join("/"));
  }
  return out;
}
await bundleCli();
const sources = ["shared", "batch", "speed", "serving", "infra"].flatMap((d) => sourceFiles(join(root, d)));
writeFileSync(join(dist, "SOURCES"), `${sources.sort().join("\n")}\n`);
writeFileSync(join(dist, "BUILT"), `${new Date().toISOString()}\n`);
