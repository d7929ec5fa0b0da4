/**
 * Benchmark harness: every `npm run bench:*` prints a table and writes its figures as JSON under
 * test/results/bench/, so the README's table can be refreshed from files rather than memory.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { projectRoot } from "../helpers/env.js";

export type Cell = string | number | null;
export interface Table {
  title: string;
  columns: string[];
  rows: Cell[][];
  notes?: string[];
}

function fmt(c: Cell): string {
  if (c === null) return "—";
  if (typeof c === "number") {
    if (!Number.isFinite(c)) return String(c);
    const abs = Math.abs(c);
    if (abs >= 1000) return Math.round(c).toLocaleString("en-US");
    if (abs >= 100) return c.toFixed(0);
    if (abs >= 10) return c.toFixed(1);
    return c.toFixed(2);
  }
  return c;
}

/** Prints a table as aligned markdown (pastes straight into the README). */
export function printTable(t: Table): void {
  const cells = [t.columns, ...t.rows.map((r) => r.map(fmt))];
  const widths = t.columns.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) => "| " + r.map((c, i) => c.padEnd(widths[i] ?? 0)).join(" | ") + " |";
  console.log(`\n### ${t.title}\n`);
  console.log(line(t.columns));
  console.log("| " + widths.map((w) => "-".repeat(w)).join(" | ") + " |");
  for (const r of cells.slice(1)) console.log(line(r));
  for (const n of t.notes ?? []) console.log(`\n${n}`);
}

/** Writes the results JSON (with machine facts) and returns its path. */
export function writeResults(name: string, data: unknown): string {
  const dir = join(projectRoot, "test", "results", "bench");
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.json`);
  const machine = {
    cpus: cpus().length,
    cpu: cpus()[0]?.model ?? "?",
    memGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
  };
  writeFileSync(path, JSON.stringify({ name, at: new Date().toISOString(), machine, data }, null, 2) + "\n");
  console.log(`\nresults: ${path}`);
  return path;
}

/** Median of a list of numbers. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] ?? NaN) : ((s[m - 1] ?? NaN) + (s[m] ?? NaN)) / 2;
}

/** Runs fn `runs` times after `warmup` runs and returns the per-run milliseconds. */
export async function timeRuns(fn: () => unknown, runs: number, warmup = 1): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    out.push(performance.now() - t0);
  }
  return out;
}
