/** DuckDB adapter: one thin wrapper, bound parameters only. */
export { quotedString } from "@duckdb/node-api";
export { DuckDbDatabase, DuckDbError, type SqlParams } from "./duckdb-database.js";
export {
  compositeRowSelect,
  TILE_ROW_SELECT,
  compositeFromRow,
  compositeRowValues,
  rasterRowValues,
  tileResultFromRow,
  tileRowValues,
  type CompositeRow,
  type TileRow,
} from "./batch-view-rows.js";
