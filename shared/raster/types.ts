/** Pixel data types a tile may carry (GeoTIFF SampleFormat x BitsPerSample). */
export type DType = "uint8" | "int8" | "uint16" | "int16" | "uint32" | "int32" | "float32" | "float64";

/** One band's samples, row-major, `width * height` long. */
export type BandArray =
  Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array | Float32Array | Float64Array;

/**
 * Affine pixel -> CRS transform in GDAL order:
 * x = gt[0] + col * gt[1] + row * gt[2];  y = gt[3] + col * gt[4] + row * gt[5]
 * (col/row are pixel-corner coordinates; the centre of pixel (c, r) is (c + 0.5, r + 0.5)).
 */
export type GeoTransform = readonly [number, number, number, number, number, number];

/**
 * A coordinate reference system. `epsg` where PROJ identifies one; `proj4` when proj4js can run it.
 * A CRS resolved by the PROJ engine (shared/crs/proj.ts) carries PROJ's WKT2 too, and its `proj4` is
 * PROJ's own export, checked to reproduce PROJ's transform within 1 cm on the tile it came from.
 */
export interface Crs {
  readonly epsg: number | null;
  /** proj4 definition usable with the proj4 package, or null when it could not be derived. */
  readonly proj4: string | null;
  /** Human-readable name: PROJ's CRS name, or the file's citation. */
  readonly name: string | null;
  /** WKT2 (2019) as GDAL/PROJ print it, when the CRS was resolved by the PROJ engine. */
  readonly wkt?: string | null;
}

/**
 * A GeoTIFF's georeferencing tags exactly as stored (GeoTIFF 1.1 §7): the GeoKey directory (34735)
 * with its double (34736) and ASCII (34737) parameters, and the raster-to-model tags — pixel scale
 * (33550) and tie points (33922), or the model transformation (34264). Kept verbatim so that the CRS
 * can be handed to PROJ as the file says it, and copied unchanged into derived rasters.
 */
export interface GeoTiffGeoTags {
  readonly directory: readonly number[];
  readonly doubles: readonly number[] | null;
  readonly ascii: string | null;
  readonly pixelScale: readonly number[] | null;
  readonly tiepoints: readonly number[] | null;
  readonly transformation: readonly number[] | null;
}

export interface Bounds {
  readonly minX: number;
  readonly minY: number;
  readonly maxX: number;
  readonly maxY: number;
}

/** Everything about a raster except its pixels: what a header read can tell. */
export interface RasterInfo {
  readonly width: number;
  readonly height: number;
  readonly bandCount: number;
  readonly dtype: DType;
  /**
   * Per band, the nodata value as GDAL compares it: cast to the band's sample type (`nodataAsCompared`),
   * so `sample === nodata` finds exactly GDAL's nodata pixels; null = no nodata pixel (no value, or one
   * outside the type's range). NaN (float data) means NaN samples are nodata.
   */
  readonly nodata: readonly (number | null)[];
  /** Per band: physical value = stored * scale + offset. */
  readonly scale: readonly number[];
  readonly offset: readonly number[];
  readonly geoTransform: GeoTransform | null;
  readonly crs: Crs | null;
  /** Bounds in the native CRS (null without a geotransform). */
  readonly bounds: Bounds | null;
  /** Bounds in WGS84 lon/lat (null without a geotransform or a usable CRS). */
  readonly boundsWgs84: Bounds | null;
  /** Acquisition time from TIFF tags (DateTime / GDAL metadata ACQUISITIONDATETIME), ISO 8601, if any. */
  readonly acquired: string | null;
  /** Compression name as stored (e.g. "deflate", "lzw", "none"). */
  readonly compression: string;
  /** Tiled (true) or stripped (false) layout. */
  readonly tiled: boolean;
  /** The georeferencing tags as stored, when the file has a GeoKey directory. */
  readonly geoTags?: GeoTiffGeoTags | null;
}

/** A decoded raster: the header plus one typed array per band. */
export interface Raster extends RasterInfo {
  readonly bands: readonly BandArray[];
}
