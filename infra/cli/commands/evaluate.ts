import type { Command } from "commander";
import {
  collectSamples,
  crossValidation,
  evaluateModel,
  groupsPerClass,
  holdoutEvaluation,
  loadModelFile,
  type Evaluation,
} from "../../../shared/index.js";
import { UsageError, positiveInt } from "../usage.js";
import { readLabels, readTiles } from "./train.js";
import { commandSummary } from "./index.js";

interface EvaluateFlags {
  model?: string;
  tiles?: string;
  reference?: string;
  holdout?: string;
  seed?: string;
  folds?: string;
  classProperty?: string;
  labelNames?: string;
  crs?: string;
}

const round = (x: number | null): number | null => (x === null ? null : Math.round(x * 1e6) / 1e6);

/** The JSON printed by `lanemap evaluate`. */
function report(e: Evaluation, model: string): Record<string, unknown> {
  return {
    model,
    method: e.method,
    ...(e.groupsPerClass ? { groupsPerClass: e.groupsPerClass } : {}),
    samples: e.n,
    trainSamples: e.trainSamples,
    oa: round(e.oa),
    kappa: round(e.kappa),
    confusion: { rows: "reference", columns: "predicted", classes: e.classNames, matrix: e.confusion.matrix },
    perClass: e.perClass.map((c) => ({
      class: c.name,
      reference: c.reference,
      predicted: c.predicted,
      producers: round(c.producers),
      users: round(c.users),
      f1: round(c.f1),
    })),
    ...(e.folds ? { folds: e.folds.map((f) => ({ n: f.n, oa: round(f.oa), kappa: round(f.kappa) })) } : {}),
  };
}

/** `lanemap evaluate`: accuracy of a model, or of its settings by hold-out or cross-validation. */
export function registerEvaluate(program: Command): void {
  program
    .command("evaluate")
    .description(commandSummary("evaluate"))
    .option("--model <model.json>", "model file from `lanemap train`")
    .option("--tiles <dir>", "folder of GeoTIFF tiles (or one tile)")
    .option("--reference <file>", "reference labels: GeoJSON (.geojson) or a label raster (.tif)")
    .option("--holdout <fraction>", "test on this stratified fraction, train on the rest (e.g. 0.3)")
    .option("--seed <n>", "seed of the hold-out or fold assignment", "1")
    .option(
      "--folds <n>",
      "stratified k-fold cross-validation, grouped by GeoJSON feature (each feature wholly in one fold)",
    )
    .option("--class-property <name>", "GeoJSON property holding the class name", "class")
    .option("--label-names <map>", "class names of label raster values, e.g. 1=forest,2=water")
    .option("--crs <EPSG:code>", "CRS of GeoJSON coordinates without a crs member (default EPSG:4326)")
    .action(async (flags: EvaluateFlags) => {
      if (!flags.model) throw new UsageError("--model <model.json> is required");
      if (flags.holdout !== undefined && flags.folds !== undefined)
        throw new UsageError("give either --holdout or --folds, not both");
      let holdout: number | null = null;
      if (flags.holdout !== undefined) {
        holdout = Number(flags.holdout);
        if (!(holdout > 0 && holdout < 1))
          throw new UsageError(`--holdout must be a fraction between 0 and 1, got "${flags.holdout}"`);
      }
      const folds = flags.folds === undefined ? null : positiveInt("--folds", flags.folds, 5);
      if (folds !== null && folds < 2) throw new UsageError(`--folds must be at least 2, got ${folds}`);
      const seedText = flags.seed ?? "1";
      const seed = Number(seedText);
      if (!Number.isInteger(seed)) throw new UsageError(`--seed must be an integer, got "${seedText}"`);

      const model = await loadModelFile(flags.model);
      const labels = await readLabels("--reference", flags.reference, flags);
      const tiles = await readTiles("--tiles", flags.tiles);
      const samples = collectSamples(
        tiles.map((t) => t.raster),
        labels,
        model.features,
        tiles.map((t) => t.path),
      );
      if (folds !== null && folds > samples.y.length)
        throw new UsageError(`--folds ${folds} is more than the ${samples.y.length} reference samples`);
      const options = { features: model.features, k: model.k, seed };
      // Folds group a feature's pixels (near-duplicates) when the reference has features enough;
      // a label raster, or fewer features than folds, falls back to pixels, and the note says so.
      const groups = groupsPerClass(samples);
      const featureCount = samples.group === undefined ? 0 : new Set(samples.group).size;
      const grouped = folds !== null && featureCount >= folds;
      const few = Object.entries(groups).filter(([, g]) => folds !== null && g < folds);
      const note =
        folds === null
          ? undefined
          : !grouped
            ? `by pixel, not by label feature: ${samples.group === undefined ? "a label raster has no features" : `${featureCount} features are fewer than ${folds} folds`}, so the figures are optimistic`
            : few.length > 0
              ? `class${few.length > 1 ? "es" : ""} ${few.map(([n, g]) => `"${n}" (${g})`).join(", ")} ha${few.length > 1 ? "ve" : "s"} fewer label features than folds: some folds test none of ${few.length > 1 ? "them" : "it"}`
              : undefined;
      const evaluation =
        holdout !== null
          ? holdoutEvaluation(samples, { ...options, testFraction: holdout })
          : folds !== null
            ? crossValidation(samples, { ...options, folds, grouped })
            : evaluateModel(model, samples);
      // What of the reference was usable: features outside every tile and pixels on nodata are left out.
      console.log(
        JSON.stringify(
          {
            ...report(evaluation, model.version),
            ...(note !== undefined ? { note } : {}),
            labels: samples.coverage,
          },
          null,
          2,
        ),
      );
    });
}
