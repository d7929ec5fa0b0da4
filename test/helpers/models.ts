/**
 * Small hand-made models for registry and catalogue tests: `names` become classes (ids 1..n unless
 * `ids` says otherwise), two samples each on a 2-band feature spec, so a test reads what it checks
 * without training on rasters.
 */
import {
  MODEL_FORMAT,
  createFeatureSpec,
  defaultColours,
  featureDim,
  sealModel,
  type Model,
} from "../../shared/internal.js";

export function tinyModel(
  names: readonly string[],
  options: { ids?: readonly number[]; salt?: number } = {},
): Model {
  const features = createFeatureSpec(2, { red: 1, nir: 2 });
  const dim = featureDim(features);
  const colours = defaultColours(names);
  const classes = names
    .map((name, i) => ({ id: options.ids?.[i] ?? i + 1, name, colour: colours[i] as string }))
    .sort((a, b) => a.id - b.id);
  const x: number[] = [];
  const y: number[] = [];
  const samplesPerClass: Record<string, number> = {};
  classes.forEach((c, i) => {
    for (let s = 0; s < 2; s++) {
      for (let d = 0; d < dim; d++) x.push(i * 10 + s + d + (options.salt ?? 0));
      y.push(c.id);
    }
    samplesPerClass[c.name] = 2;
  });
  return sealModel(
    {
      format: MODEL_FORMAT,
      classes,
      features,
      scaling: { mean: new Array<number>(dim).fill(0), std: new Array<number>(dim).fill(1) },
      k: 1,
      samples: { x, y },
      training: { source: "test", samplesPerClass },
    },
    "2026-01-01T00:00:00.000Z",
  );
}
