import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { tableFromIPC } from "apache-arrow";
import { arrowColumn, decodeArrowStream, encodeArrowStream } from "../../shared/adapters/arrow/index.js";

interface Row {
  name: string | null;
  n: number;
  at: string;
  ok: boolean | null;
  list: number[];
}

const columns = [
  arrowColumn("name", "utf8", (r: Row) => r.name),
  arrowColumn("n", "int32", (r: Row) => r.n),
  arrowColumn("x", "float64", (r: Row) => r.n / 4),
  arrowColumn("at", "timestamp-ms", (r: Row) => r.at),
  arrowColumn("ok", "bool", (r: Row) => r.ok),
  arrowColumn("list", "float64-list", (r: Row) => r.list),
];

describe("the Arrow adapter", () => {
  test("rows round-trip through an IPC stream with real column types, nulls and schema metadata", () => {
    const rows: Row[] = [
      { name: "water", n: 3, at: "2026-01-02T03:04:05.678Z", ok: true, list: [1, 2.5] },
      { name: null, n: -7, at: "2026-01-01T00:00:00Z", ok: null, list: [] },
    ];
    const bytes = encodeArrowStream(rows, columns, { "lanemap:snapshot": '{"id":"s1"}' });
    const table = tableFromIPC(bytes);
    assert.deepEqual(
      table.schema.fields.map((f) => String(f.type)),
      ["Utf8", "Int32", "Float64", "Timestamp<MILLISECOND, UTC>", "Bool", "List<Float64>"],
    );
    const back = decodeArrowStream(bytes);
    assert.deepEqual(back.rows, [
      { name: "water", n: 3, x: 0.75, at: Date.parse("2026-01-02T03:04:05.678Z"), ok: true, list: [1, 2.5] },
      { name: null, n: -7, x: -1.75, at: Date.parse("2026-01-01T00:00:00Z"), ok: null, list: [] },
    ]);
    assert.equal(back.metadata["lanemap:snapshot"], '{"id":"s1"}');
  });

  test("counts and sequences are 64-bit integers, times are UTC instants, and both read back as numbers", () => {
    const cols = [
      arrowColumn("seq", "int64", (r: { seq: number; counts: number[]; at: string }) => r.seq),
      arrowColumn("counts", "int64-list", (r: { seq: number; counts: number[]; at: string }) => r.counts),
      arrowColumn("at", "timestamp-ms", (r: { seq: number; counts: number[]; at: string }) => r.at),
    ];
    const bytes = encodeArrowStream(
      [{ seq: 2 ** 40 + 1, counts: [0, 7, 3], at: "2026-03-04T05:06:07Z" }],
      cols,
    );
    assert.deepEqual(
      tableFromIPC(bytes).schema.fields.map((f) => String(f.type)),
      ["Int64", "List<Int64>", "Timestamp<MILLISECOND, UTC>"],
    );
    assert.deepEqual(decodeArrowStream(bytes).rows, [
      { seq: 2 ** 40 + 1, counts: [0, 7, 3], at: Date.parse("2026-03-04T05:06:07Z") },
    ]);
  });

  test("an empty answer still carries its schema", () => {
    const back = decodeArrowStream(encodeArrowStream([], columns));
    assert.equal(back.rows.length, 0);
    assert.deepEqual(
      back.columns.map((c) => c.name),
      ["name", "n", "x", "at", "ok", "list"],
    );
  });
});
