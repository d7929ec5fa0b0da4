/**
 * The catalogue side of the batch lane: bulk-loading a folder of GeoTIFFs into the master archive,
 * and reading the set of entries a run covers (everything up to the watermark). Entries are small
 * records (no pixels), so a run may hold all of them; pixels are only ever read by the workers.
 */
import { readdir, readFile, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { Logger } from "pino";
import type { TileArchive } from "../shared/index.js";
import {
  ERROR_CODES,
  LanemapError,
  describeError,
  isErrorCode,
  readPamSidecar,
  readSidecar,
  registerTile,
  type BadTileRecord,
  type CatalogueEntry,
  type ErrorCode,
  type StreamReplay,
} from "../shared/index.js";

/** A file that could not be registered, with the reason (also stored with `store.recordBad`). */
export interface BadFile {
  readonly file: string;
  readonly code: ErrorCode;
  readonly reason: string;
}

/** A tile a bulk load registered (new or already present). */
export interface RegisteredFile {
  readonly file: string;
  readonly tileId: string;
  readonly bandCount: number;
  readonly created: boolean;
}

/** What a bulk load did. */
export interface ArchiveAddReport {
  readonly dir: string;
  /** GeoTIFF files found (.tif, .tiff, .gtif, .gtiff). */
  readonly files: number;
  /** Tiles new to the archive. */
  readonly added: number;
  /** Tiles already in the archive with the same content (registering is idempotent). */
  readonly present: number;
  readonly bad: readonly BadFile[];
  /** Every tile registered or already present, in file order. */
  readonly registered: readonly RegisteredFile[];
  /** Files registered now whose bad-tile record (an earlier load refused them) was removed, in file order. */
  readonly clearedBad: readonly string[];
}

/** Options of {@link addArchiveFolder}. */
export interface ArchiveAddOptions {
  readonly logger: Logger;
  /** Decode budget in pixels; larger tiles are recorded as bad. */
  readonly maxPixels: number;
  /** Files registered at once (each one is a header read, a hash and a few fsyncs). Default 4. */
  readonly concurrency?: number;
  readonly signal?: AbortSignal;
  /**
   * Acquisition time for every file (ISO 8601), as `lanemap ingest --acquired` gives it; it wins
   * over sidecars, TIFF tags and file names, like the ingest header.
   */
  readonly acquired?: string;
}

/** The GeoTIFF names `lanemap ingest`, `train` and `classify` take too. */
export const TIFF_FILE = /\.(tiff?|gtiff?)$/i;

/**
 * Registers every GeoTIFF (.tif, .tiff, .gtif, .gtiff) directly in `dir` in the master archive, as
 * bulk tiles (ingest sequence 0), with each file's JSON and .aux.xml sidecars. A file that cannot be registered is recorded with its reason and skipped; it never
 * stops the load. Throws only when `dir` cannot be listed.
 */
export async function addArchiveFolder(
  store: TileArchive,
  dir: string,
  options: ArchiveAddOptions,
): Promise<ArchiveAddReport> {
  const root = resolve(dir);
  let names: string[];
  try {
    names = (await readdir(root)).filter((n) => TIFF_FILE.test(n) && !n.startsWith(".")).sort();
  } catch (cause) {
    throw new LanemapError("UNREADABLE", `cannot list ${root}: ${describeError(cause)}`, { cause });
  }
  let added = 0;
  let present = 0;
  const bad: BadFile[] = [];
  const registered: RegisteredFile[] = [];
  const clearedBad: string[] = [];
  // The bad-tile records of earlier loads, keyed by file name: a file registered now is not bad
  // any more (an operator added `--acquired` to files refused without one, issue 14), and its record
  // must go, on either backend. Listed once rather than one lookup per file.
  const badKeys = new Set<string>();
  if (names.length > 0) for await (const r of store.badTiles()) badKeys.add(r.key);
  let next = 0;

  const registerOne = async (name: string): Promise<void> => {
    const path = join(root, name);
    try {
      if (!(await stat(path)).isFile()) return;
      const bytes = new Uint8Array(await readFile(path));
      const sidecar = await readSidecar(path);
      const pam = await readPamSidecar(path);
      const { entry, created } = await registerTile(
        store,
        bytes,
        { ingestSeq: 0, source: "bulk", fileName: name, sidecar, pam, acquired: options.acquired },
        { maxPixels: options.maxPixels },
      );
      if (created) added++;
      else present++;
      registered.push({ file: name, tileId: entry.tileId, bandCount: entry.bandCount, created });
      if (badKeys.has(name) && (await store.clearBad(name))) clearedBad.push(name);
      options.logger.debug({ file: name, tileId: entry.tileId, created }, "tile registered");
    } catch (err) {
      // The shared archive failing is not the file's fault: stop the load instead of marking it bad.
      if (err instanceof LanemapError && err.code === "STORAGE") throw err;
      const code =
        err instanceof LanemapError ? err.code : err instanceof SyntaxError ? "SIDECAR" : "UNREADABLE";
      const reason = describeError(err);
      bad.push({ file: name, code, reason });
      options.logger.warn({ file: name, code, reason }, "tile not registered");
      await store.recordBad({ key: name, source: path, code, reason, at: new Date().toISOString() });
    }
  };

  const worker = async (): Promise<void> => {
    while (next < names.length) {
      options.signal?.throwIfAborted();
      const name = names[next++];
      if (name !== undefined) await registerOne(name);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 4) }, worker));
  registered.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
  clearedBad.sort();
  return { dir: root, files: names.length, added, present, bad, registered, clearedBad };
}

/** A catalogue entry a run leaves out because the speed lane dead-lettered its content as permanently bad. */
export interface QuarantinedTile {
  readonly tileId: string;
  readonly contentHash: string;
  readonly code: string;
  readonly reason: string;
  /** When the speed lane dead-lettered it. */
  readonly at: string;
}

/** Permanent codes that say more about the moment than about the tile (see {@link quarantines}). */
const NOT_QUARANTINED: ReadonlySet<ErrorCode> = new Set<ErrorCode>(["MAX_DELIVER", "DEADLINE"]);

/**
 * True when a bad-tile record quarantines the catalogue entry `entry`: the speed lane dead-lettered
 * this very content (same tile id and sha256) with a permanent code of the error table
 * (shared/errors.ts), so classifying it again in a batch run fails the same way. MAX_DELIVER and
 * DEADLINE are left out: a tile that ran out of deliveries failed transiently, and one over the speed
 * lane's deadline (a burst, a slow worker) may well be classified by a batch run.
 * A bulk load's records are keyed by file name and carry no hash, so they never match.
 */
export function quarantines(record: BadTileRecord, entry: CatalogueEntry): boolean {
  return (
    record.source === "stream" &&
    record.key === entry.tileId &&
    record.contentHash === entry.contentHash &&
    isErrorCode(record.code) &&
    isTilesOwnFailure(record.code)
  );
}

/**
 * True when a failure with `code` is the tile's own (its bytes or layout: it fails the same way
 * every time): a permanent code of the error table (shared/errors.ts) but MAX_DELIVER and DEADLINE,
 * which say more about the moment (a burst, a slow or frozen worker) than about the tile. Such a
 * failure is not carried into a later try: a quarantine, or a resumed run's earlier results.
 */
export function isTilesOwnFailure(code: ErrorCode): boolean {
  return ERROR_CODES[code].permanent && !NOT_QUARANTINED.has(code);
}

/** The entries of one run and the watermark that selected them. */
export interface RunSet {
  /** Entries with ingestSeq <= watermark, in catalogue (directory) order, quarantined ones left out. */
  readonly entries: CatalogueEntry[];
  /**
   * Entries up to the watermark left out because the speed lane dead-lettered their content as
   * permanently bad (see {@link quarantines}); `lanemap dlq retry` after a fix or
   * `lanemap archive remove` takes them out of this list. A stream run set applies the same rule.
   */
  readonly quarantined?: readonly QuarantinedTile[];
  /** W: the highest ingest sequence this run covers. */
  readonly watermark: number;
  /** The highest ingest sequence in the catalogue. */
  readonly maxSeq: number;
  /** Entries above the watermark, left to the speed lane (stream messages, for a stream replay). */
  readonly excluded: number;
  /**
   * Where the entries came from: the catalogue (readRunSet; absent means the same) or a replay of
   * the ingest stream (readStreamRunSet in stream-run-set.ts, kappa mode), whose range and left-out
   * messages are in `stream`. The manifest records both.
   */
  readonly source?: "catalogue" | "stream";
  readonly stream?: StreamReplay;
}

/**
 * What a run has read when it asks for its watermark: the catalogue's highest ingest sequence (a
 * catalogue run; absent for a replay of the stream), so a provider can check the ingest stream has
 * not fallen behind it (infra's provider refuses a recreated stream, shared/view/ingest-clock.ts).
 */
export interface WatermarkContext {
  readonly catalogueMaxSeq?: number;
}

/**
 * Supplies the speed lane's acknowledged floor: every stream message up to it is in the catalogue
 * (infra wires the speed consumer's ack floor; tests pass a function). It may refuse the run by
 * throwing a LanemapError (INGEST_STREAM_BEHIND), which the run reports as it is.
 */
export type WatermarkProvider = (context?: WatermarkContext) => number | Promise<number>;

/**
 * Reads the catalogue and picks a run's entries. Without a provider the watermark is the highest
 * ingest sequence in the catalogue; with one it is min(provider(), that), so an entry registered by
 * the speed lane but not yet acknowledged stays with the speed lane until a later run. Entries the
 * speed lane dead-lettered as permanently bad are set apart as `quarantined` (issue 14): otherwise
 * every run would fail them again and exit 1 for ever.
 */
export async function readRunSet(store: TileArchive, watermark?: WatermarkProvider): Promise<RunSet> {
  const all: CatalogueEntry[] = [];
  let maxSeq = 0;
  for await (const entry of store.entries()) {
    all.push(entry);
    if (entry.ingestSeq > maxSeq) maxSeq = entry.ingestSeq;
  }
  const w = await resolveWatermark(watermark, maxSeq, { catalogueMaxSeq: maxSeq });
  const covered = all.filter((e) => e.ingestSeq <= w);
  const { entries, quarantined } = await setApartQuarantined(store, covered);
  return {
    entries,
    quarantined,
    watermark: w,
    maxSeq,
    excluded: all.length - covered.length,
    source: "catalogue",
  };
}

/**
 * Splits a run's entries into those to classify and those a bad-tile record of the speed lane
 * quarantines (see {@link quarantines}), sorted by tile id: the same rule for a catalogue run and a
 * replay of the ingest stream, so both leave such a tile out (exit 0) instead of one failing it.
 */
export async function setApartQuarantined(
  store: TileArchive,
  covered: readonly CatalogueEntry[],
): Promise<{ entries: CatalogueEntry[]; quarantined: QuarantinedTile[] }> {
  const bad = new Map<string, BadTileRecord>();
  for await (const record of store.badTiles()) if (record.source === "stream") bad.set(record.key, record);
  const entries: CatalogueEntry[] = [];
  const quarantined: QuarantinedTile[] = [];
  for (const e of covered) {
    const record = bad.get(e.tileId);
    if (record && quarantines(record, e))
      quarantined.push({
        tileId: e.tileId,
        contentHash: e.contentHash,
        code: record.code,
        reason: record.reason,
        at: record.at,
      });
    else entries.push(e);
  }
  quarantined.sort((a, b) => (a.tileId < b.tileId ? -1 : a.tileId > b.tileId ? 1 : 0));
  return { entries, quarantined };
}

/**
 * W for a run set whose highest sequence is `maxSeq`: min(provider(), maxSeq), or maxSeq without a
 * provider.
 * @throws LanemapError WATERMARK when the provider gives anything but a non-negative integer.
 */
export async function resolveWatermark(
  watermark: WatermarkProvider | undefined,
  maxSeq: number,
  context: WatermarkContext = {},
): Promise<number> {
  if (!watermark) return maxSeq;
  const floor = await watermark(context);
  if (!Number.isInteger(floor) || floor < 0)
    throw new LanemapError(
      "WATERMARK",
      `the watermark provider returned ${floor}, not a non-negative integer`,
    );
  return Math.min(floor, maxSeq);
}
