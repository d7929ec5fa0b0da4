/**
 * The Arrow IPC export of a view's `tiles` table (summary.arrow). DuckDB's arrow extension cannot be
 * installed offline, so the rows are read through the DuckDB client and encoded with apache-arrow's
 * `tableToIPC`. Column types follow the DuckDB column types one to one; TIMESTAMP becomes
 * Timestamp<MILLISECOND> (the batch lane writes times at millisecond precision, so nothing is lost).
 */
import {
  Bool,
  Field,
  Float64,
  Int32,
  Int64,
  List,
  Table,
  TimestampMillisecond,
  Uint8,
  Utf8,
  tableToIPC,
  vectorFromArray,
  type DataType,
  type Vector,
} from "apache-arrow";
import { LanemapError } from "../shared/index.js";

/** A column of a DuckDB result: its name and DuckDB type name (as DESCRIBE prints it). */
export interface ColumnInfo {
  readonly name: string;
  readonly type: string;
}

function arrowType(duckType: string): DataType {
  if (duckType.endsWith("[]")) return new List(new Field("item", arrowType(duckType.slice(0, -2)), true));
  switch (duckType) {
    case "VARCHAR":
      return new Utf8();
    case "BIGINT":
      return new Int64();
    case "INTEGER":
      return new Int32();
    case "UTINYINT":
      return new Uint8();
    case "DOUBLE":
      return new Float64();
    case "BOOLEAN":
      return new Bool();
    case "TIMESTAMP":
      return new TimestampMillisecond();
    default:
      throw new LanemapError("ARROW_EXPORT", `no Arrow type for DuckDB type ${duckType}`);
  }
}

function jsValue(v: unknown): unknown {
  if (v instanceof Date) return v.getTime();
  if (Array.isArray(v)) return v.map(jsValue);
  return v;
}

/**
 * Encodes rows (as the DuckDB adapter's `allJS` returns them) with their column types as an Arrow
 * IPC stream.
 * @throws LanemapError ARROW_EXPORT for a column type with no Arrow counterpart here.
 */
export function rowsToArrowIpc(
  columns: readonly ColumnInfo[],
  rows: readonly Record<string, unknown>[],
): Uint8Array {
  const vectors: Record<string, Vector> = {};
  for (const c of columns) {
    const values = rows.map((r) => jsValue(r[c.name] ?? null));
    vectors[c.name] = vectorFromArray(values, arrowType(c.type));
  }
  return tableToIPC(new Table(vectors), "stream");
}
