/**
 * The merge rule, pure. Per cell, the candidates are the batch result and the live results whose
 * ingest sequence is above the batch watermark W; the newest acquisition wins, ties go to the higher
 * ingest sequence. Live results at or below W were read by the batch run ("absorbed") and never
 * compete, so a cell is never counted twice and a late-arriving old scene never hides a newer one.
 */

/** The fields the rule looks at. */
export interface MergeCandidate {
  readonly lane: "batch" | "live";
  readonly tileId: string;
  readonly cell: string;
  readonly acquired: string;
  readonly ingestSeq: number;
}

/** The outcome for one cell. */
export interface MergedCell<T extends MergeCandidate> {
  readonly cell: string;
  /** The result the merged view shows, or undefined when every candidate was absorbed or none exists. */
  readonly winner: T | undefined;
  /** The batch result and the live results above the watermark, newest first. */
  readonly candidates: readonly T[];
  /** Live results at or below the watermark: already in the batch view, may be expired. */
  readonly absorbed: readonly T[];
}

/** Orders candidates newest first: later acquisition, then higher ingest sequence, then lane and id. */
export function compareCandidates(a: MergeCandidate, b: MergeCandidate): number {
  const ta = Date.parse(a.acquired);
  const tb = Date.parse(b.acquired);
  if (ta !== tb) return tb - ta;
  if (a.ingestSeq !== b.ingestSeq) return b.ingestSeq - a.ingestSeq;
  // Same acquisition and sequence can only be the same tile seen by both lanes: prefer the frozen batch.
  if (a.lane !== b.lane) return a.lane === "batch" ? -1 : 1;
  return a.tileId < b.tileId ? -1 : a.tileId > b.tileId ? 1 : 0;
}

/** Applies the rule to one cell's batch result (if any) and live results. */
export function mergeCell<T extends MergeCandidate>(
  cell: string,
  batch: T | undefined,
  live: readonly T[],
  watermark: number,
): MergedCell<T> {
  const candidates: T[] = batch ? [batch] : [];
  const absorbed: T[] = [];
  for (const r of live) (r.ingestSeq > watermark ? candidates : absorbed).push(r);
  candidates.sort(compareCandidates);
  return { cell, winner: candidates[0], candidates, absorbed };
}

/**
 * Merges whole views: every cell present in either lane once, in cell order. `batch` maps a cell to
 * the batch view's result for it; `live` maps a cell to its live results.
 */
export function mergeViews<T extends MergeCandidate>(
  batch: ReadonlyMap<string, T>,
  live: ReadonlyMap<string, readonly T[]>,
  watermark: number,
): MergedCell<T>[] {
  const cells = new Set<string>([...batch.keys(), ...live.keys()]);
  return [...cells].sort().map((cell) => mergeCell(cell, batch.get(cell), live.get(cell) ?? [], watermark));
}

/** The newest of several results of one lane for a cell (how a batch run picks a cell's result). */
export function newestOf<T extends MergeCandidate>(results: readonly T[]): T | undefined {
  let best: T | undefined;
  for (const r of results) if (!best || compareCandidates(r, best) < 0) best = r;
  return best;
}
