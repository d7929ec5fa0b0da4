/**
 * One published batch view version, opened read-only. Its small tables (tiles, cells, classes) are
 * loaded into memory at open, so lookups never touch DuckDB; class rasters are read by tile id with
 * a bound parameter and kept decoded in the shared LRU. The view counts its users: the source holds
 * one reference while the version is current and every snapshot holds one, so the DuckDB handle is
 * closed only after the last request that read this version has finished.
 */
import { join } from "node:path";
import type { Logger } from "pino";
import {
  DuckDbDatabase,
  TILE_ROW_SELECT,
  compositeRowSelect,
  compositeFromRow,
  tileResultFromRow,
  type CompositeRow,
  type TileRow,
} from "../../shared/adapters/duckdb/index.js";
import type { BatchVersion } from "../../shared/adapters/archive/index.js";
import {
  BATCH_VIEW_FILES,
  LanemapError,
  decodeClassRaster,
  decodeSourceIndex,
  describeError,
  type BatchManifest,
  type CellComposite,
  type ClassRaster,
  type ModelClass,
  type TileResult,
} from "../../shared/index.js";
import type { LruCache } from "./lru-cache.js";
import { servedResult, type ServedResult } from "./served-result.js";

/** A batch view folder cannot be opened or its tables are not what the contract says. */
export class BatchViewError extends LanemapError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("BATCH_VIEW", message, options);
  }
}

function blobBytes(v: unknown): Uint8Array {
  if (v instanceof Uint8Array) return v;
  const bytes = (v as { bytes?: unknown } | null)?.bytes;
  if (bytes instanceof Uint8Array) return bytes;
  throw new BatchViewError("raster column is not a BLOB");
}

let openCounter = 0;

/** One opened batch version: tables in memory, rasters on demand, reference-counted. */
export class OpenedBatchView {
  readonly name: string;
  readonly version: number;
  readonly dir: string;
  readonly manifest: BatchManifest;
  /** Unique per open (a rolled-back version opened again is a new generation): raster cache prefix. */
  readonly generation: number;
  /** Every tile of the view by id (including tiles no cell shows any more). */
  readonly results: ReadonlyMap<string, ServedResult>;
  /** The result the view shows per cell (its `cells` table). */
  readonly cellResults: ReadonlyMap<string, ServedResult>;
  readonly classes: readonly ModelClass[];
  /**
   * Per cell whose newest tile is not fully valid, the stored per-pixel composite's summary (sources
   * newest first); empty for views published before compositing.
   */
  readonly composites: ReadonlyMap<string, CellComposite>;
  /** When the run finished, epoch ms (the view's age is measured from it). */
  readonly finishedMs: number;
  private readonly db: DuckDbDatabase;
  private readonly cache: LruCache<ClassRaster>;
  private readonly logger: Logger;
  private refs = 1;
  private isClosed = false;

  private constructor(
    v: BatchVersion,
    db: DuckDbDatabase,
    cache: LruCache<ClassRaster>,
    logger: Logger,
    tables: {
      results: Map<string, ServedResult>;
      cellResults: Map<string, ServedResult>;
      classes: ModelClass[];
      composites: Map<string, CellComposite>;
    },
    generation: number,
  ) {
    this.name = v.name;
    this.version = v.version;
    this.dir = v.dir;
    this.manifest = v.manifest;
    this.db = db;
    this.cache = cache;
    this.logger = logger;
    this.generation = generation;
    this.results = tables.results;
    this.cellResults = tables.cellResults;
    this.classes = tables.classes;
    this.composites = tables.composites;
    this.finishedMs = Date.parse(v.manifest.finishedAt);
  }

  /**
   * Opens a version's view.duckdb read-only and loads its small tables. The returned view holds one
   * reference (the caller's). Throws BatchViewError when the file or its rows break the contract.
   */
  static async open(v: BatchVersion, cache: LruCache<ClassRaster>, logger: Logger): Promise<OpenedBatchView> {
    const path = join(v.dir, BATCH_VIEW_FILES.duckdb);
    const db = await DuckDbDatabase.open(path, { readOnly: true, threads: 1 });
    const generation = ++openCounter;
    try {
      const rows = await db.allJS<TileRow>(`SELECT ${TILE_ROW_SELECT} FROM tiles`);
      const cellRows = await db.allJS<{ cell: string; tile_id: string }>(`SELECT cell, tile_id FROM cells`);
      const classRows = await db.allJS<{ id: number; name: string; colour: string }>(
        `SELECT id, name, colour FROM classes ORDER BY id`,
      );
      const hasComposites =
        (
          await db.all<{ n: bigint }>(
            "SELECT count(*) AS n FROM duckdb_tables() WHERE table_name = 'composites' AND database_name = current_database()",
          )
        )[0]?.n === 1n;
      const composites = new Map<string, CellComposite>();
      const meanConfidence =
        hasComposites &&
        (
          await db.all<{ n: bigint }>(
            "SELECT count(*) AS n FROM duckdb_columns() WHERE table_name = 'composites' AND column_name = 'mean_confidence' AND database_name = current_database()",
          )
        )[0]?.n === 1n;
      const grid =
        hasComposites &&
        (
          await db.all<{ n: bigint }>(
            "SELECT count(*) AS n FROM duckdb_columns() WHERE table_name = 'composites' AND column_name = 'geo_transform' AND database_name = current_database()",
          )
        )[0]?.n === 1n;
      if (hasComposites)
        for (const row of await db.allJS<CompositeRow>(compositeRowSelect({ meanConfidence, grid }))) {
          try {
            composites.set(row.cell, compositeFromRow(row));
          } catch (err) {
            throw new BatchViewError(`${v.name}: ${describeError(err)}`, { cause: err });
          }
        }
      // The view object exists before its results so that their raster() closures can reach it.
      const results = new Map<string, ServedResult>();
      const cellResults = new Map<string, ServedResult>();
      const view = new OpenedBatchView(
        v,
        db,
        cache,
        logger,
        {
          results,
          cellResults,
          classes: classRows.map((c) => ({ ...c, id: Number(c.id) })),
          composites,
        },
        generation,
      );
      for (const row of rows) {
        const summary = view.toTileResult(row);
        results.set(summary.tileId, servedResult(summary, view.rasterLoader(summary)));
      }
      for (const { cell, tile_id } of cellRows) {
        const r = results.get(tile_id);
        if (!r) throw new BatchViewError(`${v.name}: cells names tile ${tile_id}, which is not in tiles`);
        if (r.cell !== cell)
          throw new BatchViewError(`${v.name}: cell ${cell} names tile ${tile_id} of ${r.cell}`);
        cellResults.set(cell, r);
      }
      for (const c of composites.values())
        for (const src of c.sources)
          if (results.get(src.tileId)?.cell !== c.cell)
            throw new BatchViewError(
              `${v.name}: composite of ${c.cell} names tile ${src.tileId}, not of that cell`,
            );
      return view;
    } catch (cause) {
      db.closeSync();
      if (cause instanceof BatchViewError) throw cause;
      throw new BatchViewError(`cannot load batch view ${v.name}: ${(cause as Error).message}`, { cause });
    }
  }

  private toTileResult(row: TileRow): TileResult {
    try {
      return tileResultFromRow(row);
    } catch (err) {
      throw new BatchViewError(`${this.name}: ${describeError(err)}`, { cause: err });
    }
  }

  private cacheKey(tileId: string): string {
    return `b${this.generation}:${tileId}`;
  }

  private rasterLoader(summary: TileResult): {
    batchVersion: number;
    revision: null;
    raster: () => Promise<ClassRaster>;
  } {
    return {
      batchVersion: this.version,
      revision: null,
      raster: () =>
        this.cache.getOrLoad(this.cacheKey(summary.tileId), async () => {
          this.check();
          const rows = await this.db.all<{ k: number; raster: unknown }>(
            `SELECT k, raster FROM rasters WHERE tile_id = $1`,
            [summary.tileId],
          );
          const row = rows[0];
          if (!row) throw new BatchViewError(`${this.name}: tile ${summary.tileId} has no raster`);
          return decodeClassRaster(blobBytes(row.raster), summary.width, summary.height, Number(row.k));
        }),
    };
  }

  /**
   * The stored composite of a cell (classes + votes and the per-pixel source index into
   * `composites.get(cell).sources`), decoded and cached like a tile raster.
   * @throws BatchViewError when the cell has no composite or its BLOBs are unreadable.
   */
  compositeRaster(cell: string): Promise<ClassRaster & { readonly source: Uint8Array }> {
    const c = this.composites.get(cell);
    if (!c) return Promise.reject(new BatchViewError(`${this.name}: cell ${cell} has no composite`));
    // Cell keys cannot hold ":", tile ids neither: the key cannot meet a tile's.
    const loaded = this.cache.getOrLoad(`b${this.generation}:composite:${cell}`, async () => {
      this.check();
      const rows = await this.db.all<{ raster: unknown; source: unknown }>(
        `SELECT raster, source FROM composites WHERE cell = $1`,
        [cell],
      );
      const row = rows[0];
      if (!row) throw new BatchViewError(`${this.name}: composite of ${cell} has no raster`);
      const raster = decodeClassRaster(blobBytes(row.raster), c.width, c.height, c.k);
      return { ...raster, source: decodeSourceIndex(blobBytes(row.source), c.width * c.height) };
    });
    return loaded as Promise<ClassRaster & { readonly source: Uint8Array }>;
  }

  /**
   * Loads the rasters of several tiles with one query (bound list parameter) into the cache, so an
   * area query that cuts many tiles pays one DuckDB round trip rather than one per tile.
   */
  async prefetchRasters(tileIds: readonly string[]): Promise<void> {
    const missing = tileIds.filter((id) => this.cache.get(this.cacheKey(id)) === undefined);
    if (missing.length === 0) return;
    this.check();
    // Tile ids cannot contain a comma (TILE_ID_PATTERN), so one bound string carries the whole list.
    const rows = await this.db.all<{ tile_id: string; k: number; raster: unknown }>(
      `SELECT tile_id, k, raster FROM rasters WHERE tile_id IN (SELECT unnest(string_split($1, ',')))`,
      [missing.join(",")],
    );
    for (const row of rows) {
      const r = this.results.get(row.tile_id);
      if (!r) continue;
      try {
        const raster = decodeClassRaster(
          blobBytes(row.raster),
          r.summary.width,
          r.summary.height,
          Number(row.k),
        );
        this.cache.set(this.cacheKey(row.tile_id), raster);
      } catch (err) {
        // Left uncached: the per-tile load reports the same error to the request that needs it.
        this.logger.warn(
          { err, tileId: row.tile_id, version: this.name },
          "stored class raster is unreadable",
        );
      }
    }
  }

  private check(): void {
    if (this.isClosed) throw new BatchViewError(`batch view ${this.name} is closed`);
  }

  /** True once the last reference was released and DuckDB closed. */
  get closed(): boolean {
    return this.isClosed;
  }

  /** Current reference count (for tests and /metrics). */
  get references(): number {
    return this.refs;
  }

  /** Takes one more reference. */
  retain(): this {
    this.check();
    this.refs++;
    return this;
  }

  /** Drops one reference; the last one closes DuckDB and evicts the view's rasters. */
  release(): void {
    if (this.isClosed) return;
    if (--this.refs > 0) return;
    this.isClosed = true;
    this.db.closeSync();
    this.cache.deletePrefix(`b${this.generation}:`);
    this.logger.info({ version: this.name }, "closed batch view");
  }
}
