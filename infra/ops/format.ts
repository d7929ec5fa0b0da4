/**
 * The text an operator reads: each ops report as a few aligned lines. `--json` prints the reports
 * themselves instead; these functions only decide what a person needs first.
 */
import { describeIngestStreamBehind } from "../../shared/index.js";
import { describeBatchRuns } from "./batch-runs.js";
import type { DiffReport } from "./diff.js";
import type { ExpireReport } from "./expire.js";
import type { ReplayReport } from "./replay.js";
import type { OpsStatus } from "./status.js";

/** "3d 4h", "5m 12s", "40s". */
export function formatAge(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;

/** `ops status` as text. */
export function formatStatus(s: OpsStatus): string {
  const out: string[] = [];
  const c = s.batch.current;
  out.push(
    c
      ? `batch     CURRENT ${c.name}  watermark ${c.watermark}  model ${c.modelVersion}  ` +
          `tiles ${c.tiles.total} (${c.tiles.reused} reused, ${c.tiles.failed} failed)  cells ${c.cells}  ` +
          `finished ${c.finishedAt} (${formatAge(c.ageS)} ago)`
      : s.batch.error
        ? `batch     UNAVAILABLE: ${s.batch.error}`
        : "batch     no view published (run `lanemap batch run`)",
  );
  if (s.batch.versions.length)
    out.push(
      `          versions ${s.batch.versions.map((v) => `${v.name}${v.current ? "*" : ""} (W ${v.watermark})`).join(", ")}`,
    );
  for (const line of describeBatchRuns(s.batch.runs, formatAge)) out.push(`runs      ${line}`);
  if (!s.nats.ok) {
    out.push(`nats      UNAVAILABLE${s.nats.url ? ` at ${s.nats.url}` : ""}: ${s.nats.error}`);
    return out.join("\n");
  }
  out.push(
    s.degraded.length === 0
      ? `nats      ${s.nats.url} ok`
      : `nats      ${s.nats.url} DEGRADED: ${s.degraded.join("; ")}`,
  );
  const l = s.live;
  if (l)
    out.push(
      `live      ${l.size} result(s): ${l.aboveWatermark} above the watermark, ${l.absorbed} absorbed  ` +
        `position ${l.position}  ` +
        (l.newestProcessedAt
          ? `newest ${l.newestProcessedAt} (${formatAge(l.lagS ?? 0)} ago)`
          : "no result yet"),
    );
  for (const b of l?.rasterBuckets ?? [])
    out.push(
      `  rasters ${b.bucket}  ${(b.bytes / 1024 / 1024).toFixed(1)} MB in ${b.messages} message(s), ` +
        (b.named > 0 ? `named by ${b.named} result(s)` : "named by no result") +
        (b.period === null ? " (legacy, before periods)" : ""),
    );
  out.push(
    s.ingest
      ? `ingest    ${s.ingest.messages} message(s), last seq ${s.ingest.lastSeq}, ${(s.ingest.bytes / 1024 / 1024).toFixed(1)} MB`
      : "ingest    stream not created yet (nothing ingested, no worker started)",
  );
  if (s.ingestBehind) out.push(`          BEHIND: ${describeIngestStreamBehind(s.ingestBehind)}`);
  const k = s.consumer;
  out.push(
    k
      ? `consumer  pending ${k.pending}  ack pending ${k.ackPending}  ack floor ${k.ackFloorSeq}  ` +
          `unacknowledged ${k.unacknowledged}  redelivered ${k.redelivered}  waiting pulls ${k.waiting}`
      : "consumer  missing (no speed worker started yet, or deleted: a running worker re-creates it)",
  );
  // Set only by a worker that re-created it (shared/adapters/nats/vanished-consumer.ts).
  if (k?.description) out.push(`          ${k.description}`);
  out.push(`dlq       ${s.deadLetters ?? 0} dead letter(s)`);
  const m = s.model;
  if (m)
    out.push(
      m.current
        ? `model     current ${m.current.version} (activated ${m.current.activatedAt}), ${m.versions} version(s) uploaded`
        : `model     none active (${m.versions} version(s) uploaded): run \`lanemap ops model activate FILE\``,
    );
  const a = s.archive;
  if (a) {
    const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
    const gens = a.generations.map((g) => `${g.bucket}${g.generation === a.current ? "*" : ""}`).join(", ");
    out.push(
      `archive   ${a.entries} catalogue entr${a.entries === 1 ? "y" : "ies"}, ${a.named.objects} object(s) ${mib(a.named.bytes)}  ` +
        `garbage ${a.garbage.objects} object(s) ${mib(a.garbage.bytes)}` +
        (a.garbage.objects > 0 ? " (`lanemap archive compact` drops it)" : "") +
        `  generations ${gens || "none"}` +
        // Above the pointer: a compaction's new generation before its move, no data (ArchiveUsage.pending).
        (a.pending.length > 0
          ? `  pending ${a.pending.map((g) => g.bucket).join(", ")} (a compaction under way or stopped before moving the pointer: no data; the next compaction drops it)`
          : ""),
    );
  }
  for (const [i, p] of (s.streams ?? []).entries()) {
    // A peer that is not current is catching up, or (offline) on a node that is down.
    const peers = p.peers.map(
      (r) => `${r.name}${r.offline ? " offline" : r.current ? "" : ` behind (lag ${r.lag})`}`,
    );
    const where =
      p.cluster === null
        ? "single server"
        : `cluster ${p.cluster}  leader ${p.leader ?? "NONE (no quorum)"}` +
          (peers.length ? `  peers ${peers.join(", ")}` : "");
    const lead = i === 0 ? "streams   " : "          ";
    // Left out of a listing during an election and not answering STREAM.INFO: nothing to show.
    if (p.noAnswer !== undefined) out.push(`${lead}${p.stream}  no answer now  DEGRADED`);
    else
      out.push(
        `${lead}${p.stream}  R${p.replicas}  ${where}  ${p.messages} msg` + (p.healthy ? "" : "  DEGRADED"),
      );
  }
  const r = s.replicaCopies;
  if (r) {
    const answered = r.nodes.filter((n) => n.node !== null).length;
    const diverged = new Set(r.divergences.map((d) => `${d.stream} on ${d.node}`));
    out.push(
      `copies    ${answered} of ${r.nodes.length} node(s) compared: ` +
        (diverged.size === 0 ? "every stream's copies agree" : `DIVERGED ${[...diverged].join(", ")}`),
    );
  } else if ((s.streams ?? []).some((p) => p.cluster !== null))
    out.push("copies    not compared (set LANEMAP_NATS_MONITOR_URLS to every node's monitoring URL)");
  return out.join("\n");
}

/** `ops diff` as text: the cells over the threshold, else the worst few, then the summary. */
export function formatDiff(r: DiffReport): string {
  const name = (id: number | null): string =>
    id === null ? "-" : (r.classes.find((c) => c.id === id)?.name ?? `class ${id}`);
  const shown = r.cells.filter((c) => c.exceeds);
  const rows = shown.length ? shown : r.cells.slice(0, 5);
  const out: string[] = [
    `batch ${r.version} (watermark ${r.watermark}) vs live view, threshold ${pct(r.threshold)}` +
      (r.anyTile ? ", newest live result where the batch's tile has none" : ""),
  ];
  if (rows.length) {
    out.push(shown.length ? "cells over the threshold:" : "largest differences:");
    for (const c of rows)
      out.push(
        `  ${c.cell.padEnd(12)} ${pct(c.maxDiff).padStart(6)} (${name(c.worstClass)})  ` +
          `batch ${c.batchTileId}  live ${c.liveTileId}` +
          (c.sameTile ? "" : " (another tile)") +
          (c.batchModel === c.liveModel ? "" : `  models ${c.batchModel} / ${c.liveModel}`),
      );
  }
  const s = r.summary;
  out.push(
    `${s.compared} cell(s) compared (${s.sameTile} same tile) of ${s.batchCells} batch / ${s.liveCells} live; ` +
      `${s.exceeding} over ${pct(r.threshold)}; mean ${pct(s.meanMaxDiff)}, max ${pct(s.maxMaxDiff)}` +
      (s.worstCell ? ` (${s.worstCell})` : ""),
  );
  if (s.otherTileOnly > 0 && !r.anyTile)
    out.push(
      `${s.otherTileOnly} cell(s) have only other tiles in the live view (newer acquisitions): not compared; --any-tile compares them`,
    );
  return out.join("\n");
}

/** The live raster buckets `ops expire` dropped and kept, one line each (none when there are none). */
function formatRasterBuckets(r: ExpireReport): string[] {
  const b = r.rasterBuckets;
  if (!b) return [];
  const lines = b.dropped.map(
    (name) => `${r.dryRun ? "would drop" : "dropped"} live raster bucket ${name} (no live entry names it)`,
  );
  for (const k of b.kept)
    lines.push(
      `kept live raster bucket ${k.bucket} (${k.why === "current" ? `period current at ${b.period}` : "a live entry names it"})`,
    );
  return lines;
}

/** `ops expire` as text. */
export function formatExpire(r: ExpireReport): string {
  if (r.version === null)
    return [
      `no batch view published: nothing is absorbed (${r.scanned} live result(s) kept)`,
      ...formatRasterBuckets(r),
    ].join("\n");
  const head = r.dryRun
    ? `dry run: would remove ${r.absorbed} of ${r.scanned} live result(s) absorbed by ${r.version} (watermark ${r.watermark})`
    : `removed ${r.removed} of ${r.scanned} live result(s) absorbed by ${r.version} (watermark ${r.watermark})`;
  const lines = [head];
  if (r.dryRun)
    for (const x of r.results.slice(0, 50)) lines.push(`  seq ${x.ingestSeq}  ${x.cell}  ${x.tileId}`);
  if (r.dryRun && r.results.length > 50)
    lines.push(`  ... and ${r.results.length - 50} more (--json lists all)`);
  lines.push(`${r.kept} result(s) above the watermark kept`);
  lines.push(...formatRasterBuckets(r));
  return lines.join("\n");
}

/** `ops replay` as text. */
export function formatReplay(r: ReplayReport): string {
  const lines: string[] = [];
  const range = `${r.stream} ${r.fromSeq}..${r.toSeq}`;
  if (r.fromSeq < r.firstStoredSeq)
    lines.push(`note: sequences before ${r.firstStoredSeq} are no longer stored (stream limits)`);
  for (const m of r.messages.slice(0, 50))
    lines.push(
      m.skipped
        ? `  seq ${m.origSeq}  ${m.tileId ?? "?"}  skipped: ${m.skipped}`
        : `  seq ${m.origSeq}  ${m.subject}  ${m.tileId ?? "?"}` +
            (m.newSeq === null ? "" : `  -> seq ${m.newSeq}`),
    );
  if (r.messages.length > 50) lines.push(`  ... and ${r.messages.length - 50} more (--json lists all)`);
  lines.push(
    r.dryRun
      ? `dry run: would republish ${r.read - r.skipped} of ${r.read} stored message(s) of ${range}`
      : `republished ${r.republished} of ${r.read} stored message(s) of ${range}; ` +
          "the speed workers re-drive them (tiles whose live result exists are acknowledged as duplicates)",
  );
  if (r.removed > 0)
    lines.push(
      `${r.removed} message(s) of tiles \`lanemap archive remove\` took out after they were stored left out (\`lanemap archive list --removed\`)`,
    );
  return lines.join("\n");
}
