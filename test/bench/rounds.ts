/**
 * Interleaved rounds for the benches that compare lanemap with a peer in the same run
 * (bench:batch, bench:speed, bench:serve): which side goes first in a round, ratios paired round by
 * round, a process's CPU time from /proc, and how often a target held.
 *
 * Why rounds: the machine is shared, so its load drifts during a run. Each side is measured once per
 * round, the side that goes first alternating, and a ratio is taken within a round (lanemap ÷ peer
 * measured minutes apart), so a drift in load favours neither side and shows as the spread.
 */
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { median } from "./harness.js";

/** The two sides in the order round `round` (0-based) runs them: `[a, b]`, then `[b, a]`, ... */
export function sidesOf<T>(round: number, sides: readonly [T, T]): [T, T] {
  return round % 2 === 0 ? [sides[0], sides[1]] : [sides[1], sides[0]];
}

/** Round-by-round ratios `num[i] / den[i]` (the lists come from the same rounds). */
export function paired(num: readonly number[], den: readonly number[]): number[] {
  return num.map((n, i) => n / (den[i] ?? NaN));
}

/** min / median / max of a list, and the list itself, for the JSON results. */
export function stat(xs: readonly number[]): { min: number; median: number; max: number; runs: number[] } {
  return { min: Math.min(...xs), median: median(xs), max: Math.max(...xs), runs: [...xs] };
}

/** Decimals that show a figure of this size to about three significant digits. */
export function digitsFor(xs: readonly number[]): number {
  const m = Math.abs(median(xs));
  return m >= 100 ? 0 : m >= 10 ? 1 : 2;
}

/**
 * A target's verdict over the rounds: "met in all 5 rounds", "met in 3 of 5 rounds" or "missed in
 * all 5 rounds", so one lucky or unlucky round is visible as such.
 */
export function heldIn(ok: readonly boolean[]): string {
  const n = ok.filter(Boolean).length;
  if (n === ok.length) return `met in all ${ok.length} rounds`;
  if (n === 0) return `missed in all ${ok.length} rounds`;
  return `met in ${n} of ${ok.length} rounds`;
}

/**
 * CPU seconds (user + system, all threads) process `pid` has used so far, from /proc/PID/stat
 * (fields 14 and 15, in clock ticks of 1/100 s: proc(5)).
 */
export function processCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may hold spaces) start after the last ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** The 1-minute load average now, to 2 decimals (sampled as each round starts). */
export function loadNow(): number {
  return Math.round((loadavg()[0] ?? NaN) * 100) / 100;
}

/** A positive integer option (`--rounds 5`), or a clear error. */
export function positiveInt(name: string, value: string | undefined, fallback: number): number {
  const n = value === undefined ? fallback : Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got ${value}`);
  return n;
}
