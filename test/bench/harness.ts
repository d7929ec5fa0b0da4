/**
 * Benchmark harness: every `npm run bench:*` prints a table and writes its figures as JSON under
 * test/results/bench/, so the README's tables are regenerated from files (`npm run bench:readme`,
 * readme.ts) rather than from memory.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, loadavg, totalmem } from "node:os";
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

/** A table as aligned markdown lines (pastes straight into the README). */
export function renderTable(t: Table): string {
  const cells = [t.columns, ...t.rows.map((r) => r.map(fmt))];
  const widths = t.columns.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) => "| " + r.map((c, i) => c.padEnd(widths[i] ?? 0)).join(" | ") + " |";
  return [
    line(t.columns),
    "| " + widths.map((w) => "-".repeat(w)).join(" | ") + " |",
    ...cells.slice(1).map(line),
  ].join("\n");
}

/** Prints a table as aligned markdown, with its title and notes. */
export function printTable(t: Table): void {
  console.log(`\n### ${t.title}\n`);
  console.log(renderTable(t));
  for (const n of t.notes ?? []) console.log(`\n${n}`);
}

/** The 1, 5 and 15 minute load averages when the bench started (this module is loaded first). */
const loadAtStart = loadavg().map((l) => Math.round(l * 100) / 100);
const startedAt = new Date().toISOString();

/** The machine a result was measured on, and how busy it was when the bench started. */
export function machineFacts(): Record<string, unknown> {
  return {
    nproc: availableParallelism(),
    cpus: cpus().length,
    cpu: cpus()[0]?.model ?? "?",
    memGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    loadAtStart,
    startedAt,
  };
}

/**
 * Writes the results JSON (with machine facts, and the tables as printed so `npm run bench:readme`
 * can put them in the README) and returns its path.
 */
export function writeResults(name: string, data: unknown, tables: readonly Table[] = []): string {
  const dir = join(projectRoot, "test", "results", "bench");
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.json`);
  const machine = machineFacts();
  writeFileSync(
    path,
    JSON.stringify({ name, at: new Date().toISOString(), machine, tables, data }, null, 2) + "\n",
  );
  console.log(`\nresults: ${path}`);
  return path;
}

/** Median of a list of numbers. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] ?? NaN) : ((s[m - 1] ?? NaN) + (s[m] ?? NaN)) / 2;
}

/** max / min of a list of positive figures: how far apart repeated runs landed (1 = identical). */
export function spreadOf(xs: readonly number[]): number {
  return Math.max(...xs) / Math.min(...xs);
}

/** min / median / max of a list, formatted with `digits` decimals ("—" when empty). */
export function minMedMax(xs: readonly number[], digits = 0, suffix = ""): string {
  if (xs.length === 0) return "—";
  const f = (v: number): string => (digits === 0 ? Math.round(v).toLocaleString("en-US") : v.toFixed(digits));
  return `${f(Math.min(...xs))} / ${f(median(xs))} / ${f(Math.max(...xs))}${suffix}`;
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
