/**
 * The archived source tile's georeferencing tags, so a class GeoTIFF carries exactly the source's
 * CRS and grid (GeoKey directory, its parameter tags, tie points/scale or matrix), EPSG code or not.
 *
 * Read from the archived object's header on request rather than copied into the catalogue: the
 * archive is content-addressed (the object of a hash never changes), so one read per distinct tile,
 * cached, serves every later request, and no catalogue or view format changes. A miss costs one
 * object read plus an IFD parse (median 8 ms for the 1 MB Chiapas stack; figures in serving/README.md).
 */
import type { TileArchive } from "../../shared/index.js";
import { readGeoTiffInfo, type RasterInfo } from "../../shared/index.js";

/** A source raster's georeferencing tags as the decoder reads them. */
type GeoTiffGeoTags = NonNullable<RasterInfo["geoTags"]>;

/** How many tiles' tags to keep; a few KB each at most. */
const CACHE_ENTRIES = 1024;

/** Looks up (and caches by content hash) the georeferencing tags of archived source tiles. */
export class SourceGeoref {
  private readonly cache = new Map<string, GeoTiffGeoTags | null>();

  constructor(private readonly archive: TileArchive) {}

  /**
   * The source's tags when its object is archived, is a GeoTIFF with a GeoKey directory and has the
   * tile's size (a class raster on another grid must not borrow them); otherwise null, and the caller
   * writes what the view records (geotransform + EPSG code).
   */
  async geoTags(tile: {
    readonly contentHash: string;
    readonly width: number;
    readonly height: number;
  }): Promise<GeoTiffGeoTags | null> {
    const hash = tile.contentHash;
    // The path comes from the hash the view stores, checked to be hex; never from the URL.
    if (!/^[0-9a-f]{64}$/.test(hash)) return null;
    const key = `${hash}:${tile.width}x${tile.height}`;
    if (this.cache.has(key)) return this.cache.get(key) ?? null;
    let tags: GeoTiffGeoTags | null = null;
    try {
      const bytes = await this.archive.readObject(hash);
      // "keys": only the tags are wanted, so PROJ is not asked to resolve the CRS.
      const info = await readGeoTiffInfo(bytes, { crs: "keys" });
      if (info.width === tile.width && info.height === tile.height) tags = info.geoTags ?? null;
    } catch {
      // Not archived here, or not readable: fall back to the view's record, as before.
      tags = null;
    }
    if (this.cache.size >= CACHE_ENTRIES) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    this.cache.set(key, tags);
    return tags;
  }
}
