/**
 * Map cells: the grid key a tile covers. A cell key is "c<col>r<row>" with zero-padded indices
 * (e.g. "c0003r0012"): safe as a NATS subject token, a file name and a URL path segment, and it
 * sorts in row-major order within a column width.
 */
import { LanemapError } from "./errors.js";

const CELL = /^c(\d{4,6})r(\d{4,6})$/;

/**
 * The cell key of grid column `col` and row `row` (both >= 0).
 * @throws LanemapError CELL when an index is not an integer in 0..999999.
 */
export function cellKey(col: number, row: number): string {
  if (!Number.isInteger(col) || !Number.isInteger(row) || col < 0 || row < 0 || col > 999999 || row > 999999)
    throw new LanemapError("CELL", `cell indices must be integers in 0..999999, got ${col},${row}`);
  return `c${String(col).padStart(4, "0")}r${String(row).padStart(4, "0")}`;
}

/** Column and row of a cell key, or null when the key is not of the grid's form. */
export function parseCellKey(key: string): { col: number; row: number } | null {
  const m = CELL.exec(key);
  if (!m) return null;
  return { col: Number(m[1]), row: Number(m[2]) };
}

/**
 * Free-form cell keys (tiles that are not on the generated grid, e.g. a real scene named after
 * its file) must still be safe as subject tokens and path segments.
 */
export const CELL_KEY_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** True when `key` can serve as a cell key anywhere (subject token, file name, URL segment). */
export function isValidCellKey(key: string): boolean {
  return CELL_KEY_PATTERN.test(key);
}
