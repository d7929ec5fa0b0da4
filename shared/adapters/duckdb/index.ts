/** DuckDB adapter: one thin wrapper, bound parameters only. */
export { DuckDbDatabase, DuckDbError, type SqlParams } from "./duckdb-database.js";
