/**
 * Training data -> labelled pixels -> samples -> a model.
 *
 * Labels come from GeoJSON polygons or points (in any CRS, reprojected into each tile's) or from a
 * label raster aligned with a tile. Samples are taken in the peer's order — tile by tile, then
 * feature by feature, then pixels in row-major order — because scikit-learn's kd-tree breaks
 * distance ties by sample index, and the comparison with the peer is pixel by pixel.
 */
import { TrainingDataError } from "../errors.js";
import { WGS84, crsFromEpsg, projectPoint, sameCrs } from "../crs/index.js";
import { featureDim, type FeatureMatrix, type FeatureSpec } from "../features/index.js";
// The block form (rows of a tile) is an internal of features/, not on its face.
import { computeFeatureRows } from "../features/compute.js";
import type { Crs, GeoTransform, Raster, RasterInfo } from "../raster/types.js";
import { defaultColours } from "./colours.js";
import { MAX_CLASSES } from "./engine.js";
import { MODEL_FORMAT, sealModel, type Model, type ModelClass, type ModelContent } from "./model.js";
import { assignClasses, type ClassCatalogue } from "../models/catalogue.js";
import { invertGeoTransform, pointPixel, polygonPixels, toPixel } from "./rasterize.js";
import { createRandom } from "../util/random.js";

/** One labelled geometry of a GeoJSON source, coordinates still in the source CRS. */
export interface LabelledGeometry {
  /** Position in the source's feature list (0-based), for messages. */
  readonly index: number;
  readonly name: string;
  readonly kind: "polygon" | "point";
  /** Polygon: every ring of every part (GDAL fills them together). Point: one [x, y] per point. */
  readonly parts: readonly (readonly (readonly [number, number])[])[];
}

/** Labels as GeoJSON polygons or points. */
export interface GeoJsonLabels {
  readonly kind: "geojson";
  /** Parsed GeoJSON: a FeatureCollection or a single Feature. */
  readonly geojson: unknown;
  /** Property holding the class name (default "class"). */
  readonly classProperty?: string;
  /**
   * CRS of coordinates when the GeoJSON has no legacy `crs` member; default WGS 84 lon/lat
   * (RFC 7946).
   */
  readonly crs?: Crs | null;
}

/** Labels as a raster aligned with a tile (same size and geotransform); 0 = unlabelled. */
export interface RasterLabels {
  readonly kind: "raster";
  readonly raster: Raster;
  /** Class name of each label value (keys are the values as strings); default: the value itself. */
  readonly names?: Readonly<Record<string, string>>;
}

/** Where training labels come from. */
export type TrainingLabels = GeoJsonLabels | RasterLabels;

/** Labelled pixels of one tile: pixel index and class name index, in sample order. */
export interface LabelledPixels {
  readonly pixels: Int32Array;
  /** Index into `names` per pixel. */
  readonly labels: Int32Array;
  readonly names: readonly string[];
  /** GeoJSON labels: the feature (0-based index in the source) of each pixel; absent for a label raster. */
  readonly features?: Int32Array;
}

/** Training samples: raw (unscaled) features and their class, in the order they were taken. */
export interface TrainingSamples {
  /** Point-major, `dim` values per sample. */
  readonly x: Float64Array;
  readonly dim: number;
  /** Class id per sample (1-based index into `classNames`). */
  readonly y: Int32Array;
  /** Sorted distinct class names: class id i is classNames[i - 1]. */
  readonly classNames: readonly string[];
  /** Tile index and pixel index of each sample. */
  readonly tile: Int32Array;
  readonly pixel: Int32Array;
  /**
   * The label feature each sample came from (GeoJSON feature index), so an accuracy assessment can
   * keep a feature's near-identical pixels on one side of a split; absent for a label raster.
   */
  readonly group?: Int32Array;
}

/**
 * Python's order for strings: by code point. JavaScript's `<` compares UTF-16 code units, which
 * disagrees for characters beyond the Basic Multilingual Plane (surrogate pairs).
 */
function compareCodePoints(a: string, b: string): number {
  const ia = [...a];
  const ib = [...b];
  for (let i = 0; i < Math.min(ia.length, ib.length); i++) {
    const ca = (ia[i] as string).codePointAt(0) as number;
    const cb = (ib[i] as string).codePointAt(0) as number;
    if (ca !== cb) return ca - cb;
  }
  return ia.length - ib.length;
}

/** Class names sorted as Python's sorted() sorts strings (the peer numbers classes that way). */
export function sortClassNames(names: Iterable<string>): string[] {
  return [...new Set(names)].sort(compareCodePoints);
}

const CRS_NAME = [
  /^urn:ogc:def:crs:EPSG:[^:]*:(\d+)$/i,
  /^EPSG:(\d+)$/i,
  /^https?:\/\/www\.opengis\.net\/def\/crs\/EPSG\/[^/]+\/(\d+)$/i,
];

/**
 * The CRS named by a GeoJSON legacy `crs` member, or null when there is none.
 * @throws TrainingDataError for a `crs` member lanemap cannot interpret.
 */
export function geoJsonCrs(geojson: unknown): Crs | null {
  if (geojson === null || typeof geojson !== "object" || !("crs" in geojson)) return null;
  const crs = (geojson as { crs: unknown }).crs;
  if (crs === null || crs === undefined) return null;
  const name =
    typeof crs === "object" && "properties" in crs
      ? ((crs as { properties?: { name?: unknown } }).properties?.name ?? null)
      : null;
  if (typeof name !== "string")
    throw new TrainingDataError('the GeoJSON "crs" member has no properties.name');
  if (/^(urn:ogc:def:crs:OGC:[^:]*:)?CRS84$/i.test(name) || /\/OGC\/[^/]+\/CRS84$/i.test(name)) return WGS84;
  for (const re of CRS_NAME) {
    const m = re.exec(name);
    if (m) {
      try {
        return crsFromEpsg(Number(m[1]));
      } catch (err) {
        throw new TrainingDataError(`the GeoJSON names CRS "${name}", which lanemap cannot use`, {
          cause: err,
        });
      }
    }
  }
  throw new TrainingDataError(`the GeoJSON names CRS "${name}"; expected an EPSG code or CRS84`);
}

function position(value: unknown, where: string): [number, number] {
  if (!Array.isArray(value) || value.length < 2)
    throw new TrainingDataError(`${where}: a position must be [x, y]`);
  const [x, y] = value as unknown[];
  if (typeof x !== "number" || typeof y !== "number" || !Number.isFinite(x) || !Number.isFinite(y))
    throw new TrainingDataError(`${where}: coordinates must be finite numbers`);
  return [x, y];
}

function rings(value: unknown, where: string): [number, number][][] {
  if (!Array.isArray(value))
    throw new TrainingDataError(`${where}: polygon coordinates must be an array of rings`);
  return value.map((ring, r) => {
    if (!Array.isArray(ring))
      throw new TrainingDataError(`${where}: ring ${r} must be an array of positions`);
    return ring.map((p) => position(p, where));
  });
}

/**
 * The labelled geometries of a GeoJSON FeatureCollection (or single Feature).
 * @throws TrainingDataError when there are no features, a feature has no class property, or a
 *   geometry is not a (Multi)Polygon or (Multi)Point.
 */
export function labelledGeometries(geojson: unknown, classProperty = "class"): LabelledGeometry[] {
  if (geojson === null || typeof geojson !== "object")
    throw new TrainingDataError("training data is not a GeoJSON object");
  const g = geojson as { type?: unknown; features?: unknown };
  const features: unknown[] =
    g.type === "FeatureCollection" && Array.isArray(g.features)
      ? g.features
      : g.type === "Feature"
        ? [g]
        : [];
  if (g.type !== "FeatureCollection" && g.type !== "Feature")
    throw new TrainingDataError(
      `training data must be a GeoJSON FeatureCollection or Feature, got type ${String(g.type)}`,
    );
  if (features.length === 0) throw new TrainingDataError("the GeoJSON has no features");
  return features.map((f, index): LabelledGeometry => {
    const where = `feature ${index + 1}`;
    if (f === null || typeof f !== "object") throw new TrainingDataError(`${where} is not a GeoJSON Feature`);
    const { properties, geometry } = f as { properties?: unknown; geometry?: unknown };
    const value =
      properties !== null && typeof properties === "object"
        ? (properties as Record<string, unknown>)[classProperty]
        : undefined;
    if (value === undefined || value === null)
      throw new TrainingDataError(`${where} has no "${classProperty}" property`);
    if (typeof value === "object")
      throw new TrainingDataError(`${where}: "${classProperty}" must be a string or a number`);
    // The peer takes str() of the property; for strings and integers JavaScript's String() agrees.
    const name = String(value);
    if (geometry === null || typeof geometry !== "object")
      throw new TrainingDataError(`${where} has no geometry`);
    const { type, coordinates } = geometry as { type?: unknown; coordinates?: unknown };
    switch (type) {
      case "Polygon":
        return { index, name, kind: "polygon", parts: rings(coordinates, where) };
      case "MultiPolygon":
        if (!Array.isArray(coordinates))
          throw new TrainingDataError(`${where}: MultiPolygon coordinates must be an array`);
        return { index, name, kind: "polygon", parts: coordinates.flatMap((poly) => rings(poly, where)) };
      case "Point":
        return { index, name, kind: "point", parts: [[position(coordinates, where)]] };
      case "MultiPoint":
        if (!Array.isArray(coordinates))
          throw new TrainingDataError(`${where}: MultiPoint coordinates must be an array`);
        return { index, name, kind: "point", parts: [coordinates.map((p) => position(p, where))] };
      default:
        throw new TrainingDataError(
          `${where} has a ${String(type)} geometry; training labels must be Polygon, MultiPolygon, Point or MultiPoint`,
        );
    }
  });
}

/** The geometry's parts in the tile's CRS. */
function toTileCrs(geom: LabelledGeometry, from: Crs, tile: RasterInfo): [number, number][][] {
  const to = tile.crs as Crs;
  // No transform at all for the same CRS, so coordinates reach the rasteriser bit for bit.
  if (sameCrs(from, to)) return geom.parts.map((part) => part.map(([x, y]) => [x, y]));
  return geom.parts.map((part) => part.map(([x, y]) => projectPoint(from, to, x, y)));
}

/** True when the parts' pixel-space bounding box overlaps the tile. */
function touchesTile(
  parts: readonly (readonly [number, number])[][],
  inv: GeoTransform,
  width: number,
  height: number,
): boolean {
  let minX = Infinity;
  let minY = Infinity;
  let maxX = -Infinity;
  let maxY = -Infinity;
  for (const part of parts)
    for (const [x, y] of part) {
      const [px, py] = toPixel(inv, x, y);
      minX = Math.min(minX, px);
      maxX = Math.max(maxX, px);
      minY = Math.min(minY, py);
      maxY = Math.max(maxY, py);
    }
  return maxX >= 0 && minX <= width && maxY >= 0 && minY <= height;
}

function tileName(i: number, names?: readonly string[]): string {
  return names?.[i] ?? `tile ${i + 1}`;
}

/** Labelled pixels per tile from GeoJSON, with what fell outside every tile. */
interface PlacedGeoJson {
  readonly labelled: LabelledPixels[];
  readonly geometries: readonly LabelledGeometry[];
  /** Geometries whose extent touches no tile, in source order. */
  readonly outside: readonly LabelledGeometry[];
  /** Points (of Point and MultiPoint features) that fall on no tile's pixel. */
  readonly pointsOutside: number;
  readonly points: number;
}

function placeGeoJson(
  tiles: readonly RasterInfo[],
  labels: GeoJsonLabels,
  tileNames?: readonly string[],
): PlacedGeoJson {
  const geoms = labelledGeometries(labels.geojson, labels.classProperty ?? "class");
  // A legacy crs member wins over the caller's CRS; but a loader that resolved the member with PROJ
  // (infra/cli/commands/train.ts `labelsCrs`) passes that record for the same code: use it.
  const member = geoJsonCrs(labels.geojson);
  const from =
    member !== null && labels.crs != null && labels.crs.epsg === member.epsg
      ? labels.crs
      : (member ?? labels.crs ?? WGS84);
  const names = sortClassNames(geoms.map((g) => g.name));
  const nameIndex = new Map(names.map((n, i) => [n, i]));
  const touched = new Uint8Array(geoms.length);
  // Per point feature, which of its points landed on some tile's pixel.
  const pointHit = new Map<number, Uint8Array>();
  for (const g of geoms)
    if (g.kind === "point") pointHit.set(g.index, new Uint8Array(g.parts[0]?.length ?? 0));
  const labelled = tiles.map((tile, t): LabelledPixels => {
    if (tile.geoTransform === null)
      throw new TrainingDataError(
        `${tileName(t, tileNames)} has no geotransform, so labelled geometries cannot be placed on it`,
      );
    if (tile.crs === null)
      throw new TrainingDataError(
        `${tileName(t, tileNames)} has no CRS, so labelled geometries cannot be placed on it`,
      );
    const inv = invertGeoTransform(tile.geoTransform);
    if (inv === null) throw new TrainingDataError(`${tileName(t, tileNames)} has a degenerate geotransform`);
    const pixels: number[] = [];
    const lab: number[] = [];
    const feat: number[] = [];
    const gt = tile.geoTransform;
    for (const g of geoms) {
      const parts = toTileCrs(g, from, tile);
      if (!touchesTile(parts, inv, tile.width, tile.height)) continue;
      touched[g.index] = 1;
      const label = nameIndex.get(g.name) as number;
      let found: ArrayLike<number>;
      if (g.kind === "polygon") found = polygonPixels(parts, gt, tile.width, tile.height);
      else {
        const hit = pointHit.get(g.index) as Uint8Array;
        const inTile: number[] = [];
        (parts[0] ?? []).forEach(([x, y], i) => {
          const p = pointPixel(x, y, gt, tile.width, tile.height);
          if (p < 0) return;
          hit[i] = 1;
          inTile.push(p);
        });
        found = inTile;
      }
      for (let i = 0; i < found.length; i++) {
        pixels.push(found[i] as number);
        lab.push(label);
        feat.push(g.index);
      }
    }
    return {
      pixels: Int32Array.from(pixels),
      labels: Int32Array.from(lab),
      names,
      features: Int32Array.from(feat),
    };
  });
  let points = 0;
  let pointsOutside = 0;
  for (const hit of pointHit.values()) {
    points += hit.length;
    for (const h of hit) if (h === 0) pointsOutside++;
  }
  const outside = geoms.filter((g) => touched[g.index] === 0);
  return { labelled, geometries: geoms, outside, pointsOutside, points };
}

function outsideMessage(placed: PlacedGeoJson, labels: GeoJsonLabels): string {
  const { outside, geometries } = placed;
  const first = outside[0] as LabelledGeometry;
  return (
    `${outside.length === geometries.length ? "every feature" : `${outside.length} of ${geometries.length} features`} ` +
    `(first: feature ${first.index + 1}, class "${first.name}") lie outside every tile` +
    (labels.crs === undefined && geoJsonCrs(labels.geojson) === null
      ? "; the GeoJSON has no crs member, so its coordinates were read as WGS 84 lon/lat"
      : "")
  );
}

/**
 * Labelled pixels of each tile from GeoJSON: for every feature in order, the pixels whose centres
 * it covers (polygons) or that contain it (points), row-major. Strict: every feature must touch a
 * tile (`collectSamples` is lenient by default and reports what it left out instead).
 * @throws TrainingDataError for unusable GeoJSON, a tile without CRS or geotransform, or a feature
 *   outside every tile.
 */
export function labelsFromGeoJson(
  tiles: readonly RasterInfo[],
  labels: GeoJsonLabels,
  tileNames?: readonly string[],
): LabelledPixels[] {
  const placed = placeGeoJson(tiles, labels, tileNames);
  if (placed.outside.length > 0) throw new TrainingDataError(outsideMessage(placed, labels));
  return placed.labelled;
}

const ALIGN_TOLERANCE = 1e-9;

function aligned(a: RasterInfo, b: RasterInfo): boolean {
  if (a.width !== b.width || a.height !== b.height) return false;
  if (a.geoTransform === null || b.geoTransform === null) return a.geoTransform === b.geoTransform;
  const gb = b.geoTransform;
  const scale = Math.max(Math.abs(a.geoTransform[1]), Math.abs(a.geoTransform[5]), 1e-12);
  // A relative tolerance: the same grid written by two tools may differ in the last digits.
  return a.geoTransform.every(
    (v, i) => Math.abs(v - (gb[i] as number)) <= ALIGN_TOLERANCE * Math.max(scale, Math.abs(v)),
  );
}

/**
 * Labelled pixels of each tile from a label raster: in every tile aligned with it (same size and
 * geotransform), the pixels whose label is not 0 (nor the label raster's nodata), row-major. Tiles
 * not aligned with it get no labels.
 * @throws TrainingDataError when the label raster is aligned with no tile, has several bands or
 *   non-integer labels.
 */
export function labelsFromRaster(tiles: readonly RasterInfo[], labels: RasterLabels): LabelledPixels[] {
  const lab = labels.raster;
  const band = lab.bands[0];
  if (band === undefined || lab.bands.length !== 1)
    throw new TrainingDataError(`a label raster must have exactly 1 band, this one has ${lab.bands.length}`);
  if (!tiles.some((t) => aligned(t, lab))) {
    const gt = lab.geoTransform ? `[${lab.geoTransform.join(", ")}]` : "none";
    const first = tiles[0];
    const firstGt = first?.geoTransform ? `[${first.geoTransform.join(", ")}]` : "none";
    throw new TrainingDataError(
      `the label raster (${lab.width}x${lab.height}, geotransform ${gt}) is not aligned with ` +
        (tiles.length === 1
          ? `the tile (${first?.width}x${first?.height}, geotransform ${firstGt})`
          : `any of the ${tiles.length} tiles`),
    );
  }
  const nodata = lab.nodata[0] ?? null;
  const values = new Set<number>();
  for (let p = 0; p < band.length; p++) {
    const v = band[p] as number;
    if (v === 0 || v === nodata || v !== v) continue;
    if (!Number.isInteger(v))
      throw new TrainingDataError(`label raster pixel ${p} holds ${v}; labels must be integers`);
    values.add(v);
  }
  if (values.size === 0)
    throw new TrainingDataError("the label raster has no labelled pixels (all 0 or nodata)");
  const nameOf = (v: number): string => labels.names?.[String(v)] ?? String(v);
  const names = sortClassNames([...values].map(nameOf));
  const index = new Map(names.map((n, i) => [n, i]));
  const labelOf = new Map([...values].map((v) => [v, index.get(nameOf(v)) as number]));
  return tiles.map((tile): LabelledPixels => {
    if (!aligned(tile, lab)) return { pixels: new Int32Array(0), labels: new Int32Array(0), names };
    const pixels: number[] = [];
    const ls: number[] = [];
    for (let p = 0; p < band.length; p++) {
      const l = labelOf.get(band[p] as number);
      if (l !== undefined) {
        pixels.push(p);
        ls.push(l);
      }
    }
    return { pixels: Int32Array.from(pixels), labels: Int32Array.from(ls), names };
  });
}

/**
 * What of the training labels could be used: the counts `lanemap train` reports. A field campaign's
 * point set always has some points beyond the scenes and some under clouds; training keeps the rest.
 */
export interface LabelCoverage {
  /** GeoJSON features read (0 for a label raster). */
  readonly features: number;
  /** Features whose geometry touches no tile. */
  readonly featuresOutside: number;
  /** Points of Point/MultiPoint features, and those that fall on no tile's pixel. */
  readonly points: number;
  readonly pointsOutside: number;
  /** Labelled pixels found on the tiles, and those left out because a band is nodata (or NaN) there. */
  readonly labelledPixels: number;
  readonly onNodata: number;
  /**
   * Present when the spec declares a quality band: the labelled pixels left out because that band
   * masks them (cloud, shadow, ...); they are not counted in `onNodata`.
   */
  readonly maskedByQuality?: number;
  /** Classes left with no sample (every geometry outside, between pixel centres or on nodata). */
  readonly classesWithoutSamples: readonly string[];
  /**
   * GeoJSON labels that lost pixels to nodata (scene edges) or, with a quality band, to its mask
   * (clouds): feature (0-based), class, its labelled pixels, those on nodata and (with a quality
   * band) those masked, in feature order. Absent for a label raster.
   */
  readonly lostToNodata?: readonly {
    readonly feature: number;
    readonly name: string;
    readonly labelled: number;
    readonly onNodata: number;
    readonly maskedByQuality?: number;
  }[];
}

/** Training samples with the coverage report of the labels they came from. */
export interface CollectedSamples extends TrainingSamples {
  readonly coverage: LabelCoverage;
}

/** Descriptors of the rows that hold labelled pixels, looked up by pixel index. */
interface LabelledRows {
  /** The block holding pixel `p`'s row, and `p`'s row-major index within it. */
  at(p: number): { f: FeatureMatrix; local: number };
}

/**
 * Descriptors of the runs of consecutive rows of `raster` that hold a labelled pixel, one
 * `computeFeatureRows` block per run: labels usually cover a small part of a tile, and a block gives
 * exactly the rows a whole-tile computation gives (window extras read the rows around it), so the
 * samples are the same doubles at a fraction of the work.
 */
function labelledRows(raster: Raster, spec: FeatureSpec, pixels: Int32Array): LabelledRows {
  const { width, height } = raster;
  const labelledRow = new Uint8Array(height);
  for (let i = 0; i < pixels.length; i++) labelledRow[Math.floor((pixels[i] as number) / width)] = 1;
  const blockOfRow = new Int32Array(height).fill(-1);
  const blocks: { start: number; f: FeatureMatrix }[] = [];
  for (let r = 0; r < height;) {
    if (labelledRow[r] !== 1) {
      r++;
      continue;
    }
    let end = r;
    while (end < height && labelledRow[end] === 1) blockOfRow[end++] = blocks.length;
    blocks.push({ start: r, f: computeFeatureRows(raster, spec, r, end) });
    r = end;
  }
  return {
    at(p) {
      const block = blocks[blockOfRow[Math.floor(p / width)] as number] as (typeof blocks)[number];
      return { f: block.f, local: p - block.start * width };
    },
  };
}

/** Options of `collectSamples`. */
export interface CollectOptions {
  /**
   * Refuse the whole label set when any feature lies outside every tile or any class ends without a
   * sample (the behaviour before lenient training). Default false: use what falls inside and report
   * the rest in `coverage`.
   */
  readonly strict?: boolean;
}

/**
 * Training samples: the features of every labelled, valid pixel of every tile, in order. Leniently
 * (the default, like the peer) features outside every tile and labelled pixels on nodata are left out
 * and counted, and classes left without a sample are dropped (the others renumbered by sorted name).
 * @throws TrainingDataError when no usable sample remains, or — strict — when any feature lies outside
 *   every tile or a class has no valid sample.
 * @throws TileInvalidError when a tile does not fit the feature spec.
 */
export function collectSamples(
  tiles: readonly Raster[],
  labels: TrainingLabels,
  spec: FeatureSpec,
  tileNames?: readonly string[],
  options: CollectOptions = {},
): CollectedSamples {
  const strict = options.strict ?? false;
  const placed = labels.kind === "geojson" ? placeGeoJson(tiles, labels, tileNames) : null;
  if (strict && placed !== null && placed.outside.length > 0)
    throw new TrainingDataError(outsideMessage(placed, labels as GeoJsonLabels));
  const labelled = placed !== null ? placed.labelled : labelsFromRaster(tiles, labels as RasterLabels);
  const allNames = labelled[0]?.names ?? [];
  if (allNames.length > MAX_CLASSES)
    throw new TrainingDataError(`there are ${allNames.length} classes; a model holds at most ${MAX_CLASSES}`);
  const dim = featureDim(spec);
  const x: number[] = [];
  const y: number[] = [];
  const tileOf: number[] = [];
  const pixelOf: number[] = [];
  const groupOf: number[] = [];
  let labelledPixels = 0;
  let onNodata = 0;
  let maskedByQuality = 0;
  // Per GeoJSON feature: labelled pixels, those on nodata and those masked by the quality band.
  const featLabelled = new Map<number, number>();
  const featNodata = new Map<number, number>();
  const featMasked = new Map<number, number>();
  tiles.forEach((raster, t) => {
    const lp = labelled[t] as LabelledPixels;
    if (lp.pixels.length === 0) return;
    const rows = labelledRows(raster, spec, lp.pixels);
    labelledPixels += lp.pixels.length;
    for (let i = 0; i < lp.pixels.length; i++) {
      const p = lp.pixels[i] as number;
      const feature = lp.features?.[i];
      if (feature !== undefined) featLabelled.set(feature, (featLabelled.get(feature) ?? 0) + 1);
      const { f, local } = rows.at(p);
      if (f.valid[local] !== 1) {
        // Told apart for the report as computeFeatureRows decides them: nodata first, then the mask.
        const masked = spec.quality !== undefined && !nodataAt(raster, spec.quality.band - 1, p);
        if (masked) maskedByQuality++;
        else onNodata++;
        const lost = masked ? featMasked : featNodata;
        if (feature !== undefined) lost.set(feature, (lost.get(feature) ?? 0) + 1);
        continue;
      }
      for (let j = 0; j < dim; j++) x.push((f.data[local * dim + j] as number) + 0); // + 0 turns -0 into 0
      y.push((lp.labels[i] as number) + 1);
      tileOf.push(t);
      pixelOf.push(p);
      if (lp.features !== undefined) groupOf.push(lp.features[i] as number);
    }
  });
  const counts = new Array<number>(allNames.length).fill(0);
  for (const c of y) counts[c - 1] = (counts[c - 1] as number) + 1;
  const empty = allNames.filter((_, i) => counts[i] === 0);
  const coverage: LabelCoverage = {
    features: placed?.geometries.length ?? 0,
    featuresOutside: placed?.outside.length ?? 0,
    points: placed?.points ?? 0,
    pointsOutside: placed?.pointsOutside ?? 0,
    labelledPixels,
    onNodata,
    ...(spec.quality !== undefined ? { maskedByQuality } : {}),
    classesWithoutSamples: empty,
    ...(placed !== null
      ? {
          lostToNodata: [...new Set([...featNodata.keys(), ...featMasked.keys()])]
            .sort((a, b) => a - b)
            .map((feature) => ({
              feature,
              name: (placed.geometries[feature] as LabelledGeometry).name,
              labelled: featLabelled.get(feature) ?? 0,
              onNodata: featNodata.get(feature) ?? 0,
              ...(spec.quality !== undefined ? { maskedByQuality: featMasked.get(feature) ?? 0 } : {}),
            })),
        }
      : {}),
  };
  if (y.length === 0)
    throw new TrainingDataError(
      "no valid labelled pixel: every labelled pixel is nodata or outside the tiles" +
        (placed !== null
          ? ` (${coverage.featuresOutside} of ${coverage.features} features outside every tile, ` +
            `${onNodata} labelled pixel${onNodata === 1 ? "" : "s"} on nodata` +
            (spec.quality !== undefined ? `, ${maskedByQuality} masked by the quality band)` : ")")
          : ""),
    );
  if (strict && empty.length > 0)
    throw new TrainingDataError(
      `class${empty.length > 1 ? "es" : ""} ${empty.map((n) => `"${n}"`).join(", ")} ha${empty.length > 1 ? "ve" : "s"} no valid samples ` +
        "(its geometries cover no pixel centre, or only nodata pixels)",
    );
  // Classes without samples are dropped and the rest renumbered, as the peer numbers only the
  // classes it saw.
  const names = allNames.filter((_, i) => counts[i] !== 0);
  const renumber = new Int32Array(allNames.length + 1);
  allNames.forEach((n, i) => (renumber[i + 1] = names.indexOf(n) + 1));
  return {
    x: Float64Array.from(x),
    dim,
    y: Int32Array.from(y, (c) => renumber[c] as number),
    classNames: names,
    tile: Int32Array.from(tileOf),
    pixel: Int32Array.from(pixelOf),
    ...(placed !== null ? { group: Int32Array.from(groupOf) } : {}),
    coverage,
  };
}

/**
 * True when pixel `p` is nodata in a band other than `skip` (the quality band): NaN, or its nodata
 * value, as computeFeatures (shared/features/compute.ts `scaleBand`) decides it.
 */
function nodataAt(raster: Raster, skip: number, p: number): boolean {
  for (let b = 0; b < raster.bands.length; b++) {
    if (b === skip) continue;
    const x = (raster.bands[b] as Raster["bands"][number])[p] as number;
    const nd = raster.nodata[b] ?? null;
    if (x !== x || (nd !== null && !Number.isNaN(nd) && x === nd)) return true;
  }
  return false;
}

/** Default cap of samples drawn from one label feature (see `balanceSamples`). */
export const DEFAULT_MAX_SAMPLES_PER_FEATURE = 2000;
/** Share of all samples above which one class or one label feature is reported as dominating. */
export const DOMINANCE_SHARE = 0.5;

/** Samples after `balanceSamples`, with what was capped and what still dominates. */
export interface BalancedSamples<S extends TrainingSamples> {
  readonly samples: S;
  /** Samples left out by the cap, and the features capped. */
  readonly dropped: number;
  readonly featuresCapped: number;
  /** One line each: a feature capped, a class or feature above `DOMINANCE_SHARE` of the samples. */
  readonly warnings: readonly string[];
}

/**
 * Caps the samples of each label feature at `maxPerFeature` by a seeded random subsample (a
 * partial Fisher–Yates shuffle of the feature's samples from `createRandom(seed)`, features in
 * ascending id), keeping the kept samples in their original order — one large drawn polygon
 * otherwise outvotes every other feature of the k-NN (issue 12: one polygon gave 11k of 15.6k
 * samples and kappa fell from 0.865 to 0.491). Then warns when one class or one feature still
 * holds more than half the samples. Samples without groups (a label raster) are only checked by
 * class. Pure and deterministic for a seed.
 * @throws RangeError when maxPerFeature is not a positive integer.
 */
export function balanceSamples<S extends TrainingSamples>(
  samples: S,
  options: { readonly maxPerFeature?: number; readonly seed?: number | string } = {},
): BalancedSamples<S> {
  const cap = options.maxPerFeature ?? DEFAULT_MAX_SAMPLES_PER_FEATURE;
  if (!Number.isInteger(cap) || cap < 1)
    throw new RangeError(`the samples per feature cap must be a positive integer, got ${cap}`);
  const warnings: string[] = [];
  const group = samples.group;
  let kept: S = samples;
  let dropped = 0;
  let featuresCapped = 0;
  if (group !== undefined) {
    const members = new Map<number, number[]>();
    for (let i = 0; i < group.length; i++) {
      const g = group[i] as number;
      let m = members.get(g);
      if (m === undefined) members.set(g, (m = []));
      m.push(i);
    }
    const rng = createRandom(options.seed ?? 1);
    const keep = new Uint8Array(group.length).fill(1);
    for (const g of [...members.keys()].sort((a, b) => a - b)) {
      const m = members.get(g) as number[];
      if (m.length <= cap) continue;
      // Partial Fisher–Yates: the first `cap` positions are a uniform sample without replacement.
      for (let i = 0; i < cap; i++) {
        const j = i + rng.int(m.length - i);
        [m[i], m[j]] = [m[j] as number, m[i] as number];
      }
      for (let i = cap; i < m.length; i++) keep[m[i] as number] = 0;
      const cls = samples.classNames[(samples.y[m[0] as number] as number) - 1];
      warnings.push(
        `feature ${g + 1} (class "${cls}") gave ${m.length} samples; a random ${cap} of them are used (max samples per feature)`,
      );
      dropped += m.length - cap;
      featuresCapped++;
    }
    if (dropped > 0) {
      const indices: number[] = [];
      for (let i = 0; i < keep.length; i++) if (keep[i] === 1) indices.push(i);
      kept = { ...samples, ...subsetSamples(samples, indices) };
    }
  }
  const n = kept.y.length;
  const perClass = new Array<number>(kept.classNames.length).fill(0);
  for (const c of kept.y) perClass[c - 1] = (perClass[c - 1] as number) + 1;
  perClass.forEach((count, i) => {
    if (perClass.length > 1 && count > DOMINANCE_SHARE * n)
      warnings.push(
        `class "${kept.classNames[i]}" holds ${count} of ${n} samples (${Math.round((100 * count) / n)} %); ` +
          "the k-NN favours it: label more of the other classes or lower the max samples per feature",
      );
  });
  if (kept.group !== undefined) {
    const perFeature = new Map<number, number>();
    for (const g of kept.group) perFeature.set(g, (perFeature.get(g) ?? 0) + 1);
    if (perFeature.size > 1)
      for (const [g, count] of [...perFeature].sort((a, b) => a[0] - b[0]))
        if (count > DOMINANCE_SHARE * n)
          warnings.push(
            `feature ${g + 1} holds ${count} of ${n} samples (${Math.round((100 * count) / n)} %): one drawn geometry dominates the model`,
          );
  }
  return { samples: kept, dropped, featuresCapped, warnings };
}

/** The samples at `indices` (in that order), keeping all class names. */
export function subsetSamples(samples: TrainingSamples, indices: ArrayLike<number>): TrainingSamples {
  const { dim } = samples;
  const n = indices.length;
  const x = new Float64Array(n * dim);
  const y = new Int32Array(n);
  const tile = new Int32Array(n);
  const pixel = new Int32Array(n);
  const from = samples.group;
  const group = from === undefined ? undefined : new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const s = indices[i] as number;
    x.set(samples.x.subarray(s * dim, (s + 1) * dim), i * dim);
    y[i] = samples.y[s] as number;
    tile[i] = samples.tile[s] as number;
    pixel[i] = samples.pixel[s] as number;
    if (group !== undefined) group[i] = (from as Int32Array)[s] as number;
  }
  return { x, dim, y, classNames: samples.classNames, tile, pixel, ...(group ? { group } : {}) };
}

/**
 * Mean and population std of each feature, summed in sample order as numpy does for
 * `x.mean(axis=0)` / `x.std(axis=0)` on a C-ordered array (so the scaled features, and hence the
 * neighbours, are the peer's); a std of 0 becomes 1.
 */
export function scalingOf(x: Float64Array, dim: number): { mean: number[]; std: number[] } {
  const n = x.length / dim;
  const sum = new Float64Array(dim);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < dim; j++) sum[j] = (sum[j] as number) + (x[i * dim + j] as number);
  const mean = Array.from(sum, (s) => s / n);
  const ss = new Float64Array(dim);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < dim; j++) {
      const d = (x[i * dim + j] as number) - (mean[j] as number);
      ss[j] = (ss[j] as number) + d * d;
    }
  const std = Array.from(ss, (s) => Math.sqrt(s / n) || 1);
  return { mean, std };
}

/** Options of `modelFromSamples` / `trainModel`. */
export interface TrainOptions {
  readonly features: FeatureSpec;
  /** Neighbours (default 5). */
  readonly k?: number;
  /** Where the labels came from, recorded in the model. */
  readonly source: string;
  /** Creation time recorded in the model (default now). */
  readonly createdAt?: Date | string;
  /** Colours by class name, overriding the defaults (for names the catalogue does not have yet). */
  readonly colours?: Readonly<Record<string, string>>;
  /**
   * The data directory's class catalogue: catalogued names keep their ids and colours, new names get
   * new ids (see shared/models/catalogue.ts). Without it, ids are the sorted names from 1.
   */
  readonly catalogue?: ClassCatalogue;
}

/**
 * A model from samples. Classes that have no sample in `samples` (e.g. a training subset) are
 * dropped and the rest renumbered by sorted name.
 * @throws TrainingDataError when there are fewer samples than k, or no samples at all.
 */
export function modelFromSamples(samples: TrainingSamples, options: TrainOptions): Model {
  const k = options.k ?? 5;
  if (!Number.isInteger(k) || k < 1) throw new TrainingDataError(`k must be a positive integer, got ${k}`);
  const n = samples.y.length;
  if (n === 0) throw new TrainingDataError("there are no training samples");
  if (k > n) throw new TrainingDataError(`k = ${k} needs at least ${k} training samples, there are ${n}`);
  if (samples.dim !== featureDim(options.features))
    throw new TrainingDataError(
      `samples have ${samples.dim} features, the spec makes ${featureDim(options.features)}`,
    );
  const present = new Set<number>();
  for (const c of samples.y) present.add(c);
  const kept = samples.classNames.filter((_, i) => present.has(i + 1));
  const newId = new Map<number, number>();
  samples.classNames.forEach((name, i) => {
    const j = kept.indexOf(name);
    if (j >= 0) newId.set(i + 1, j + 1);
  });
  const classes: ModelClass[] =
    options.catalogue === undefined
      ? kept.map((name, i) => ({
          id: i + 1,
          name,
          colour: options.colours?.[name] ?? (defaultColours(kept)[i] as string),
        }))
      : assignClasses(options.catalogue, kept, options.colours);
  const idOf = new Map(classes.map((c) => [c.name, c.id]));
  // Sample class -> its name (kept order) -> the model's id for that name.
  const y = Array.from(samples.y, (c) => idOf.get(kept[(newId.get(c) as number) - 1] as string) as number);
  const samplesPerClass: Record<string, number> = {};
  for (const name of kept) samplesPerClass[name] = 0;
  for (const c of samples.y) {
    const name = kept[(newId.get(c) as number) - 1] as string;
    samplesPerClass[name] = (samplesPerClass[name] as number) + 1;
  }
  const content: ModelContent = {
    format: MODEL_FORMAT,
    classes,
    features: options.features,
    scaling: scalingOf(samples.x, samples.dim),
    k,
    samples: { x: Array.from(samples.x), y },
    training: { source: options.source, samplesPerClass },
  };
  return sealModel(content, options.createdAt);
}

/**
 * Trains a model from tiles and labels: collects the samples (see `collectSamples`) and seals them
 * with their scaling into a model.
 * @throws TrainingDataError when a class has no valid sample, nothing is labelled, or there are fewer samples than k.
 * @throws TileInvalidError when a tile does not fit the feature spec.
 */
export function trainModel(
  tiles: readonly Raster[],
  labels: TrainingLabels,
  options: TrainOptions & CollectOptions & { readonly tileNames?: readonly string[] },
): Model {
  return modelFromSamples(
    collectSamples(tiles, labels, options.features, options.tileNames, options),
    options,
  );
}
