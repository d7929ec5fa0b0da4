/**
 * Starting worker threads on TypeScript or compiled entry points. Run from source, the code base
 * goes through tsx's loader, which a worker does not inherit, so a .ts entry starts from a small
 * JS bootstrap that registers the loader and then imports the real entry. Compiled (dist/), the
 * entry is plain JS and starts directly: no loader, no compile in the thread.
 *
 * A .ts entry whose compiled twin in dist/ was built from the sources as they are starts on that
 * twin, as infra/bin/lanemap.js runs dist/ only while no source is newer: the thread then runs the
 * same code without tsx resolving and loading each of its ~100 modules through the loader, which
 * took 2.4–4.9 s per thread where the twin took 0.8–2.1 s (5 of each, paired, load 14–15 on 2
 * cores). Tests and `tsx` runs start a thread for every pool and every replacement, so that was
 * most of a batch run of 9 small tiles. A stale or absent dist/ keeps the bootstrap: never stale code.
 */
import { readFileSync, statSync } from "node:fs";
import { relative } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker, type WorkerOptions } from "node:worker_threads";

const bootstrap = new URL("./worker-bootstrap.js", import.meta.url);
/** The project root when this module runs from source (shared/util/worker.ts). */
const root = new URL("../../", import.meta.url);

/** The sources dist/ was built from when it is fresh (none newer than dist/BUILT), else null; read once. */
let freshSources: Set<string> | null | undefined;

function builtSources(): Set<string> | null {
  if (freshSources !== undefined) return freshSources;
  freshSources = null;
  try {
    const built = statSync(new URL("dist/BUILT", root)).mtimeMs;
    const sources = readFileSync(new URL("dist/SOURCES", root), "utf8")
      .split("\n")
      .filter((s) => s !== "");
    // A source edited (or removed) since the build: dist/ is not the code of this checkout.
    if (sources.every((s) => statSync(new URL(s, root)).mtimeMs <= built)) freshSources = new Set(sources);
  } catch {
    // No build, or a listed source removed.
  }
  return freshSources;
}

/** The compiled twin (dist/<path>.js) of the .ts module `entry` when dist/ is fresh and built it, else null. */
export function compiledTwin(entry: URL): URL | null {
  if (entry.protocol !== "file:") return null;
  const path = relative(fileURLToPath(root), fileURLToPath(entry)).split("\\").join("/");
  if (!builtSources()?.has(path)) return null;
  return new URL(`dist/${path.replace(/\.ts$/, ".js")}`, root);
}

/** Starts a worker on a .ts (or .js) module URL; its `workerPayload()` is `options.workerData`. */
export function startWorker(entry: URL, options: WorkerOptions = {}): Worker {
  const data = { __entry: entry.href, __data: options.workerData };
  if (!entry.pathname.endsWith(".ts")) return new Worker(entry, { ...options, workerData: data });
  return new Worker(compiledTwin(entry) ?? bootstrap, { ...options, workerData: data });
}
