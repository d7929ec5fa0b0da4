/** DuckDB adapter: one thin wrapper, bound parameters only. */
export { quotedString } from "@duckdb/node-api";
export { DuckDbDatabase, DuckDbError, type SqlParams } from "./duckdb-database.js";
export {
  TILE_ROW_SELECT,
  rasterRowValues,
  tileResultFromRow,
  tileRowValues,
  type TileRow,
} from "./batch-view-rows.js";
