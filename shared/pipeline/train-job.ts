/**
 * The training job as a worker-thread job: decode the chosen archive tiles, collect the label set's
 * samples, train, assess. It runs in a WorkerPool thread (train-thread.ts) so a server's event loop
 * keeps answering while it works: decoding and the k-fold assessment take seconds on a real archive.
 * The CRS of each tile comes from its catalogue entry (resolved when the tile was registered), so the
 * thread never starts the PROJ engine.
 */
import { ArchiveStore } from "../adapters/archive/index.js";
import { decodeGeoTiff, applyPam, type Pam } from "../geotiff/index.js";
import { createFeatureSpec, type FeatureSpec } from "../features/index.js";
import { serializeModel, type LabelCoverage } from "../classifier/index.js";
import { TrainingDataError } from "../errors.js";
import type { Raster } from "../raster/types.js";
import type { JobReply } from "../workers/index.js";
import type { ClassCatalogue } from "../models/index.js";
import { assessSamples, trainFromRasters, type Assessment } from "./train-labels.js";

/** One archive tile to train on, as its catalogue entry names it. */
export interface TrainTileRef {
  readonly tileId: string;
  readonly contentHash: string;
  readonly epsg: number | null;
  readonly proj4: string | null;
  readonly pam?: Pam | undefined;
  /**
   * The object's bytes, sent inline when the master archive is not the files one in `dataDir` (a
   * JetStream archive: the thread has no NATS connection of its own); absent: read from `dataDir`.
   */
  readonly bytes?: Uint8Array | undefined;
}

/** A training job: tiles, labels (GeoJSON, WGS 84) and how to train. */
export interface TrainJob {
  readonly dataDir: string;
  readonly tiles: readonly TrainTileRef[];
  /** A GeoJSON FeatureCollection with a `class` property per feature, lon/lat. */
  readonly labels: unknown;
  /** The feature spec; null: every band and NDVI from red = band 3, NIR = band 4 (Landsat-like). */
  readonly features: FeatureSpec | null;
  readonly k: number;
  /** Recorded in the model as where its labels came from. */
  readonly source: string;
  readonly seed: number;
  readonly maxPixels: number;
  /** Cap of samples per label feature (default `DEFAULT_MAX_SAMPLES_PER_FEATURE`). */
  readonly maxPerFeature?: number;
  /** The registry's class catalogue, so class ids stay stable across models (null: ids by sorted name). */
  readonly catalogue: ClassCatalogue | null;
}

/** What the job answers: the model artifact, its assessment, label coverage, and where time went. */
export interface TrainJobResult {
  /** `serializeModel` text. */
  readonly artifact: string;
  readonly version: string;
  readonly assessment: Assessment;
  readonly coverage: LabelCoverage;
  readonly samples: number;
  /** What `balanceSamples` capped or found dominating. */
  readonly warnings: readonly string[];
  /** Milliseconds per phase, measured in the thread. */
  readonly timings: { readonly decode: number; readonly train: number; readonly assess: number };
}

const stores = new Map<string, ArchiveStore>();

/**
 * Runs one training job.
 * @throws TrainingDataError (nothing usable), TileDecodeError / PixelBudgetError (a tile), ModelError.
 */
export async function runTrainJob(job: TrainJob): Promise<JobReply<TrainJobResult>> {
  if (job.tiles.length === 0) throw new TrainingDataError("no archive tile lies under the labels");
  let store = stores.get(job.dataDir);
  if (!store) stores.set(job.dataDir, (store = new ArchiveStore(job.dataDir)));
  const t0 = performance.now();
  const rasters: Raster[] = [];
  for (const t of job.tiles) {
    const decoded = applyPam(
      await decodeGeoTiff(t.bytes ?? (await store.readObject(t.contentHash)), {
        crs: "keys",
        maxPixels: job.maxPixels,
      }),
      t.pam,
    );
    rasters.push({ ...decoded, crs: { epsg: t.epsg, proj4: t.proj4, name: null } });
  }
  const t1 = performance.now();
  const bandCount = rasters[0]?.bands.length ?? 0;
  if (job.features === null && bandCount < 4)
    throw new TrainingDataError(
      `the tiles have ${bandCount} bands; NDVI needs red and NIR bands (4 or more)`,
    );
  const features = job.features ?? createFeatureSpec(bandCount, { red: 3, nir: 4 });
  const { model, samples, warnings } = trainFromRasters(
    rasters,
    { kind: "geojson", geojson: job.labels },
    {
      features,
      k: job.k,
      source: job.source,
      tileNames: job.tiles.map((t) => t.tileId),
      seed: job.seed,
      ...(job.maxPerFeature === undefined ? {} : { maxPerFeature: job.maxPerFeature }),
      ...(job.catalogue ? { catalogue: job.catalogue } : {}),
    },
  );
  const t2 = performance.now();
  const assessment = assessSamples(samples, { features, k: job.k, seed: job.seed });
  const t3 = performance.now();
  return {
    result: {
      artifact: serializeModel(model),
      version: model.version,
      assessment,
      coverage: samples.coverage,
      samples: samples.y.length,
      warnings,
      timings: { decode: t1 - t0, train: t2 - t1, assess: t3 - t2 },
    },
  };
}
