/**
 * Source imagery: a tile's archived source GeoTIFF rendered as a true- or false-colour PNG, so an
 * analyst can check a class against the scene under the class overlay.
 *
 * The render parameters follow titiler / rio-tiler's vocabulary: `bidx` (1-based band indexes, one
 * for grey or three for red, green, blue), `rescale` ("min,max" in stored values, once for every
 * band or once per band); without `rescale` each band is stretched between its own `percentiles`
 * (default 2,98: QGIS's "cumulative count cut"), see render/stretch.ts. `preset` names the usual
 * band combinations. When the model that classified the tile names its red and near-infrared bands
 * (its feature spec, usecases/model-bands.ts) they come from there: false colour (colour infrared)
 * is NIR, red, green and true colour red, green, blue, with green the spec's or the band below red
 * and blue the band below green (visible bands stacked in wavelength order, as Landsat 4-9 and
 * Sentinel-2 stacks are). Otherwise tiles of 4+ bands are taken in Landsat TM/ETM+ order (bands 1-4
 * blue, green, red, NIR, as the sample archive too): `true-colour` = 3,2,1, `false-colour` = 4,3,2;
 * a tile of three bands is read as red, green, blue and one of one or two bands as grey. The
 * catalogue records no band names, so a tile in another order without a model spec needs `bidx`.
 *
 * Decoding goes through the house decoder: a DecoderPool of one worker with the tile's deadline
 * (shared/pipeline/deadline.ts, scaled to its size) and the pixel budget (a hostile or huge archived object costs at most that and never blocks the event
 * loop), then the catalogue entry's PAM values (the `.aux.xml` nodata the archived TIFF does not
 * hold) are applied, so the transparent pixels are exactly the ones GDAL masks. Decoded rasters and
 * rendered PNGs are kept in byte-bounded LRU caches keyed by content hash (archive objects never
 * change); concurrent requests for one image share one decode and one render.
 *
 * A cell's per-pixel composite (issue 13) draws, per pixel, the acquisition its class composite took
 * that pixel from (`renderComposite`): each contributing source is decoded through the same bounded
 * path and cache, its bands resolved as for the tile alone, and the percentile stretch is taken over
 * the composite's pixels, so the imagery under a class is the scene that class came from.
 */
import type { TileArchive } from "../../shared/index.js";
import {
  DecoderPool,
  LanemapError,
  applyPam,
  errorCode,
  sameLayerGrid,
  samplingIndex,
  tileDeadline,
  type BandArray,
  type Raster,
  type TileDeadlineRule,
} from "../../shared/index.js";
import { encode as encodePng } from "fast-png";
import { InvalidParamsError, NotFoundError, ProblemError } from "../errors.js";
import { LruCache } from "../view/lru-cache.js";
import type { SpectralBands } from "./model-bands.js";
import type { ComposedCell, ServedResult } from "../view/served-result.js";
import { gridOf } from "../view/pixel-composite.js";
import { bandPercentiles, stretchToRgba, type StretchBand, type StretchRange } from "../render/stretch.js";

/** The named band combinations. */
export const SOURCE_PRESETS = ["true-colour", "false-colour"] as const;
export type SourcePreset = (typeof SOURCE_PRESETS)[number];

/** How to render a source tile (parsed query parameters; band indexes are 1-based). */
export interface SourceRenderRequest {
  readonly bidx: readonly number[] | null;
  readonly preset: SourcePreset | null;
  /** One range for every band, or one per band; null: percentile stretch. */
  readonly rescale: readonly StretchRange[] | null;
  readonly percentiles: readonly [number, number];
}

/** A rendered source image and what was drawn. */
export interface SourceImage {
  readonly png: Uint8Array;
  /** The 1-based bands drawn as red, green, blue (or the one grey band). */
  readonly bands: readonly number[];
  /** Where the bands came from: the request's `bidx`, the model's feature spec, or Landsat order. */
  readonly bandsFrom: BandsFrom;
  /** Each drawn band's stretch limits in stored values (null: the band has no valid pixel). */
  readonly ranges: readonly (StretchRange | null)[];
}

/**
 * Source decodes waiting or running at once; past it a request for an image not cached is a 503
 * (`render-busy`, Retry-After: 1) rather than one more archived object read into memory and queued.
 */
export const MAX_PENDING_DECODES = 8;

/** Byte budgets of the caches: a few dozen decoded tiles of the sample's size, many PNGs. */
const RASTER_CACHE_BYTES = 128 * 1024 * 1024;
const PNG_CACHE_BYTES = 32 * 1024 * 1024;

/** Where a source image's bands came from. */
export type BandsFrom = "bidx" | "feature-spec" | "landsat-order";

/** A preset's bands from a model's spectral bands, or null when they do not fit the tile. */
function presetFromSpec(preset: SourcePreset, s: SpectralBands, bandCount: number): number[] | null {
  const green = s.green ?? s.red - 1;
  const bands = preset === "false-colour" ? [s.nir, s.red, green] : [s.red, green, green - 1];
  return bands.every((b) => b >= 1 && b <= bandCount) ? bands : null;
}

/**
 * The bands a request draws, checked against the tile's band count: `bidx`, else the preset from the
 * model's spectral bands (`spectral`, when known and fitting the tile), else Landsat order.
 * @throws InvalidParamsError naming `bidx` or `preset`.
 */
export function resolveSourceBands(
  req: SourceRenderRequest,
  bandCount: number,
  spectral: SpectralBands | null = null,
): { bands: number[]; from: BandsFrom } {
  if (req.bidx) {
    const over = req.bidx.find((b) => b > bandCount);
    if (over !== undefined)
      throw new InvalidParamsError([
        { name: "bidx", reason: `band ${over} does not exist: the tile has ${bandCount} band(s)` },
      ]);
    return { bands: [...req.bidx], from: "bidx" };
  }
  const preset = req.preset ?? "true-colour";
  const fromSpec = spectral ? presetFromSpec(preset, spectral, bandCount) : null;
  if (fromSpec) return { bands: fromSpec, from: "feature-spec" };
  const landsat = (bands: number[]) => ({ bands, from: "landsat-order" as const });
  if (bandCount >= 4) return landsat(preset === "true-colour" ? [3, 2, 1] : [4, 3, 2]);
  if (preset === "false-colour")
    throw new InvalidParamsError([
      {
        name: "preset",
        reason: `false-colour needs a near-infrared band 4 (Landsat order); the tile has ${bandCount} band(s): name the bands with bidx`,
      },
    ]);
  return landsat(bandCount === 3 ? [1, 2, 3] : [1]);
}

/** Decodes, caches and renders archived source tiles (one per server; close it with the server). */
export class SourceImagery {
  private pool: DecoderPool | null = null;
  private pendingDecodes = 0;
  private readonly rasters = new LruCache<Raster>(RASTER_CACHE_BYTES, (r) =>
    r.bands.reduce((n, b) => n + b.byteLength, 0),
  );
  private readonly images = new LruCache<SourceImage>(PNG_CACHE_BYTES, (i) => i.png.byteLength);

  constructor(
    private readonly archive: TileArchive,
    /** The pixel budget and the tile deadline rule of each decode (a Config has both). */
    private readonly options: { readonly maxPixels: number; readonly deadline: TileDeadlineRule },
  ) {}

  /**
   * The tile's source rendered as `req` asks.
   * @throws NotFoundError `source-not-archived` when the tile's source object is not in the archive.
   * @throws InvalidParamsError naming `bidx`, `preset` or `rescale` when they do not fit the tile.
   * @throws TileDecodeError or PixelBudgetError (422) when the archived object cannot be decoded.
   * @throws ProblemError `render-busy` (503) when MAX_PENDING_DECODES decodes are already under way.
   */
  async render(
    tile: ServedResult,
    req: SourceRenderRequest,
    spectral: SpectralBands | null = null,
  ): Promise<SourceImage> {
    const raster = await this.raster(tile);
    const { bands, from } = resolveSourceBands(req, raster.bandCount, spectral);
    if (req.rescale && req.rescale.length !== 1 && req.rescale.length !== bands.length)
      throw new InvalidParamsError([
        {
          name: "rescale",
          reason: `give one "min,max" for every band or one per band (${bands.length}), not ${req.rescale.length}`,
        },
      ]);
    const how = req.rescale
      ? `r${req.rescale.map((r) => `${r.min},${r.max}`).join(";")}`
      : `p${req.percentiles.join(",")}`;
    const key = `${tile.summary.contentHash}|${tile.tileId}|${bands.join(",")}|${how}`;
    return this.images.getOrLoad(key, async () => renderSource(raster, bands, from, req));
  }

  /**
   * A cell's composite drawn from its sources: pixel i from `composed.sources[composed.source[i]]`'s
   * scene (transparent where no source is valid), bands resolved per source as `render` resolves
   * them (the headers' bands are the newest contributing source's), the percentile stretch over the
   * composite's pixels. `spectralOf` gives a source's model bands (null: Landsat order).
   * A source on another pixel grid than the composite's is read at each composite pixel's centre by
   * nearest neighbour, through the sampling index its classes were composited with
   * (shared/view/resample.ts `samplingIndex`), so each pixel shows the scene value its class came from.
   * @throws as `render` does, for any contributing source; InvalidParamsError naming `bidx` when the
   * sources draw different numbers of bands; LanemapError RASTER (500) when an archived scene is not
   * the size of its own classes.
   */
  async renderComposite(
    composed: ComposedCell,
    req: SourceRenderRequest,
    spectralOf: (r: ServedResult) => Promise<SpectralBands | null>,
  ): Promise<SourceImage & { readonly sources: readonly ServedResult[] }> {
    const used = composed.sources.flatMap((_, i) => ((composed.contributions[i] ?? 0) > 0 ? [i] : []));
    const width = composed.raster.width;
    const height = composed.raster.height;
    const how = req.rescale
      ? `r${req.rescale.map((r) => `${r.min},${r.max}`).join(";")}`
      : `p${req.percentiles.join(",")}`;
    const what = req.bidx ? `b${req.bidx.join(",")}` : `s${req.preset ?? "true-colour"}`;
    // The sources (in order) fix the per-pixel choice: the same list composes the same cell.
    const key = `composite|${composed.sources.map((r) => `${r.tileId}@${r.summary.contentHash}`).join(";")}|${what}|${how}`;
    const image = await this.images.getOrLoad(key, async () => {
      const layers = await Promise.all(
        used.map(async (i) => {
          const r = composed.sources[i] as ServedResult;
          const raster = await this.raster(r);
          const own = gridOf(r);
          // The archived scene is the grid its classes were computed on; anything else is a
          // server-side inconsistency (500), never the client's parameter.
          if (raster.width !== own.width || raster.height !== own.height)
            throw new LanemapError(
              "RASTER",
              `the archived scene of tile ${r.tileId} is ${raster.width}x${raster.height}, its classes ${own.width}x${own.height}`,
            );
          // A scene on another grid than the composite's is read where the classes were: at each
          // composite pixel's centre, by nearest neighbour (the classes' own sampling index).
          const at = sameLayerGrid(own, composed.grid) ? null : samplingIndex(composed.grid, own);
          const spectral = req.bidx ? null : await spectralOf(r);
          return { index: i, raster, at, ...resolveSourceBands(req, raster.bandCount, spectral) };
        }),
      );
      const first = layers[0];
      if (!first) {
        const empty = new Uint8Array(width * height * 4);
        return {
          png: encodePng({ width, height, data: empty, depth: 8, channels: 4 }),
          bands: [],
          bandsFrom: "landsat-order" as const,
          ranges: [],
        };
      }
      const drawnBands = first.bands.length;
      const mismatched = layers.find((l) => l.bands.length !== drawnBands);
      if (mismatched)
        throw new InvalidParamsError([
          {
            name: "bidx",
            reason: `the cell's sources draw ${drawnBands} and ${mismatched.bands.length} band(s): name the bands with bidx`,
          },
        ]);
      const byIndex = new Map(layers.map((l) => [l.index, l]));
      // The composite's samples per drawn band; NaN (never valid, see stretch.ts) where no source is
      // valid or the source's own sample is nodata. Float32 holds 8- and 16-bit scenes exactly.
      const n = width * height;
      const bands: Float32Array[] = Array.from({ length: drawnBands }, () => new Float32Array(n).fill(NaN));
      for (let i = 0; i < n; i++) {
        const l = byIndex.get(composed.source[i] as number);
        if (!l) continue;
        const j = l.at ? (l.at[i] as number) : i;
        if (j < 0) continue;
        for (let b = 0; b < drawnBands; b++) {
          const band = (l.bands[b] as number) - 1;
          const v = (l.raster.bands[band] as BandArray)[j] as number;
          const nodata = l.raster.nodata[band] ?? null;
          if (v !== nodata) (bands[b] as Float32Array)[i] = v;
        }
      }
      const composite: Raster = {
        ...first.raster,
        // The composite's own grid: it may be an older scene's (the one covering the cell), not this one's.
        width,
        height,
        bands,
        nodata: bands.map(() => null),
        bandCount: drawnBands,
      };
      return renderSource(
        composite,
        bands.map((_, b) => b + 1),
        first.from,
        req,
        first.bands,
      );
    });
    return { ...image, sources: used.map((i) => composed.sources[i] as ServedResult) };
  }

  /** Ends the decoder worker (pending decodes reject). */
  async close(): Promise<void> {
    await this.pool?.close();
    this.pool = null;
  }

  private raster(tile: ServedResult): Promise<Raster> {
    const hash = tile.summary.contentHash;
    // The path comes from the content hash the view stores, checked to be hex; never from the URL.
    if (!/^[0-9a-f]{64}$/.test(hash))
      throw new NotFoundError(`tile ${tile.tileId} has no archive content hash`, "source-not-archived");
    // By tile id too: the PAM values belong to the catalogue entry, not to the bytes. No caller's
    // AbortSignal reaches the shared load: one client leaving must not fail the others waiting on it.
    return this.rasters.getOrLoad(`${hash}|${tile.tileId}`, async () => {
      if (this.pendingDecodes >= MAX_PENDING_DECODES)
        throw new ProblemError(
          503,
          "render-busy",
          "Too many source images being decoded",
          `${this.pendingDecodes} source tiles are being decoded; try again shortly`,
          { headers: { "Retry-After": "1" } },
        );
      this.pendingDecodes++;
      try {
        return await this.decode(tile, hash);
      } finally {
        this.pendingDecodes--;
      }
    });
  }

  /** Reads, decodes (in the worker) and applies the catalogue's PAM values. */
  private async decode(tile: ServedResult, hash: string): Promise<Raster> {
    let bytes: Uint8Array;
    try {
      bytes = await this.archive.readObject(hash);
    } catch (err) {
      // Only a missing object is a 404: a storage failure (a node of the cluster going away) is
      // transient and answers as such (STORAGE, 503), not as "not archived".
      if (errorCode(err) !== "OBJECT_MISSING") throw err;
      throw new NotFoundError(
        `the source of tile ${tile.tileId} is not in this archive`,
        "source-not-archived",
      );
    }
    this.pool ??= new DecoderPool({
      size: 1,
      timeoutMs: this.options.deadline.decodeTimeoutMs,
      maxPixels: this.options.maxPixels,
    });
    // The catalogue keeps the tile file's .aux.xml values (the archived object is the TIFF alone)
    // and its announced size, which the decode's deadline scales with as the lanes' do.
    const entry = await this.archive.get(tile.tileId);
    const own = entry?.contentHash === hash ? entry : undefined;
    const decoded = await this.pool.decode(bytes, { timeoutMs: tileDeadline(this.options.deadline, own).ms });
    return applyPam(decoded, own?.pam);
  }
}

/** Stretches and encodes (pure but for the PNG encoder). */
function renderSource(
  raster: Raster,
  bands: readonly number[],
  bandsFrom: BandsFrom,
  req: SourceRenderRequest,
  named: readonly number[] = bands,
): SourceImage {
  const drawn: StretchBand[] = [];
  const ranges: (StretchRange | null)[] = [];
  bands.forEach((b, i) => {
    const samples = raster.bands[b - 1] as BandArray;
    const nodata = raster.nodata[b - 1] ?? null;
    let range: StretchRange | null;
    if (req.rescale) range = (req.rescale.length === 1 ? req.rescale[0] : req.rescale[i]) ?? null;
    else {
      const p = bandPercentiles(samples, nodata, req.percentiles);
      range = p ? { min: p[0] as number, max: p[1] as number } : null;
    }
    ranges.push(range);
    // A band without a valid pixel draws nothing; any range will do.
    drawn.push({ samples, nodata, range: range ?? { min: 0, max: 1 } });
  });
  const rgba = stretchToRgba(drawn);
  const png = encodePng({ width: raster.width, height: raster.height, data: rgba, depth: 8, channels: 4 });
  return { png, bands: named, bandsFrom, ranges };
}
