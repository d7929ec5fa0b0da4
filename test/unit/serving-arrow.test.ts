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
      ["Utf8", "Int32", "Float64", "Timestamp<MILLISECOND>", "Bool", "List<Float64>"],
    );
    const back = decodeArrowStream(bytes);
    assert.deepEqual(back.rows, [
      { name: "water", n: 3, x: 0.75, at: Date.parse("2026-01-02T03:04:05.678Z"), ok: true, list: [1, 2.5] },
      { name: null, n: -7, x: -1.75, at: Date.parse("2026-01-01T00:00:00Z"), ok: null, list: [] },
    ]);
    assert.equal(back.metadata["lanemap:snapshot"], '{"id":"s1"}');
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
