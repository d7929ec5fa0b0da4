/**
 * How results are presented in every answer: the snapshot an answer was read from, each result's
 * provenance (lane, batch version, watermark, model, acquisition and processing time, staleness)
 * and class names from the snapshot's model.
 */
import { boxGeometry, utcTimestamp, type ModelClass } from "../../shared/index.js";
import type { PixelSourceBody, SnapshotInfoBody, ProvenanceBody, TileSummaryBody } from "../api/schemas.js";
import type { ComposedCell, ServedResult } from "../view/served-result.js";
import type { Snapshot, SnapshotLease } from "../view/snapshot.js";

const seconds = (ms: number): number => Math.round(ms) / 1000;

/** Names for classes the model does not list (live results without a batch view, say). */
export function className(classes: readonly ModelClass[], id: number): string {
  if (id === 0) return "not classified";
  return classes.find((c) => c.id === id)?.name ?? `class ${id}`;
}

/** The snapshot block every answer carries. */
export function snapshotInfo(lease: SnapshotLease): SnapshotInfoBody {
  const { snapshot: s, now } = lease;
  return {
    id: s.id,
    takenAt: new Date(now).toISOString(),
    batch: s.batch
      ? {
          version: s.batch.version,
          name: s.batch.name,
          watermark: s.batch.manifest.watermark,
          modelVersion: s.batch.manifest.modelVersion,
          finishedAt: utcTimestamp(s.batch.manifest.finishedAt),
          ageS: seconds(now - s.batch.finishedMs),
        }
      : null,
    live: s.live ? { position: s.live.position, size: s.live.size } : null,
    legend: s.classes.map((c) => ({ id: c.id, name: c.name, colour: c.colour })),
  };
}

/** Where a result came from, against the snapshot that served it. */
export function provenance(r: ServedResult, s: Snapshot, now: number): ProvenanceBody {
  return {
    lane: r.lane,
    batchVersion: s.batch?.version ?? null,
    watermark: s.batch ? s.batch.manifest.watermark : null,
    livePosition: s.live?.position ?? null,
    modelVersion: r.summary.modelVersion,
    ingestSeq: r.ingestSeq,
    acquired: r.acquired,
    processedAt: r.summary.processedAt,
    staleness: {
      sinceAcquiredS: seconds(now - r.acquiredMs),
      viewAgeS: r.lane === "batch" && s.batch ? seconds(now - s.batch.finishedMs) : null,
    },
  };
}

/** Milliseconds per day: a pixel's age is told in days since its acquisition. */
export const DAY_MS = 86_400_000;

/** The acquisition one pixel came from, and its age in days at `now` (3 decimals). */
export function pixelSourceBody(r: ServedResult, now: number): PixelSourceBody {
  return {
    lane: r.lane,
    tileId: r.tileId,
    acquired: r.acquired,
    ingestSeq: r.ingestSeq,
    modelVersion: r.summary.modelVersion,
    ageDays: Math.round(((now - r.acquiredMs) / DAY_MS) * 1000) / 1000,
  };
}

/** One result as the API shows it. */
export function tileSummary(r: ServedResult, lease: SnapshotLease, composed?: ComposedCell): TileSummaryBody {
  const t = r.summary;
  const b = r.bounds;
  const own = provenance(r, lease.snapshot, lease.now);
  // A composed cell's pixels come from its sources: `acquired` is the newest that gives a pixel and
  // the provenance's acquisition and staleness the oldest (the stalest pixel counted).
  const span = composed ? givingSources(composed) : null;
  return {
    cell: r.cell,
    tileId: r.tileId,
    lane: r.lane,
    acquired: span ? span.newest.acquired : r.acquired,
    ingestSeq: r.ingestSeq,
    processedAt: t.processedAt,
    modelVersion: t.modelVersion,
    contentHash: t.contentHash,
    width: t.width,
    height: t.height,
    epsg: t.epsg,
    bbox: b ? [b.minX, b.minY, b.maxX, b.maxY] : null,
    validPixels: t.validPixels,
    counts: [...t.counts],
    areasM2: [...t.areasM2],
    dominantClass: t.dominantClass,
    dominantClassName: className(lease.snapshot.classes, t.dominantClass),
    meanConfidence: t.meanConfidence,
    provenance: span
      ? {
          ...own,
          acquired: span.oldest.acquired,
          staleness: { ...own.staleness, sinceAcquiredS: seconds(lease.now - span.oldest.acquiredMs) },
        }
      : own,
  };
}

/**
 * The sources of a composed cell that give at least one pixel (`counts[s]` pixels each, by source
 * index; default the whole cell's contributions), with the oldest and newest by acquisition; null
 * when none gives any.
 */
export function givingSources(
  c: ComposedCell,
  counts: readonly number[] = c.contributions,
): { giving: ServedResult[]; oldest: ServedResult; newest: ServedResult } | null {
  const giving = c.sources.filter((_, i) => (counts[i] ?? 0) > 0);
  let oldest: ServedResult | undefined;
  let newest: ServedResult | undefined;
  for (const s of giving) {
    if (!oldest || s.acquiredMs < oldest.acquiredMs) oldest = s;
    if (!newest || s.acquiredMs > newest.acquiredMs) newest = s;
  }
  return oldest && newest ? { giving, oldest, newest } : null;
}

/**
 * GeoJSON geometry of WGS84 bounds (counter-clockwise outer ring, RFC 7946): a Polygon, or a
 * MultiPolygon of the two halves when the box crosses the antimeridian (west > east, §3.1.9).
 */
export function boundsPolygon(
  b: { minX: number; minY: number; maxX: number; maxY: number } | null,
): ReturnType<typeof boxGeometry> | null {
  return b ? boxGeometry(b) : null;
}
