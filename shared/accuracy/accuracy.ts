/**
 * Accuracy assessment: seeded stratified hold-out, k-fold and group k-fold splits, the confusion matrix (rows =
 * reference, columns = predicted), overall accuracy, Cohen's kappa and per-class producer's accuracy
 * (recall), user's accuracy (precision) and F1. Pure functions over plain arrays.
 */
import { createRandom } from "../util/random.js";

/** Indices of a training part and a test part, each ascending. */
export interface Split {
  readonly train: Int32Array;
  readonly test: Int32Array;
}

/** Sample indices grouped by label, in ascending order within each label. */
function byLabel(labels: ArrayLike<number>): Map<number, number[]> {
  const groups = new Map<number, number[]>();
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i] as number;
    let g = groups.get(l);
    if (g === undefined) groups.set(l, (g = []));
    g.push(i);
  }
  // Labels in ascending order, so the stream of random numbers is consumed in a fixed order.
  return new Map([...groups].sort(([a], [b]) => a - b));
}

function ascending(xs: number[]): Int32Array {
  return Int32Array.from(xs).sort();
}

/**
 * A stratified hold-out split: in every class, round(n · testFraction) samples (at least one and at
 * most n - 1 when the class has two or more; none when it has one) go to the test part, chosen by a
 * seeded shuffle, so the same seed always gives the same split.
 * @throws RangeError when testFraction is not strictly between 0 and 1.
 */
export function stratifiedSplit(
  labels: ArrayLike<number>,
  testFraction: number,
  seed: number | string,
): Split {
  if (!(testFraction > 0 && testFraction < 1))
    throw new RangeError(`the test fraction must be between 0 and 1 (exclusive), got ${testFraction}`);
  const rng = createRandom(seed);
  const train: number[] = [];
  const test: number[] = [];
  for (const members of byLabel(labels).values()) {
    const n = members.length;
    const nTest = n < 2 ? 0 : Math.min(n - 1, Math.max(1, Math.round(n * testFraction)));
    rng.shuffle(members);
    test.push(...members.slice(0, nTest));
    train.push(...members.slice(nTest));
  }
  return { train: ascending(train), test: ascending(test) };
}

/**
 * Stratified k-fold splits: each class's samples are shuffled (seeded) and dealt to the folds in
 * turn, so every fold holds about 1/k of every class; fold i is the test part of split i.
 * @throws RangeError when folds is not an integer in 2..number of samples.
 */
export function kFoldSplits(labels: ArrayLike<number>, folds: number, seed: number | string): Split[] {
  if (!Number.isInteger(folds) || folds < 2 || folds > labels.length)
    throw new RangeError(
      `folds must be an integer in 2..${labels.length} (the number of samples), got ${folds}`,
    );
  const rng = createRandom(seed);
  const fold = new Int32Array(labels.length);
  let next = 0;
  for (const members of byLabel(labels).values()) {
    rng.shuffle(members);
    // Continue dealing where the previous class stopped, so small classes do not all land in fold 0.
    for (const i of members) fold[i] = next++ % folds;
  }
  return Array.from({ length: folds }, (_, f) => {
    const train: number[] = [];
    const test: number[] = [];
    for (let i = 0; i < fold.length; i++) (fold[i] === f ? test : train).push(i);
    return { train: Int32Array.from(train), test: Int32Array.from(test) };
  });
}

/**
 * Stratified group k-fold splits: every group (e.g. the label feature a pixel came from) lies wholly
 * in one fold, and each fold holds about 1/k of every class. Neighbouring pixels of one polygon are
 * near-duplicates, so splitting pixels lets a test pixel find its twin in the training part and
 * overstates accuracy; splitting groups does not.
 *
 * The rule is scikit-learn's StratifiedGroupKFold (shuffle=True): groups are shuffled (seeded), then
 * taken in descending order of the standard deviation of their class counts (a stable sort), and
 * each goes to the fold that minimises the mean over classes of the standard deviation, across
 * folds, of the fold's share of the class; ties go to the fold with fewer samples, then the lower fold.
 * @param labels class of each sample.
 * @param groups group id of each sample (any integers).
 * @param seed of the group shuffle; null keeps the groups in ascending id order (shuffle=False).
 * @throws RangeError when the arrays differ in length or folds is not an integer in 2..number of groups.
 */
export function stratifiedGroupKFoldSplits(
  labels: ArrayLike<number>,
  groups: ArrayLike<number>,
  folds: number,
  seed: number | string | null,
): Split[] {
  if (labels.length !== groups.length)
    throw new RangeError(`labels has ${labels.length} values, groups has ${groups.length}`);
  const classIndex = new Map<number, number>();
  for (const l of [...new Set(Array.from(labels))].sort((a, b) => a - b)) classIndex.set(l, classIndex.size);
  const groupIndex = new Map<number, number>();
  for (const g of [...new Set(Array.from(groups))].sort((a, b) => a - b)) groupIndex.set(g, groupIndex.size);
  const nGroups = groupIndex.size;
  const nClasses = classIndex.size;
  if (!Number.isInteger(folds) || folds < 2 || folds > nGroups)
    throw new RangeError(`folds must be an integer in 2..${nGroups} (the number of groups), got ${folds}`);
  const counts = Array.from({ length: nGroups }, () => new Float64Array(nClasses));
  const classTotal = new Float64Array(nClasses);
  for (let i = 0; i < labels.length; i++) {
    const c = classIndex.get(labels[i] as number) as number;
    const row = counts[groupIndex.get(groups[i] as number) as number] as Float64Array;
    row[c] = (row[c] as number) + 1;
    classTotal[c] = (classTotal[c] as number) + 1;
  }
  const std = (xs: ArrayLike<number>): number => {
    let m = 0;
    for (let i = 0; i < xs.length; i++) m += xs[i] as number;
    m /= xs.length;
    let ss = 0;
    for (let i = 0; i < xs.length; i++) ss += ((xs[i] as number) - m) ** 2;
    return Math.sqrt(ss / xs.length);
  };
  const ascendingGroups = Array.from({ length: nGroups }, (_, g) => g);
  const order = seed === null ? ascendingGroups : createRandom(seed).shuffle(ascendingGroups);
  const spread = order.map((g) => std(counts[g] as Float64Array));
  // Array.prototype.sort is stable, as numpy's mergesort the reference uses.
  const sorted = order.map((g, i) => [g, spread[i] as number] as const).sort((a, b) => b[1] - a[1]);
  const perFold = Array.from({ length: folds }, () => new Float64Array(nClasses));
  const foldSize = new Float64Array(folds);
  const foldOfGroup = new Int32Array(nGroups);
  const shares = new Float64Array(folds);
  for (const [g] of sorted) {
    const row = counts[g] as Float64Array;
    let best = -1;
    let bestEval = Infinity;
    for (let f = 0; f < folds; f++) {
      let total = 0;
      for (let c = 0; c < nClasses; c++) {
        for (let h = 0; h < folds; h++)
          shares[h] =
            (((perFold[h] as Float64Array)[c] as number) + (h === f ? (row[c] as number) : 0)) /
            (classTotal[c] as number);
        total += std(shares);
      }
      const evalF = total / nClasses;
      const close = Math.abs(evalF - bestEval) <= 1e-8 + 1e-5 * Math.abs(bestEval);
      // numpy.isclose tolerances, as the reference compares.
      if (evalF < bestEval || (close && (foldSize[f] as number) < (foldSize[best] as number))) {
        best = f;
        bestEval = evalF;
      }
    }
    const target = perFold[best] as Float64Array;
    for (let c = 0; c < nClasses; c++) {
      target[c] = (target[c] as number) + (row[c] as number);
      foldSize[best] = (foldSize[best] as number) + (row[c] as number);
    }
    foldOfGroup[g] = best;
  }
  return Array.from({ length: folds }, (_, f) => {
    const train: number[] = [];
    const test: number[] = [];
    for (let i = 0; i < labels.length; i++)
      (foldOfGroup[groupIndex.get(groups[i] as number) as number] === f ? test : train).push(i);
    return { train: Int32Array.from(train), test: Int32Array.from(test) };
  });
}

/** A confusion matrix: `matrix[r][c]` counts samples of reference label `labels[r]` predicted as `labels[c]`. */
export interface ConfusionMatrix {
  readonly labels: readonly number[];
  readonly matrix: readonly (readonly number[])[];
}

/**
 * The confusion matrix of `predicted` against `reference` over `labels` (rows = reference, columns =
 * predicted). Pairs where either value is not in `labels` are left out, as scikit-learn's
 * confusion_matrix(labels=...) does — e.g. a pixel predicted 0 (not classified).
 * @throws RangeError when the arrays differ in length or labels repeat.
 */
export function confusionMatrix(
  reference: ArrayLike<number>,
  predicted: ArrayLike<number>,
  labels: readonly number[],
): ConfusionMatrix {
  if (reference.length !== predicted.length)
    throw new RangeError(`reference has ${reference.length} values, predicted has ${predicted.length}`);
  const index = new Map(labels.map((l, i) => [l, i]));
  if (index.size !== labels.length) throw new RangeError("labels must be distinct");
  const m = labels.map(() => new Array<number>(labels.length).fill(0));
  for (let i = 0; i < reference.length; i++) {
    const r = index.get(reference[i] as number);
    const c = index.get(predicted[i] as number);
    if (r === undefined || c === undefined) continue;
    const row = m[r] as number[];
    row[c] = (row[c] as number) + 1;
  }
  return { labels: [...labels], matrix: m };
}

/**
 * Sum of confusion matrices over the same labels (e.g. the folds of a cross-validation).
 * @throws RangeError when the matrices are over different labels.
 */
export function addConfusion(a: ConfusionMatrix, b: ConfusionMatrix): ConfusionMatrix {
  if (a.labels.length !== b.labels.length || a.labels.some((l, i) => l !== b.labels[i]))
    throw new RangeError("confusion matrices over different labels cannot be added");
  return {
    labels: [...a.labels],
    matrix: a.matrix.map((row, r) =>
      row.map((v, c) => v + ((b.matrix[r] as readonly number[])[c] as number)),
    ),
  };
}

/** Accuracy of one class. Ratios are null when undefined (no reference or no predicted samples). */
export interface ClassAccuracy {
  readonly label: number;
  readonly name: string;
  /** Reference samples of the class (row sum). */
  readonly reference: number;
  /** Samples predicted as the class (column sum). */
  readonly predicted: number;
  readonly correct: number;
  /** Producer's accuracy (recall): correct / reference. */
  readonly producers: number | null;
  /** User's accuracy (precision): correct / predicted. */
  readonly users: number | null;
  /** Harmonic mean of producer's and user's accuracy (0 when both are 0). */
  readonly f1: number | null;
}

/** The usual figures of a confusion matrix. */
export interface AccuracyReport {
  /** Samples counted. */
  readonly n: number;
  /** Overall accuracy: trace / n (null when n is 0). */
  readonly oa: number | null;
  /**
   * Cohen's kappa: (po - pe) / (1 - pe) with pe from the row and column totals; null when undefined
   * (n is 0, or pe is 1: every sample of one class, predicted as it).
   */
  readonly kappa: number | null;
  readonly perClass: readonly ClassAccuracy[];
  readonly confusion: ConfusionMatrix;
}

/** Overall accuracy, kappa and per-class accuracies of a confusion matrix; `names` label the classes. */
export function assessAccuracy(cm: ConfusionMatrix, names?: readonly string[]): AccuracyReport {
  const k = cm.labels.length;
  const rows = cm.matrix.map((r) => r.reduce((s, v) => s + v, 0));
  const cols = cm.labels.map((_, c) => cm.matrix.reduce((s, r) => s + (r[c] as number), 0));
  const n = rows.reduce((s, v) => s + v, 0);
  let trace = 0;
  for (let i = 0; i < k; i++) trace += (cm.matrix[i] as readonly number[])[i] as number;
  let pe = 0;
  for (let i = 0; i < k; i++) pe += ((rows[i] as number) / n) * ((cols[i] as number) / n);
  const po = trace / n;
  const perClass = cm.labels.map((label, i): ClassAccuracy => {
    const correct = (cm.matrix[i] as readonly number[])[i] as number;
    const reference = rows[i] as number;
    const predicted = cols[i] as number;
    const producers = reference === 0 ? null : correct / reference;
    const users = predicted === 0 ? null : correct / predicted;
    const f1 =
      producers === null || users === null
        ? null
        : producers + users === 0
          ? 0
          : (2 * producers * users) / (producers + users);
    return { label, name: names?.[i] ?? String(label), reference, predicted, correct, producers, users, f1 };
  });
  return {
    n,
    oa: n === 0 ? null : po,
    kappa: n === 0 || pe === 1 ? null : (po - pe) / (1 - pe),
    perClass,
    confusion: cm,
  };
}
