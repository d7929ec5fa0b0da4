/**
 * The published batch view's layout (the contract between the batch writer and every reader).
 *
 * views/batch/vNNNNNN/
 *   view.duckdb      tables below
 *   summary.parquet  the `tiles` table (COPY ... TO ... (FORMAT parquet))
 *   summary.arrow    the `tiles` table as an Arrow IPC stream
 *   model.json       the model artifact the run used (class names and colours for renderers)
 *   manifest.json    BatchManifest, written last: a folder without it is not a view
 *
 * Per-class arrays (`counts`, `areas_m2`) are indexed by class id; index 0 = not classified.
 * `cells` names, per map cell, the tile this view shows for it (newest acquisition, ties to the
 * higher ingest sequence: shared/view/merge.ts `newestOf`).
 * `composites` holds, per cell whose newest tile is not fully valid (clouds, nodata) and that has
 * older tiles, the per-pixel composite of its tiles (shared/view/composite.ts) and its uint8 source
 * index on the cell's union grid; `composite_sources` names the tiles the index points at (idx 0 = newest). A cell without a
 * row is its newest tile alone: a clear cell costs what it cost before compositing.
 */
export const BATCH_VIEW_FILES = {
  duckdb: "view.duckdb",
  parquet: "summary.parquet",
  arrow: "summary.arrow",
  model: "model.json",
  manifest: "manifest.json",
} as const;

/**
 * The `composites` table. A composite's pixel grid is its cell's union grid (shared/view/resample.ts
 * `unionGrid`), not always a tile's: `geo_transform` (GDAL order) with `width` × `height`, and the
 * CRS as `tiles` stores it (`epsg`, else `proj4`). Views written before these columns read them as
 * NULL, and serving takes the covering tile's grid as those views were written on.
 */
export const COMPOSITES_DDL = `CREATE TABLE composites (
    cell VARCHAR PRIMARY KEY,
    k UTINYINT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    valid_pixels BIGINT NOT NULL,
    counts BIGINT[] NOT NULL,
    areas_m2 DOUBLE[] NOT NULL,
    raster BLOB NOT NULL,
    source BLOB NOT NULL,
    mean_confidence DOUBLE,
    geo_transform DOUBLE[],
    epsg INTEGER,
    proj4 VARCHAR
  )`;

export const BATCH_VIEW_DDL = [
  `CREATE TABLE tiles (
    tile_id VARCHAR PRIMARY KEY,
    cell VARCHAR NOT NULL,
    acquired TIMESTAMP NOT NULL,
    ingest_seq BIGINT NOT NULL,
    content_hash VARCHAR NOT NULL,
    model_version VARCHAR NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    geo_transform DOUBLE[] NOT NULL,
    epsg INTEGER,
    proj4 VARCHAR,
    min_lon DOUBLE, min_lat DOUBLE, max_lon DOUBLE, max_lat DOUBLE,
    valid_pixels BIGINT NOT NULL,
    counts BIGINT[] NOT NULL,
    areas_m2 DOUBLE[] NOT NULL,
    dominant_class INTEGER NOT NULL,
    mean_confidence DOUBLE NOT NULL,
    processed_at TIMESTAMP NOT NULL,
    reused BOOLEAN NOT NULL
  )`,
  `CREATE TABLE cells (cell VARCHAR PRIMARY KEY, tile_id VARCHAR NOT NULL)`,
  `CREATE TABLE rasters (tile_id VARCHAR PRIMARY KEY, k UTINYINT NOT NULL, raster BLOB NOT NULL)`,
  COMPOSITES_DDL,
  `CREATE TABLE composite_sources (
    cell VARCHAR NOT NULL,
    idx UTINYINT NOT NULL,
    tile_id VARCHAR NOT NULL,
    pixels BIGINT NOT NULL,
    PRIMARY KEY (cell, idx)
  )`,
  `CREATE TABLE classes (id INTEGER PRIMARY KEY, name VARCHAR NOT NULL, colour VARCHAR NOT NULL)`,
  `CREATE TABLE failures (tile_id VARCHAR, code VARCHAR, reason VARCHAR)`,
] as const;
