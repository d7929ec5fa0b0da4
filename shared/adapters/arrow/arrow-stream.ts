/**
 * Arrow adapter: tabular answers (row records) encoded as an Arrow IPC stream with apache-arrow.
 * A caller describes its columns once (name, Arrow type, how to read the value from a row); the
 * adapter builds typed vectors, so a client reading the stream (pyarrow, DuckDB, arrow-js) gets real
 * column types rather than strings. Schema-level metadata carries what is true of every row (the
 * view snapshot an answer was read from), keeping the rows themselves flat.
 */
import {
  Bool,
  Field,
  Float64,
  Int32,
  Int64,
  List,
  Schema,
  Table,
  TimestampMillisecond,
  Uint8,
  Utf8,
  tableFromIPC,
  tableToIPC,
  vectorFromArray,
  type DataType,
  type Vector,
} from "apache-arrow";

/** The media type of an Arrow IPC stream (what `Accept` asks for and `Content-Type` says). */
export const ARROW_STREAM_MEDIA_TYPE = "application/vnd.apache.arrow.stream";

/**
 * Column types the adapter writes; a deliberately small set that every Arrow reader maps cleanly.
 * Both Arrow outputs use it: serving's answers and the batch view's summary.arrow.
 */
export type ArrowColumnType =
  "utf8" | "int32" | "int64" | "uint8" | "float64" | "bool" | "timestamp-ms" | "float64-list" | "int64-list";

/** The JS value a column of each type reads from a row (null for a missing value). */
export interface ArrowColumnValue {
  utf8: string;
  int32: number;
  /** A bigint, or a number that is a safe integer. */
  int64: bigint | number;
  uint8: number;
  float64: number;
  bool: boolean;
  /** An ISO 8601 instant, epoch milliseconds or a Date. */
  "timestamp-ms": string | number | Date;
  "float64-list": readonly number[];
  "int64-list": readonly (bigint | number)[];
}

/** One column: its name, its type and how to read it from a row. */
export interface ArrowColumn<R, T extends ArrowColumnType = ArrowColumnType> {
  readonly name: string;
  readonly type: T;
  readonly value: (row: R) => ArrowColumnValue[T] | null;
}

/** Declares a column with its value type checked against its Arrow type. */
export function arrowColumn<R, T extends ArrowColumnType>(
  name: string,
  type: T,
  value: (row: R) => ArrowColumnValue[T] | null,
): ArrowColumn<R, T> {
  return { name, type, value };
}

function arrowType(type: ArrowColumnType): DataType {
  switch (type) {
    case "utf8":
      return new Utf8();
    case "int32":
      return new Int32();
    case "int64":
      return new Int64();
    case "uint8":
      return new Uint8();
    case "float64":
      return new Float64();
    case "bool":
      return new Bool();
    case "timestamp-ms":
      // Zoned: an instant, not a wall-clock time (pyarrow reads timestamp[ms, tz=UTC]).
      return new TimestampMillisecond("UTC");
    case "float64-list":
      return new List(new Field("item", new Float64(), false));
    case "int64-list":
      return new List(new Field("item", new Int64(), false));
  }
}

function normalise(type: ArrowColumnType, v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (type === "timestamp-ms" && typeof v === "string") return Date.parse(v);
  if (type === "timestamp-ms" && v instanceof Date) return v.getTime();
  if (type === "int64" && typeof v === "number") return BigInt(v);
  if (type === "float64-list") return [...(v as readonly number[])];
  if (type === "int64-list") return (v as readonly (bigint | number)[]).map((x) => BigInt(x));
  return v;
}

/**
 * Encodes rows as one Arrow IPC stream (schema message, one record batch, end-of-stream marker).
 * `metadata` becomes the schema's custom metadata. An empty row list still carries the schema.
 */
export function encodeArrowStream<R>(
  rows: readonly R[],
  columns: readonly ArrowColumn<R, ArrowColumnType>[],
  metadata: Readonly<Record<string, string>> = {},
): Uint8Array {
  const vectors: Record<string, Vector> = {};
  const fields: Field[] = [];
  for (const col of columns) {
    const type = arrowType(col.type);
    const values = rows.map((r) => normalise(col.type, (col.value as (row: R) => unknown)(r)));
    // vectorFromArray's overloads are keyed on the static DataType; ours is chosen at run time.
    vectors[col.name] = vectorFromArray(values as never[], type as never) as Vector;
    fields.push(new Field(col.name, type, true));
  }
  const schema = new Schema(fields, new Map(Object.entries(metadata)));
  return tableToIPC(new Table(schema, vectors), "stream");
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** A 64-bit integer as a number when it is exactly one (|n| <= 2^53 - 1), else as the bigint. */
function plainInteger(v: unknown): unknown {
  return typeof v === "bigint" && v >= -MAX_SAFE && v <= MAX_SAFE ? Number(v) : v;
}

/**
 * Decodes an Arrow IPC stream back to plain rows (lists as arrays, timestamps as epoch ms, 64-bit
 * integers as numbers where exact) and the schema metadata; the inverse of encodeArrowStream, for
 * tests and operator scripts.
 */
export function decodeArrowStream(bytes: Uint8Array): {
  rows: Record<string, unknown>[];
  columns: { name: string; type: string }[];
  metadata: Record<string, string>;
} {
  const table = tableFromIPC(bytes);
  const columns = table.schema.fields.map((f) => ({ name: f.name, type: String(f.type) }));
  const rows = table.toArray().map((r: { toJSON(): Record<string, unknown> }) => {
    const o = r.toJSON();
    for (const [k, v] of Object.entries(o)) {
      if (v !== null && typeof v === "object" && Symbol.iterator in v)
        o[k] = [...(v as Iterable<unknown>)].map(plainInteger);
      else o[k] = plainInteger(v);
    }
    return o;
  });
  return { rows, columns, metadata: Object.fromEntries(table.schema.metadata) };
}
