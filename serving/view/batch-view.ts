/**
 * One published batch view version, opened read-only. Its small tables (tiles, cells, classes) are
 * loaded into memory at open, so lookups never touch DuckDB. Its class rasters (and composites) are
 * held in memory too, still deflated, when they fit in the `heldRasterBytes` budget: one scan at
 * open, after which no query reads DuckDB. A view too large for the budget reads a raster by tile
 * id with a bound parameter when a query first needs it. Either way the decoded raster is kept in
 * the shared LRU. (A read through DuckDB cost ~1.4–3 ms of CPU against ~50 µs to inflate a held
 * 64² raster, and on a loaded machine a point query meets many more cold tiles: issue 11.) The
 * view counts its users: the source holds one reference while the version is current and every
 * snapshot holds one, so the DuckDB handle is closed only after the last request that read this
 * version has finished.
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

/** A tile's class raster as the `rasters` table stores it (deflated, raster-codec.ts). */
interface StoredRaster {
  readonly k: number;
  readonly raster: Uint8Array;
}

/** A composite's BLOBs as the `composites` table stores them. */
interface StoredComposite {
  readonly raster: Uint8Array;
  readonly source: Uint8Array;
}

/** The view's raster BLOBs held in memory (`OpenedBatchView.open`, `heldRasterBytes`). */
interface HeldRasters {
  /** Each tile's class raster, by tile id. */
  readonly byTile: ReadonlyMap<string, StoredRaster>;
  /** Each composited cell's BLOBs, by cell. */
  readonly byCell: ReadonlyMap<string, StoredComposite>;
  /** Their BLOB bytes in all. */
  readonly bytes: number;
}

/**
 * The server's default `heldRasterBytes` (64 MiB): a 10,000-tile view of 64² tiles holds ~3 MB, so
 * views of a few hundred thousand small tiles answer without DuckDB (issue 11).
 */
export const DEFAULT_HELD_RASTER_BYTES = 64 * 2 ** 20;

/** Options of `OpenedBatchView.open`. */
export interface OpenBatchViewOptions {
  /**
   * Largest total of raster and composite BLOB bytes (deflated, as stored) held in memory; a view
   * with more reads them from DuckDB on demand. 0 holds none. Default 0.
   */
  readonly heldRasterBytes?: number;
}

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
  /** The raster BLOBs in memory, or null when they are read from DuckDB (or the view is closed). */
  private held: HeldRasters | null;
  private rasterQueries = 0;
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
    held: HeldRasters | null,
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
    this.held = held;
  }

  /**
   * Opens a version's view.duckdb read-only and loads its small tables, and its raster BLOBs when
   * they fit in `options.heldRasterBytes`. The returned view holds one reference (the caller's).
   * Throws BatchViewError when the file or its rows break the contract.
   */
  static async open(
    v: BatchVersion,
    cache: LruCache<ClassRaster>,
    logger: Logger,
    options: OpenBatchViewOptions = {},
  ): Promise<OpenedBatchView> {
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
      const held = await loadHeldRasters(db, hasComposites, options.heldRasterBytes ?? 0);
      if (held === null && (options.heldRasterBytes ?? 0) > 0)
        logger.info(
          { version: v.name, budget: options.heldRasterBytes },
          "batch view rasters exceed the held budget; reading them from DuckDB on demand",
        );
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
        held,
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
          const row = this.held
            ? this.held.byTile.get(summary.tileId)
            : await this.queryRaster(summary.tileId);
          if (!row) throw new BatchViewError(`${this.name}: tile ${summary.tileId} has no raster`);
          return decodeClassRaster(row.raster, summary.width, summary.height, row.k);
        }),
    };
  }

  private async queryRaster(tileId: string): Promise<StoredRaster | undefined> {
    this.rasterQueries++;
    const rows = await this.db.all<{ k: number; raster: unknown }>(
      `SELECT k, raster FROM rasters WHERE tile_id = $1`,
      [tileId],
    );
    const row = rows[0];
    return row && { k: Number(row.k), raster: blobBytes(row.raster) };
  }

  private async queryComposite(cell: string): Promise<StoredComposite | undefined> {
    this.rasterQueries++;
    const rows = await this.db.all<{ raster: unknown; source: unknown }>(
      `SELECT raster, source FROM composites WHERE cell = $1`,
      [cell],
    );
    const row = rows[0];
    return row && { raster: blobBytes(row.raster), source: blobBytes(row.source) };
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
      const row = this.held ? this.held.byCell.get(cell) : await this.queryComposite(cell);
      if (!row) throw new BatchViewError(`${this.name}: composite of ${cell} has no raster`);
      const raster = decodeClassRaster(row.raster, c.width, c.height, c.k);
      return { ...raster, source: decodeSourceIndex(row.source, c.width * c.height) };
    });
    return loaded as Promise<ClassRaster & { readonly source: Uint8Array }>;
  }

  /**
   * Loads the rasters of several tiles with one query (bound list parameter) into the cache, so an
   * area query that cuts many tiles pays one DuckDB round trip rather than one per tile. Nothing to
   * do when the view holds its rasters: each load is then an inflate, without a round trip.
   */
  async prefetchRasters(tileIds: readonly string[]): Promise<void> {
    if (this.held) return;
    const missing = tileIds.filter((id) => this.cache.get(this.cacheKey(id)) === undefined);
    if (missing.length === 0) return;
    this.check();
    this.rasterQueries++;
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

  /** BLOB bytes of the rasters and composites held in memory; 0 when they are read from DuckDB. */
  get heldRasterBytes(): number {
    return this.held?.bytes ?? 0;
  }

  /** Queries that read raster or composite BLOBs from DuckDB since open (for tests and /metrics). */
  get rasterReads(): number {
    return this.rasterQueries;
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
    this.held = null;
    this.db.closeSync();
    this.cache.deletePrefix(`b${this.generation}:`);
    this.logger.info({ version: this.name }, "closed batch view");
  }
}

/**
 * Every raster and composite BLOB of the view, when their total is at most `budget` bytes; null
 * otherwise (or when the budget is 0). Two scans: the total from the BLOBs' lengths, then the rows.
 */
async function loadHeldRasters(
  db: DuckDbDatabase,
  hasComposites: boolean,
  budget: number,
): Promise<HeldRasters | null> {
  if (budget <= 0) return null;
  const total = async (sql: string): Promise<number> =>
    Number((await db.all<{ n: bigint | null }>(sql))[0]?.n ?? 0);
  const bytes =
    (await total("SELECT sum(octet_length(raster)) AS n FROM rasters")) +
    (hasComposites
      ? await total("SELECT sum(octet_length(raster) + octet_length(source)) AS n FROM composites")
      : 0);
  if (bytes > budget) return null;
  const rasters = new Map<string, StoredRaster>();
  for (const row of await db.all<{ tile_id: string; k: number; raster: unknown }>(
    "SELECT tile_id, k, raster FROM rasters",
  ))
    rasters.set(row.tile_id, { k: Number(row.k), raster: blobBytes(row.raster) });
  const composites = new Map<string, StoredComposite>();
  if (hasComposites)
    for (const row of await db.all<{ cell: string; raster: unknown; source: unknown }>(
      "SELECT cell, raster, source FROM composites",
    ))
      composites.set(row.cell, { raster: blobBytes(row.raster), source: blobBytes(row.source) });
  return { byTile: rasters, byCell: composites, bytes };
}
