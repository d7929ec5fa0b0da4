import { LanemapError } from "../../shared/index.js";

/** Bad command-line usage (missing or malformed argument); exits with code 2. */
export class UsageError extends LanemapError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("USAGE", message, options);
  }
}

/** Parses a positive integer option or throws a UsageError naming it. */
export function positiveInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0)
    throw new UsageError(`${name} must be a positive integer, got "${value}"`);
  return n;
}

/** Parses "WxH" (e.g. "4x3") or throws a UsageError naming the option. */
export function gridSize(name: string, value: string): { width: number; height: number } {
  const m = /^(\d+)x(\d+)$/i.exec(value.trim());
  if (!m) throw new UsageError(`${name} must look like WxH (e.g. 4x3), got "${value}"`);
  const width = Number(m[1]);
  const height = Number(m[2]);
  if (width <= 0 || height <= 0) throw new UsageError(`${name} must be at least 1x1, got "${value}"`);
  return { width, height };
}
