/**
 * The Arrow IPC export of a view's `tiles` table (summary.arrow). DuckDB's arrow extension cannot be
 * installed offline, so the rows are read through the DuckDB adapter and encoded by the Arrow
 * adapter, the same encoder serving's Arrow answers use. Column types follow the DuckDB column types
 * one to one; TIMESTAMP becomes Timestamp<MILLISECOND> (the batch lane writes times at millisecond
 * precision, so nothing is lost).
 */
import { arrowColumn, encodeArrowStream, type ArrowColumnType } from "../shared/adapters/arrow/index.js";
import { LanemapError } from "../shared/index.js";

/** A column of a DuckDB result: its name and DuckDB type name (as DESCRIBE prints it). */
export interface ColumnInfo {
  readonly name: string;
  readonly type: string;
}

/** DuckDB column type (DESCRIBE's name) -> the Arrow adapter's column type. */
const ARROW_TYPE_OF: Readonly<Record<string, ArrowColumnType>> = {
  VARCHAR: "utf8",
  BIGINT: "int64",
  INTEGER: "int32",
  UTINYINT: "uint8",
  DOUBLE: "float64",
  BOOLEAN: "bool",
  TIMESTAMP: "timestamp-ms",
  "DOUBLE[]": "float64-list",
  "BIGINT[]": "int64-list",
};

/**
 * Encodes rows (as the DuckDB adapter's `allJS` returns them) with their column types as an Arrow
 * IPC stream.
 * @throws LanemapError ARROW_EXPORT for a column type with no Arrow counterpart here.
 */
export function rowsToArrowIpc(
  columns: readonly ColumnInfo[],
  rows: readonly Record<string, unknown>[],
): Uint8Array {
  return encodeArrowStream(
    rows,
    columns.map((c) => {
      const type = ARROW_TYPE_OF[c.type];
      if (type === undefined)
        throw new LanemapError("ARROW_EXPORT", `no Arrow type for DuckDB type ${c.type}`);
      // The value's type is the column's by construction: DuckDB typed it.
      return arrowColumn(c.name, type, (r: Record<string, unknown>) => (r[c.name] ?? null) as never);
    }),
  );
}
