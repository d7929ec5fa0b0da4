/**
 * `lanemap ops diff`: how well did the speed lane agree with the batch lane? For every cell present
 * in both the current batch view and the live view, the class shares of the batch's tile are
 * compared with those of one live result of the cell. Absorbed live results (ingest sequence <= the
 * watermark) take part on purpose: they are the tiles both lanes classified, so they measure
 * agreement, where serving would already hide them.
 *
 * Which live result a cell is compared with: the one of the same tile the batch shows (the same bytes
 * through both lanes: pure agreement). A cell whose live results are all of other tiles (newer
 * acquisitions above the watermark, or the batch's own tile already expired) is not compared by
 * default: a difference there is mostly what changed on the ground since the run (a flood), not a
 * disagreement, and would page the night shift for nothing. `anyTile` compares those cells too,
 * with their newest live result by the merge rule's order; each row says which (`sameTile`).
 * Run it before `ops expire`, which removes the absorbed results it compares.
 *
 * The batch view is read through the deployment's `PublishedViews` (files, or NATS with
 * LANEMAP_STORAGE=nats, downloaded into this machine's cache as serving does): on a machine of a
 * cluster the local data directory holds no view, or a stale one.
 */
import type { Logger } from "pino";
import type { LiveView } from "../../shared/adapters/nats/index.js";
import { LanemapError, compareCandidates, type PublishedViews, type TileResult } from "../../shared/index.js";
import { readBatchCells, type BatchCellResult, type ViewClass } from "./batch-cells.js";
import { currentPlace, readCurrentView } from "./current-view.js";

/** There is no current batch view to compare with. */
export class NoBatchViewError extends LanemapError {
  /** @param place where CURRENT is kept (infra/ops/current-view.ts currentPlace): a file, or a NATS KV key. */
  constructor(place: string) {
    super("VIEW_NOT_FOUND", `no batch view is published: ${place} names none; run \`lanemap batch run\``);
  }
}

/** One compared cell. */
export interface CellDiff {
  readonly cell: string;
  readonly batchTileId: string;
  readonly liveTileId: string;
  /** The live result is of the same tile the batch shows for the cell. */
  readonly sameTile: boolean;
  /** The live result's ingest sequence is at or below the watermark (serving no longer shows it). */
  readonly liveAbsorbed: boolean;
  readonly batchModel: string;
  readonly liveModel: string;
  /** Largest absolute difference of a class share, 0..1. */
  readonly maxDiff: number;
  /** The class id with that difference, or null when the shares are equal. */
  readonly worstClass: number | null;
  /** Per class id: live share minus batch share (index 0, not classified, is always 0). */
  readonly perClass: readonly number[];
  readonly exceeds: boolean;
}

/** The whole comparison. */
export interface DiffReport {
  readonly version: string;
  readonly watermark: number;
  readonly threshold: number;
  /** Cells without a live result of the batch's tile were compared with their newest one. */
  readonly anyTile: boolean;
  /** The batch view's classes (ids index `perClass`). */
  readonly classes: readonly ViewClass[];
  /** Compared cells, largest difference first. */
  readonly cells: readonly CellDiff[];
  readonly summary: {
    readonly batchCells: number;
    readonly liveCells: number;
    readonly compared: number;
    readonly sameTile: number;
    /** Cells in both lanes without a live result of the batch's tile (compared only with anyTile). */
    readonly otherTileOnly: number;
    /** Cells over the threshold. */
    readonly exceeding: number;
    readonly meanMaxDiff: number;
    readonly maxMaxDiff: number;
    readonly worstCell: string | null;
    /** Per class id: mean absolute share difference over the compared cells. */
    readonly perClassMeanAbs: readonly number[];
  };
}

/** Options of {@link compareLanes}. */
export interface CompareOptions {
  readonly watermark: number;
  /** A cell whose largest share difference is above this exceeds it (0..1). */
  readonly threshold: number;
  /** Also compare cells without a live result of the batch's tile, with their newest one. */
  readonly anyTile?: boolean;
}

/**
 * Class shares of a count vector: each class's fraction of the classified pixels. Index 0 (nodata,
 * cloud: not classified) is left out and stays 0, so a cloudier acquisition of the same ground is
 * not counted as a disagreement about the ground.
 */
export function classShares(counts: readonly number[], length = counts.length): number[] {
  let total = 0;
  for (let i = 1; i < counts.length; i++) total += counts[i] ?? 0;
  return Array.from({ length }, (_, i) => (i > 0 && total > 0 ? (counts[i] ?? 0) / total : 0));
}

/** The live result a cell is compared with (see the file comment), or undefined. */
function pairFor(batch: BatchCellResult, live: readonly TileResult[]): TileResult | undefined {
  const same = live.find((r) => r.tileId === batch.tileId);
  if (same) return same;
  return [...live].sort(compareCandidates)[0];
}

/**
 * Compares the batch's cells with the live results (pure: no I/O). Cells only one lane has are
 * counted in the summary but not compared.
 */
export function compareLanes(
  batch: readonly BatchCellResult[],
  live: readonly TileResult[],
  classes: readonly ViewClass[],
  version: string,
  options: CompareOptions,
): DiffReport {
  const byCell = new Map<string, TileResult[]>();
  for (const r of live) {
    const list = byCell.get(r.cell);
    if (list) list.push(r);
    else byCell.set(r.cell, [r]);
  }
  const rows: CellDiff[] = [];
  let otherTileOnly = 0;
  for (const b of batch) {
    const l = pairFor(b, byCell.get(b.cell) ?? []);
    if (!l) continue;
    const sameTile = l.tileId === b.tileId;
    if (!sameTile) otherTileOnly++;
    if (!sameTile && !options.anyTile) continue;
    // Models with more classes make longer vectors: a missing class has share 0.
    const length = Math.max(b.counts.length, l.counts.length);
    const sb = classShares(b.counts, length);
    const sl = classShares(l.counts, length);
    const perClass = sl.map((s, i) => s - (sb[i] ?? 0));
    let maxDiff = 0;
    let worstClass: number | null = null;
    perClass.forEach((d, i) => {
      if (Math.abs(d) > maxDiff) {
        maxDiff = Math.abs(d);
        worstClass = i;
      }
    });
    rows.push({
      cell: b.cell,
      batchTileId: b.tileId,
      liveTileId: l.tileId,
      sameTile,
      liveAbsorbed: l.ingestSeq <= options.watermark,
      batchModel: b.modelVersion,
      liveModel: l.modelVersion,
      maxDiff,
      worstClass,
      perClass,
      exceeds: maxDiff > options.threshold,
    });
  }
  rows.sort((a, b) => b.maxDiff - a.maxDiff || (a.cell < b.cell ? -1 : 1));
  const width = Math.max(
    classes.reduce((m, c) => Math.max(m, c.id + 1), 0),
    ...rows.map((r) => r.perClass.length),
  );
  const perClassMeanAbs = Array.from({ length: width }, (_, i) =>
    rows.length ? rows.reduce((s, r) => s + Math.abs(r.perClass[i] ?? 0), 0) / rows.length : 0,
  );
  return {
    version,
    watermark: options.watermark,
    threshold: options.threshold,
    anyTile: options.anyTile ?? false,
    classes,
    cells: rows,
    summary: {
      batchCells: batch.length,
      liveCells: byCell.size,
      compared: rows.length,
      sameTile: rows.filter((r) => r.sameTile).length,
      otherTileOnly,
      exceeding: rows.filter((r) => r.exceeds).length,
      meanMaxDiff: rows.length ? rows.reduce((s, r) => s + r.maxDiff, 0) / rows.length : 0,
      maxMaxDiff: rows[0]?.maxDiff ?? 0,
      worstCell: rows[0]?.cell ?? null,
      perClassMeanAbs,
    },
  };
}

/** Options of {@link diffLanes}. */
export interface DiffOptions {
  /** The deployment's published views (infra/platform openPublishedViews): CURRENT and its files. */
  readonly views: Pick<PublishedViews, "backend" | "current" | "list" | "materialize">;
  /** This machine's data directory (named in the files backend's error message). */
  readonly dataDir: string;
  /** The live view (only read whole). */
  readonly live: Pick<LiveView, "list">;
  readonly threshold: number;
  readonly anyTile?: boolean;
  readonly logger: Logger;
}

/**
 * Compares the current batch view with the live view. Reads CURRENT once, so the whole report is
 * about one version even if a batch run publishes meanwhile.
 * @throws NoBatchViewError when nothing is published; LanemapError VIEW_NOT_FOUND when the version
 *   cannot be downloaded complete; the store's errors (LanemapError STORAGE when NATS cannot be read).
 */
export async function diffLanes(options: DiffOptions): Promise<DiffReport> {
  const { views } = options;
  const current = await readCurrentView(views);
  if (!current) throw new NoBatchViewError(currentPlace(views, options.dataDir));
  const dir = await views.materialize(current.name);
  const { cells, classes } = await readBatchCells({ ...current, dir });
  const live = (await options.live.list()).map((e) => e.result);
  const report = compareLanes(cells, live, classes, current.name, {
    watermark: current.manifest.watermark,
    threshold: options.threshold,
    anyTile: options.anyTile ?? false,
  });
  options.logger.debug(
    { version: current.name, compared: report.summary.compared, exceeding: report.summary.exceeding },
    "lanes compared",
  );
  return report;
}

function csvField(v: string | number | boolean): string {
  const s = String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/**
 * The report as CSV: one row per compared cell, with one `d_<class name>` column per class holding
 * the live share minus the batch share.
 */
export function formatDiffCsv(report: DiffReport): string {
  // Class ids from 1: index 0 (not classified) never has a share.
  const ids = Array.from({ length: Math.max(0, report.summary.perClassMeanAbs.length - 1) }, (_, i) => i + 1);
  const nameOf = (id: number): string => report.classes.find((c) => c.id === id)?.name ?? `class${id}`;
  const header = [
    "cell",
    "batch_tile",
    "live_tile",
    "same_tile",
    "live_absorbed",
    "batch_model",
    "live_model",
    "max_diff",
    "worst_class",
    "exceeds",
    ...ids.map((id) => `d_${nameOf(id)}`),
  ];
  const lines = [header.map(csvField).join(",")];
  for (const r of report.cells)
    lines.push(
      [
        r.cell,
        r.batchTileId,
        r.liveTileId,
        r.sameTile,
        r.liveAbsorbed,
        r.batchModel,
        r.liveModel,
        r.maxDiff.toFixed(6),
        r.worstClass === null ? "" : nameOf(r.worstClass),
        r.exceeds,
        ...ids.map((id) => (r.perClass[id] ?? 0).toFixed(6)),
      ]
        .map(csvField)
        .join(","),
    );
  return lines.join("\n") + "\n";
}
