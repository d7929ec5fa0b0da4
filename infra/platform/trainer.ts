/**
 * The model trainer serving's POST /v1/models runs (serving/model-trainer.ts), over the label store,
 * the master archive, a training worker thread and the model registry:
 *
 *   selecting: the newest label set; per grid cell the newest acquisition (what the map shows and the
 *              analyst labelled on) whose lon/lat footprint meets a label's box
 *   training:  decode those tiles, collect samples, train, assess (worker thread: TrainPool)
 *   storing:   put the model with its label-set version and accuracy into the registry (not active)
 *
 * The feature spec and k follow the active model when its band layout fits the tiles, so a retrained
 * model describes pixels as the one it replaces does; otherwise every band + NDVI (red 3, NIR 4).
 */
import { ArchiveStore, LabelStore } from "../../shared/adapters/archive/index.js";
import {
  TrainingDataError,
  labelSetGeoJson,
  parseModel,
  type CatalogueEntry,
  type FeatureSpec,
  type LabelSet,
  type ModelRegistry,
  type TileArchive,
  type TrainJobResult,
  type TrainPool,
  type TrainTileRef,
} from "../../shared/index.js";
import type { ModelTrainer, TrainAccuracy, TrainOutcome } from "../../serving/index.js";

/** A lon/lat box. */
interface Box {
  minX: number;
  minY: number;
  maxX: number;
  maxY: number;
}

function labelBoxes(set: LabelSet): Box[] {
  return set.labels.map((l) => {
    const b = { minX: Infinity, minY: Infinity, maxX: -Infinity, maxY: -Infinity };
    const walk = (v: unknown): void => {
      if (Array.isArray(v) && typeof v[0] === "number") {
        b.minX = Math.min(b.minX, v[0]);
        b.maxX = Math.max(b.maxX, v[0]);
        b.minY = Math.min(b.minY, v[1] as number);
        b.maxY = Math.max(b.maxY, v[1] as number);
      } else if (Array.isArray(v)) for (const c of v) walk(c);
    };
    walk(l.geometry.coordinates);
    return b;
  });
}

function meets(tile: Box, label: Box): boolean {
  if (label.minY > tile.maxY || label.maxY < tile.minY) return false;
  // A footprint across the antimeridian is stored west > east (RFC 7946 §5.2).
  if (tile.minX > tile.maxX) return label.maxX >= tile.minX || label.minX <= tile.maxX;
  return label.minX <= tile.maxX && label.maxX >= tile.minX;
}

/** Per cell the newest acquisition (ties: the higher ingest sequence), as the merge rule picks. */
export function newestPerCell(entries: Iterable<CatalogueEntry>): CatalogueEntry[] {
  const best = new Map<string, CatalogueEntry>();
  for (const e of entries) {
    const b = best.get(e.cell);
    const newer =
      !b ||
      Date.parse(e.acquired) > Date.parse(b.acquired) ||
      (e.acquired === b.acquired && e.ingestSeq > b.ingestSeq);
    if (newer) best.set(e.cell, e);
  }
  return [...best.values()].sort((a, b) => (a.tileId < b.tileId ? -1 : 1));
}

function accuracyOf(result: TrainJobResult): { accuracy: TrainAccuracy | null; note?: string } {
  const a = result.assessment;
  if (!a.made) return { accuracy: null, note: a.reason };
  const e = a.evaluation;
  return {
    accuracy: {
      method: e.method === "group-folds" || e.method === "folds" ? e.method : "holdout",
      ...(e.folds ? { folds: e.folds.length } : {}),
      ...(e.groupsPerClass ? { groupsPerClass: e.groupsPerClass } : {}),
      ...(a.note !== undefined ? { note: a.note } : {}),
      n: e.n,
      oa: e.oa,
      kappa: e.kappa,
      perClass: e.perClass.map((c) => ({ name: c.name, f1: c.f1, producers: c.producers, users: c.users })),
    },
  };
}

/** Options of `modelTrainerFor`. */
export interface TrainerOptions {
  readonly dataDir: string;
  readonly registry: ModelRegistry;
  readonly pool: TrainPool;
  readonly maxPixels: number;
  /** The master archive (default: the files one in `dataDir`; see infra/platform/storage.ts). */
  readonly archive?: TileArchive;
}

/** The trainer over one data directory and registry. */
export function modelTrainerFor(options: TrainerOptions): ModelTrainer {
  const labels = new LabelStore(options.dataDir);
  const archive = options.archive ?? new ArchiveStore(options.dataDir);
  return {
    async train(opts, onProgress, signal) {
      const t0 = performance.now();
      onProgress({ phase: "selecting", message: "reading the label set and choosing tiles" });
      const set = await labels.read();
      if (set.labels.length === 0)
        throw new TrainingDataError(
          "the label set is empty: add labels (POST /v1/labels, lanemap labels add) first",
        );
      const boxes = labelBoxes(set);
      const entries: CatalogueEntry[] = [];
      for await (const e of archive.entries()) entries.push(e);
      const chosen = newestPerCell(entries).filter(
        (e) => e.boundsWgs84 !== null && boxes.some((b) => meets(e.boundsWgs84 as Box, b)),
      );
      if (chosen.length === 0)
        throw new TrainingDataError(
          `none of the archive's ${entries.length} tiles lies under the ${set.labels.length} labels`,
        );
      const bandCount = chosen[0]?.bandCount ?? 0;
      const mixed = chosen.find((e) => e.bandCount !== bandCount);
      if (mixed)
        throw new TrainingDataError(
          `the labels lie on tiles of ${bandCount} and ${mixed.bandCount} bands (${mixed.tileId}); a model needs one layout`,
        );
      let features: FeatureSpec | null = null;
      let k = opts.k ?? 5;
      const active = await options.registry.active();
      if (active) {
        const entry = await options.registry.get(active.version);
        if (entry && entry.features.bands === bandCount) {
          features = entry.features;
          k = opts.k ?? entry.k;
        }
      }
      const t1 = performance.now();
      onProgress({
        phase: "training",
        message: `training on ${chosen.length} tile${chosen.length === 1 ? "" : "s"} with ${set.labels.length} labels (label set v${set.version})`,
      });
      // The training thread reads a files archive itself; any other archive's bytes go with the job.
      const inline = archive.backend !== "files";
      const tiles: TrainTileRef[] = [];
      for (const e of chosen)
        tiles.push({
          tileId: e.tileId,
          contentHash: e.contentHash,
          epsg: e.epsg,
          proj4: e.proj4,
          ...(e.pam ? { pam: e.pam } : {}),
          ...(inline ? { bytes: await archive.readObject(e.contentHash) } : {}),
        });
      const result = await options.pool.run(
        {
          dataDir: options.dataDir,
          tiles,
          labels: labelSetGeoJson(set),
          features,
          k,
          source: `label set v${set.version}`,
          seed: set.version,
          maxPixels: options.maxPixels,
          ...(opts.maxSamplesPerFeature === undefined ? {} : { maxPerFeature: opts.maxSamplesPerFeature }),
          // Class ids from the deployment's catalogue: a name keeps its id across retrainings.
          catalogue: await options.registry.classes(),
        },
        signal,
      );
      const t2 = performance.now();
      onProgress({ phase: "storing", message: `storing model ${result.version}` });
      const model = parseModel(result.artifact);
      const { accuracy, note } = accuracyOf(result);
      const assessment = result.assessment.made ? result.assessment.evaluation : undefined;
      const { created } = await options.registry.put(model, {
        trainedBy: "POST /v1/models",
        labelSet: `v${set.version}`,
        ...(assessment ? { accuracy: assessment } : {}),
      });
      const t3 = performance.now();
      const outcome: TrainOutcome = {
        version: model.version,
        created,
        labelSetVersion: set.version,
        classes: model.classes.map((c) => ({ id: c.id, name: c.name, colour: c.colour })),
        samples: result.samples,
        tiles: tiles.length,
        k: model.k,
        accuracy,
        ...(note ? { accuracyNote: note } : {}),
        warnings: result.warnings,
        timings: {
          selecting: t1 - t0,
          thread: t2 - t1,
          decode: result.timings.decode,
          train: result.timings.train,
          assess: result.timings.assess,
          storing: t3 - t2,
        },
      };
      return outcome;
    },
  };
}
