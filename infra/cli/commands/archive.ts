import { stat } from "node:fs/promises";
import type { Command } from "commander";
import {
  addArchiveFolder,
  modelLayouts,
  type ArchiveAddReport,
  type ModelLayout,
} from "../../../batch/index.js";
import { withTileArchive } from "../../platform/storage.js";
import { withPublishedViews } from "../../platform/views.js";
import { recordedIngestSeqs } from "../../platform/ingest-clock.js";
import {
  COMPACT_GRACE_MS,
  INGEST_STREAM,
  NatsTileArchive,
  connectNats,
  drainWithin,
  ingestStreamRange,
  type CompactionReport,
  type IngestStreamRange,
} from "../../../shared/adapters/nats/index.js";
import {
  IngestStreamBehindError,
  LanemapError,
  dataPaths,
  describeError,
  ingestStreamBehind,
  parseConfig,
  removalDroppable,
  type BadTileRecord,
  type CatalogueEntry,
  type Config,
  type Removal,
  type TileArchive,
} from "../../../shared/index.js";
import { embeddedNatsUrl } from "../nats-connect.js";
import { UsageError } from "../usage.js";
import { cliLogger } from "../logger.js";
import { commandSummary } from "./index.js";

interface ArchiveAddFlags {
  dataDir?: string;
  acquired?: string;
  nats?: string;
  json?: boolean;
}

/** Flags of `archive list` and `archive remove` (`--bad`: the bad-tile records; `--removed`: the tombstones). */
interface ArchiveListFlags {
  dataDir?: string;
  nats?: string;
  bad?: boolean;
  removed?: boolean;
  json?: boolean;
}

/**
 * LANEMAP_TILES' stored range now, for a tombstone (`archive remove`) and the question whether one
 * can be dropped: null when there is no ingest stream, undefined when no NATS server is configured
 * (--nats, NATS_URL, a running `lanemap start`) or it does not answer (said on stderr): the
 * tombstone then falls back to the removal's time (shared/storage `removedBy`).
 */
async function ingestPosition(
  config: Config,
  flag: string | undefined,
): Promise<IngestStreamRange | null | undefined> {
  const url = flag ?? config.natsUrl ?? (await embeddedNatsUrl(config.dataDir));
  if (url === undefined) return undefined;
  try {
    const nc = await connectNats({ servers: url, name: "lanemap-archive-position" });
    try {
      return await ingestStreamRange(nc);
    } finally {
      await drainWithin(nc);
    }
  } catch (err) {
    console.error(
      `warning: cannot read the ingest stream's position (${describeError(err)}): removals are compared by time`,
    );
    return undefined;
  }
}

/**
 * Drops the tombstones no replay can meet any more (`removalDroppable`: the ingest stream no longer
 * holds a message they cover), except those of `keep`; the ids dropped.
 */
async function pruneRemovals(
  archive: TileArchive,
  stream: IngestStreamRange | null,
  keep: ReadonlySet<string>,
): Promise<string[]> {
  const dropped: string[] = [];
  for (const r of await collect(archive.removals()))
    if (!keep.has(r.tileId) && removalDroppable(r, stream) && (await archive.dropRemoval(r.tileId)))
      dropped.push(r.tileId);
  return dropped.sort();
}

/** One of the ids given to `lanemap archive remove` is neither a catalogue entry nor a bad-tile record. */
export class ArchiveTileNotFoundError extends LanemapError {
  constructor(missing: readonly string[], removed: number) {
    super(
      "TILE_NOT_FOUND",
      `${missing.length === 1 ? "no tile" : "no tiles"} ${missing.join(", ")} in the archive` +
        (removed > 0 ? ` (the other ${removed} removed)` : "") +
        "; `lanemap archive list` names the catalogue, `lanemap archive list --bad` the bad tiles",
    );
  }
}

function archiveConfig(flags: { dataDir?: string }): Config {
  return parseConfig(flags.dataDir ? { ...process.env, LANEMAP_DATA_DIR: flags.dataDir } : process.env);
}

function where(config: Config): string {
  return config.storage.backend === "nats" ? "(NATS)" : config.dataDir;
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

const byKey =
  <T>(key: (x: T) => string) =>
  (a: T, b: T) =>
    key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0;

/** Flags of `archive compact`. */
interface ArchiveCompactFlags {
  dataDir?: string;
  nats?: string;
  dryRun?: boolean;
  grace?: string;
  json?: boolean;
}

const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/** The lines `archive compact` prints for `r` (without --json). */
export function compactionLines(r: CompactionReport): string[] {
  const b = r.before;
  const gens = b.generations.map((g) => `${g.bucket} (${g.objects} objects, ${mib(g.bytes)})`).join(", ");
  const lines = [
    `archive (NATS): ${b.entries} catalogue entries naming ${b.named.objects} stored objects (${mib(b.named.bytes)}); ` +
      `garbage ${b.garbage.objects} objects (${mib(b.garbage.bytes)}); generations ${gens || "none"}` +
      (b.pending.length > 0 ? `; pending (no data) ${b.pending.map((g) => g.bucket).join(", ")}` : ""),
  ];
  if (r.nothingToDo) lines.push("nothing to compact: one generation and no garbage");
  else if (r.dryRun)
    lines.push(
      `dry run: would create generation ${r.generation}, copy ${r.copied.objects} objects (${mib(r.copied.bytes)}) into it, ` +
        `and delete ${r.deleted.join(", ")} whole, dropping ${b.garbage.objects} objects (${mib(b.garbage.bytes)})`,
    );
  else
    lines.push(
      `compacted into generation ${r.generation}: copied ${r.copied.objects} objects (${mib(r.copied.bytes)}), ` +
        `deleted ${r.deleted.join(", ") || "nothing"} whole, dropping ${b.garbage.objects} objects (${mib(b.garbage.bytes)})`,
    );
  if (r.missing.length > 0)
    lines.push(
      `warning: ${r.missing.length} content hash(es) the catalogue names are stored in no generation (those tiles read as OBJECT_MISSING): ${r.missing.map((h) => h.slice(0, 12)).join(", ")}`,
    );
  return lines;
}

/** What `archive remove` did with one id. */
interface RemovedId {
  readonly id: string;
  /** The catalogue entry removed, if the id had one (never with --bad). */
  readonly entry?: { readonly contentHash: string; readonly objectRemoved: boolean };
  /** Whether a bad-tile record of the id was removed. */
  readonly badRecord: boolean;
  /** The tombstone recorded with the entry's removal (what the replays leave out). */
  readonly tombstone?: { readonly ingestSeq: number | null; readonly removedAt: string };
}

/**
 * Warnings for registered tiles whose band count no model in the registry (`modelsDir`, the data
 * directory's models/) expects: such a tile would be accepted now and then fail every batch run.
 * The warning names the active model, the one batch runs apply, when there is one.
 */
export function layoutWarnings(
  report: ArchiveAddReport,
  models: readonly ModelLayout[],
  modelsDir: string,
): string[] {
  if (models.length === 0 || report.registered.length === 0) return [];
  const fits = new Set(models.map((m) => m.bands));
  const expected = [...fits].sort((a, b) => a - b).join(" or ");
  const active = models.find((m) => m.active);
  const who = active
    ? `the registry's active model ${active.version} expects ${active.bands}` +
      (models.length > 1
        ? ` (the ${models.length} models in ${modelsDir} expect ${expected})`
        : ` (in ${modelsDir})`)
    : `the models in ${modelsDir} (none active) expect ${expected}`;
  return report.registered
    .filter((r) => !fits.has(r.bandCount))
    .map(
      (r) =>
        `warning: ${r.file} has ${r.bandCount} band${r.bandCount === 1 ? "" : "s"}; ${who}, ` +
        "so batch runs will fail this tile until a model for its layout is trained (lanemap train ... --activate)",
    );
}

/**
 * `lanemap archive add DIR`: bulk-registers every GeoTIFF of DIR in the master archive. Bad tiles
 * are recorded with their reason and never stop the load; the exit code is 1 only when nothing at all
 * could be read, 2 on bad arguments.
 * `lanemap archive list [--bad]` and `archive remove ID... [--bad]` (issue 14): what an operator needs
 * to see and clear the tiles batch runs quarantine; an id with nothing to remove is TILE_NOT_FOUND
 * (exit 1) after the others are removed.
 * `lanemap archive compact [--dry-run]` (nats): drops removed tiles' objects by generations
 * (NatsTileArchive.compact), never purging inside a living stream.
 */
export function registerArchive(program: Command): void {
  const archive = program.command("archive").description(commandSummary("archive"));
  archive
    .command("add")
    .argument(
      "<dir>",
      "folder of GeoTIFF tiles (.tif/.tiff/.gtif; a <file>.json sidecar may give acquired/cell/tileId, a <file>.aux.xml GDAL's band nodata/scale/offset)",
    )
    .description("register every GeoTIFF of a folder in the master archive (bulk load, ingest sequence 0)")
    .option("--data-dir <dir>", "data directory (default: LANEMAP_DATA_DIR, else ./data)")
    .option(
      "--acquired <time>",
      "acquisition time of every file, ISO 8601 (default: sidecar JSON, TIFF tags, file name — as ingest)",
    )
    .option("--nats <url>", "NATS server of a LANEMAP_STORAGE=nats archive (default NATS_URL)")
    .option("--json", "print the summary as JSON")
    .action(async (dir: string, flags: ArchiveAddFlags) => {
      try {
        if (!(await stat(dir)).isDirectory()) throw new Error("not a directory");
      } catch (cause) {
        throw new UsageError(`${dir} is not a readable directory`, { cause });
      }
      if (flags.acquired !== undefined && Number.isNaN(Date.parse(flags.acquired)))
        throw new UsageError(`--acquired must be an ISO 8601 time, got "${flags.acquired}"`);
      const config = parseConfig(
        flags.dataDir ? { ...process.env, LANEMAP_DATA_DIR: flags.dataDir } : process.env,
      );
      const logger = await cliLogger(config.logLevel, { role: "archive" });
      const report = await withTileArchive(config, flags.nats ?? config.natsUrl, "lanemap-archive", (store) =>
        addArchiveFolder(store, dir, {
          logger,
          maxPixels: config.maxPixels,
          ...(flags.acquired !== undefined ? { acquired: flags.acquired } : {}),
        }),
      );
      const warnings = layoutWarnings(
        report,
        await modelLayouts(config.dataDir),
        dataPaths(config.dataDir).models,
      );
      if (flags.json) console.log(JSON.stringify({ ...report, warnings }, null, 2));
      else {
        console.log(
          `archive ${config.storage.backend === "nats" ? "(NATS)" : config.dataDir}: ${report.added} added, ${report.present} already present, ${report.bad.length} bad (of ${report.files} files in ${report.dir})`,
        );
        for (const r of report.registered)
          console.log(
            `  ${r.created ? "added" : "present"}  ${r.file}  tile ${r.tileId}, ${r.bandCount} bands`,
          );
        for (const b of report.bad) console.log(`  bad  ${b.file}  ${b.code}: ${b.reason}`);
        if (report.clearedBad.length > 0)
          console.log(
            `  ${report.clearedBad.length} bad-tile record(s) of an earlier load cleared: those files are registered now`,
          );
        for (const w of warnings) console.error(w);
      }
      if (report.files === 0)
        throw new LanemapError("ARCHIVE_EMPTY", `no GeoTIFF files (.tif, .tiff, .gtif) in ${report.dir}`);
      if (report.added + report.present === 0)
        throw new LanemapError(
          "ARCHIVE_UNREADABLE",
          `none of the ${report.files} files in ${report.dir} could be registered`,
        );
    });

  archive
    .command("list")
    .description(
      "list the catalogue (tile id, cell, acquired, ingest seq, bands, content), or with --bad the bad-tile records (dead letters of the speed lane, files a bulk load refused)",
    )
    .option("--bad", "list the bad-tile records instead of the catalogue")
    .option(
      "--removed",
      "list the removed tiles' tombstones instead (what `batch run --from-stream` and `ops replay` leave out), each with whether it can be dropped",
    )
    .option("--data-dir <dir>", "data directory (default: LANEMAP_DATA_DIR, else ./data)")
    .option("--nats <url>", "NATS server of a LANEMAP_STORAGE=nats archive (default NATS_URL)")
    .option("--json", "print JSON")
    .action(async (flags: ArchiveListFlags) => {
      const config = archiveConfig(flags);
      if (flags.bad && flags.removed)
        throw new UsageError("--bad and --removed list different records: give one");
      if (flags.removed) {
        const removals = await withTileArchive(config, flags.nats ?? config.natsUrl, "lanemap-archive", (a) =>
          collect<Removal>(a.removals()),
        );
        removals.sort(byKey((r) => r.tileId));
        const stream = await ingestPosition(config, flags.nats);
        const listed = removals.map((r) => ({
          ...r,
          droppable: stream === undefined ? null : removalDroppable(r, stream),
        }));
        if (flags.json) console.log(JSON.stringify(listed, null, 2));
        else {
          for (const r of listed)
            console.log(
              `${r.tileId}  removed ${r.removedAt}  ` +
                (r.ingestSeq === null
                  ? "stream position not recorded"
                  : `stream at sequence ${r.ingestSeq}`) +
                `  content ${r.contentHash.slice(0, 12)}` +
                (r.droppable ? "  (droppable: the stream no longer holds its messages)" : ""),
            );
          console.log(
            `${listed.length} removed tile(s) in ${where(config)}` +
              (listed.length
                ? "; replays of the ingest stream leave out their messages stored before the removal" +
                  (stream === undefined ? " (no NATS server reached: cannot say which can be dropped)" : "")
                : ""),
          );
        }
        return;
      }
      if (flags.bad) {
        const records = await withTileArchive(config, flags.nats ?? config.natsUrl, "lanemap-archive", (a) =>
          collect<BadTileRecord>(a.badTiles()),
        );
        records.sort(byKey((r) => r.key));
        if (flags.json) console.log(JSON.stringify(records, null, 2));
        else {
          for (const r of records)
            console.log(
              `${r.key}  ${r.code}  ${r.at}  ${r.source === "stream" ? "speed lane" : r.source}` +
                (r.contentHash ? `  content ${r.contentHash.slice(0, 12)}` : "") +
                `\n    ${r.reason}`,
            );
          console.log(
            `${records.length} bad tile record(s) in ${where(config)}` +
              (records.length
                ? "; `lanemap archive remove ID` takes a tile out of the archive, `--bad ID` only clears its record"
                : ""),
          );
        }
        return;
      }
      const entries = await withTileArchive(config, flags.nats ?? config.natsUrl, "lanemap-archive", (a) =>
        collect<CatalogueEntry>(a.entries()),
      );
      entries.sort(byKey((e) => e.tileId));
      if (flags.json) console.log(JSON.stringify(entries, null, 2));
      else {
        for (const e of entries)
          console.log(
            `${e.tileId}  ${e.cell}  ${e.acquired}  seq ${e.ingestSeq}  ${e.bandCount} bands  ${e.width}x${e.height}  content ${e.contentHash.slice(0, 12)}`,
          );
        console.log(
          `${entries.length} catalogue entr${entries.length === 1 ? "y" : "ies"} in ${where(config)}`,
        );
      }
    });

  archive
    .command("remove")
    .argument("<id...>", "tile ids (or, for a bulk load's bad-tile record, its file name)")
    .description(
      "take tiles out of the master archive: the catalogue entry, its object unless another entry has the same content (LANEMAP_STORAGE=nats: by the next `archive compact`), and its bad-tile record; the next batch run's view no longer has them",
    )
    .option("--bad", "only clear the bad-tile records of the ids (keep their catalogue entries)")
    .option("--data-dir <dir>", "data directory (default: LANEMAP_DATA_DIR, else ./data)")
    .option("--nats <url>", "NATS server of a LANEMAP_STORAGE=nats archive (default NATS_URL)")
    .option("--json", "print one JSON line per id")
    .action(async (ids: string[], flags: ArchiveListFlags) => {
      const config = archiveConfig(flags);
      if (flags.removed) throw new UsageError("--removed goes with `archive list`");
      // Where the ingest stream is now: every stored message of a removed tile up to here predates
      // its removal, and the replays leave those out (the tombstone).
      const stream = flags.bad ? undefined : await ingestPosition(config, flags.nats);
      // A recreated stream (sequences from 1 again) would give the tombstone a sequence below the
      // messages it must cover, and, empty, make every older tombstone look droppable: refused.
      const versions =
        stream === undefined
          ? []
          : await withPublishedViews(config, flags.nats, "lanemap-archive-views", (v) => v.list());
      const removedAt = new Date().toISOString();
      const { removals, dropped } = await withTileArchive(
        config,
        flags.nats ?? config.natsUrl,
        "lanemap-archive",
        async (a) => {
          if (stream !== undefined) {
            const records = await recordedIngestSeqs({ views: { list: async () => versions }, archive: a });
            const behind = ingestStreamBehind(INGEST_STREAM, stream, records);
            if (behind) throw new IngestStreamBehindError(behind);
          }
          const out: RemovedId[] = [];
          for (const id of [...new Set(ids)]) {
            let removed: Awaited<ReturnType<TileArchive["remove"]>>;
            const ingestSeq = stream === undefined ? null : (stream?.lastSeq ?? 0);
            if (!flags.bad) {
              const entry = await a.get(id);
              // The tombstone goes first: a crash before the entry goes leaves the tile catalogued
              // with a tombstone (remove it again), never removed without one.
              if (entry)
                await a.recordRemoval({ tileId: id, removedAt, ingestSeq, contentHash: entry.contentHash });
              removed = await a.remove(id);
            }
            const badRecord = await a.clearBad(id);
            out.push({
              id,
              ...(removed
                ? {
                    entry: { contentHash: removed.entry.contentHash, objectRemoved: removed.objectRemoved },
                    tombstone: { ingestSeq, removedAt },
                  }
                : {}),
              badRecord,
            });
          }
          // Tombstones no replay can meet any more go (bounded by what the stream's limits keep).
          const dropped = stream === undefined ? [] : await pruneRemovals(a, stream, new Set(ids));
          return { removals: out, dropped };
        },
      );
      const found = removals.filter((r) => r.entry || r.badRecord);
      for (const r of found) {
        if (flags.json) console.log(JSON.stringify(r));
        else
          console.log(
            `removed ${r.id}: ` +
              [
                r.entry
                  ? `catalogue entry, content ${r.entry.contentHash.slice(0, 12)} ${
                      r.entry.objectRemoved
                        ? "deleted"
                        : config.storage.backend === "nats"
                          ? "left for `lanemap archive compact` (removed there unless another entry has it)"
                          : "kept (another entry has it)"
                    }`
                  : "",
                r.badRecord ? "bad-tile record" : "",
              ]
                .filter(Boolean)
                .join(", "),
          );
      }
      const tombstoned = found.filter((r) => r.tombstone).length;
      if (tombstoned > 0 && !flags.json)
        console.log(
          `tombstone${tombstoned === 1 ? "" : "s"} recorded: replays of the ingest stream leave out the messages of ${
            tombstoned === 1 ? "this tile" : `these ${tombstoned} tiles`
          } stored ` +
            (stream === undefined
              ? `before ${removedAt} (no NATS server reached: compared by time)`
              : `up to sequence ${stream?.lastSeq ?? 0}`) +
            " (`lanemap archive list --removed`)",
        );
      if (dropped.length > 0 && !flags.json)
        console.log(
          `dropped ${dropped.length} older tombstone(s) the ingest stream holds no message of: ${dropped.join(", ")}`,
        );
      const missing = removals.filter((r) => !r.entry && !r.badRecord).map((r) => r.id);
      if (missing.length) throw new ArchiveTileNotFoundError(missing, found.length);
    });

  archive
    .command("compact")
    .description(
      "LANEMAP_STORAGE=nats: drop the objects of removed tiles — copy every object the catalogue names into a new generation, then delete the old generations' streams whole (nothing is purged in place); the files backend has nothing to compact",
    )
    .option("--dry-run", "say what would be copied and dropped, change nothing")
    .option(
      "--grace <seconds>",
      `wait between moving the generation pointer and reading the catalogue, so puts already under way land (default ${COMPACT_GRACE_MS / 1000})`,
    )
    .option("--data-dir <dir>", "data directory (default: LANEMAP_DATA_DIR, else ./data)")
    .option("--nats <url>", "NATS server of a LANEMAP_STORAGE=nats archive (default NATS_URL)")
    .option("--json", "print the report as JSON")
    .action(async (flags: ArchiveCompactFlags) => {
      const grace = flags.grace === undefined ? COMPACT_GRACE_MS / 1000 : Number(flags.grace);
      if (!Number.isFinite(grace) || grace < 0)
        throw new UsageError(`--grace must be a number of seconds, got "${flags.grace}"`);
      const config = archiveConfig(flags);
      if (config.storage.backend === "files") {
        const why = "nothing to compact: the files backend deletes a removed tile's object at once";
        console.log(
          flags.json
            ? JSON.stringify({ backend: "files", nothingToDo: true, why })
            : `archive ${config.dataDir}: ${why}`,
        );
        return;
      }
      const report = await withTileArchive(
        config,
        flags.nats ?? config.natsUrl,
        "lanemap-archive",
        async (a) => {
          if (!(a instanceof NatsTileArchive))
            throw new UsageError(
              "archive compact needs LANEMAP_STORAGE=nats and a NATS URL (--nats or NATS_URL)",
            );
          return a.compact({ dryRun: flags.dryRun === true, graceMs: Math.round(grace * 1000) });
        },
      );
      if (flags.json) console.log(JSON.stringify({ backend: "nats", ...report }, null, 2));
      else for (const line of compactionLines(report)) console.log(line);
    });
}
