/**
 * The batch side of a reconciliation: per map cell, the tile a published batch view shows for it and
 * that tile's class counts, read from the version's `view.duckdb` (opened read-only, so a serving
 * process reading the same file is undisturbed) and closed again before returning.
 */
import { join } from "node:path";
import type { BatchVersion } from "../../shared/adapters/archive/index.js";
import {
  DuckDbDatabase,
  TILE_ROW_SELECT,
  tileResultFromRow,
  type TileRow,
} from "../../shared/adapters/duckdb/index.js";
import { BATCH_VIEW_FILES, type ModelClass } from "../../shared/index.js";

/** What a batch view says about one cell. */
export interface BatchCellResult {
  readonly cell: string;
  readonly tileId: string;
  readonly ingestSeq: number;
  readonly modelVersion: string;
  /** Pixels per class id (index 0 = not classified). */
  readonly counts: readonly number[];
}

/** A class of the model the view was built with (the model's class type, without its colour). */
export type ViewClass = Pick<ModelClass, "id" | "name">;

/** Every cell of a published version with its tile's counts (cell order), and the view's classes. */
export async function readBatchCells(
  version: BatchVersion,
): Promise<{ cells: BatchCellResult[]; classes: ViewClass[] }> {
  const db = await DuckDbDatabase.open(join(version.dir, BATCH_VIEW_FILES.duckdb), {
    readOnly: true,
    threads: 1,
  });
  try {
    // The tiles row is read as every reader reads it (the DuckDB adapter's one row mapping).
    const rows = await db.allJS<TileRow & { view_cell: string }>(
      `SELECT c.cell AS view_cell, t.*
         FROM cells c JOIN (SELECT ${TILE_ROW_SELECT} FROM tiles) t ON t.tile_id = c.tile_id
        ORDER BY c.cell`,
    );
    const classes = await db.allJS<{ id: number; name: string }>("SELECT id, name FROM classes ORDER BY id");
    return {
      cells: rows.map((r) => {
        const t = tileResultFromRow(r);
        return {
          cell: r.view_cell,
          tileId: t.tileId,
          ingestSeq: t.ingestSeq,
          modelVersion: t.modelVersion,
          counts: t.counts,
        };
      }),
      classes: classes.map((c) => ({ id: Number(c.id), name: c.name })),
    };
  } finally {
    db.closeSync();
  }
}
