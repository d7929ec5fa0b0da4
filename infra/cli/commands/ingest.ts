import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { Command } from "commander";
import {
  INGEST_STREAM,
  ensureStreams,
  ensureTileObjects,
  retryTransient,
  drainWithin,
} from "../../../shared/adapters/nats/index.js";
import {
  describeError,
  describeTile,
  errorLine,
  futureAcquisition,
  LanemapError,
  parseConfig,
  readPamSidecar,
  readSidecar,
} from "../../../shared/index.js";
import { publishTile } from "../../../speed/index.js";
import { connectForCli } from "../nats-connect.js";
import { refuseIngestStreamBehind } from "../../platform/ingest-clock.js";
import { openTileArchive } from "../../platform/storage.js";
import { openPublishedViews } from "../../platform/views.js";
import { UsageError } from "../usage.js";
import { commandSummary } from "./index.js";

interface IngestFlags {
  cell?: string;
  tileId?: string;
  acquired?: string;
  nats?: string;
  json?: boolean;
}

/** Some files were refused; the rest were published. */
export class IngestRefusedError extends LanemapError {
  constructor(refused: number, total: number) {
    super("INGEST_REFUSED", `${refused} of ${total} file(s) refused (see the lines above)`);
  }
}

function size(n: number): string {
  return n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(1)} MB` : `${(n / 1024).toFixed(0)} KB`;
}

/**
 * `lanemap ingest FILE...`: publishes GeoTIFF tiles to the speed lane's ingest stream. Each file's
 * tile id, cell and acquisition time are resolved exactly as registration will resolve them (flags,
 * sidecar JSON, TIFF tags, file name) and sent as headers, so the worker sees what the file says.
 * A file that is not a usable tile is refused before anything is sent.
 */
export function registerIngest(program: Command): void {
  program
    .command("ingest")
    .description(commandSummary("ingest"))
    .argument("<files...>", "GeoTIFF files")
    .option("--cell <cell>", "map cell (default: sidecar `cell`, else the file name's stem)")
    .option("--tile-id <id>", "tile id (one file only; default: sidecar `tileId`, else <cell>-<time>)")
    .option("--acquired <time>", "acquisition time, ISO 8601 (default: sidecar, TIFF tags, file name)")
    .option("--nats <url>", "NATS server (default NATS_URL, else the embedded server of `lanemap start`)")
    .option("--json", "print one JSON line per file")
    .action(async (files: string[], flags: IngestFlags) => {
      if (flags.tileId !== undefined && files.length > 1)
        throw new UsageError("--tile-id names one tile: give one file with it");
      if (flags.acquired !== undefined && Number.isNaN(Date.parse(flags.acquired)))
        throw new UsageError(`--acquired must be an ISO 8601 time, got "${flags.acquired}"`);
      const future =
        flags.acquired === undefined
          ? null
          : futureAcquisition(new Date(Date.parse(flags.acquired)).toISOString());
      if (future !== null) throw new UsageError(`--acquired: ${future}`);
      const config = parseConfig();
      const nc = await connectForCli(config, flags.nats, "lanemap-ingest");
      let refused = 0;
      try {
        // Producers may run before any worker: make sure the stream exists, as workers would.
        // Idempotent, so retried through a leader election (a node just died).
        await retryTransient("ingest: creating or checking the ingest stream", async () => {
          await ensureStreams(await jetstreamManager(nc), config.stream, config.storage.replicas);
          await ensureTileObjects(nc, config.stream, config.storage.replicas);
        });
        // Checked once, not per publish: a recreated stream (sequences from 1 again) would hand these
        // tiles sequences the batch view already counts as absorbed.
        const archive = await openTileArchive(config, nc);
        await refuseIngestStreamBehind(
          nc,
          { views: await openPublishedViews(config, nc), archive },
          { what: "ingest" },
        );
        const js = jetstream(nc);
        for (const [i, file] of files.entries()) {
          const progress = files.length > 1 ? `[${i + 1}/${files.length}] ` : "";
          try {
            let bytes: Uint8Array;
            try {
              bytes = new Uint8Array(await readFile(file));
            } catch (cause) {
              throw new LanemapError("UNREADABLE", `cannot read the file: ${describeError(cause)}`, {
                cause,
              });
            }
            const entry = await describeTile(
              bytes,
              {
                tileId: flags.tileId,
                cell: flags.cell,
                acquired: flags.acquired,
                ingestSeq: 0,
                source: "stream",
                fileName: basename(file),
                sidecar: await readSidecar(file),
                pam: await readPamSidecar(file),
              },
              { maxPixels: config.maxPixels, refuseFutureAcquisition: true },
            );
            // publishTile retries its publish; the object store upload of a large tile is retried
            // here (same object name, same Nats-Msg-Id: idempotent), and a failure names the tile.
            const sent = await retryTransient(`publishing tile ${entry.tileId} to ${INGEST_STREAM}`, () =>
              publishTile(js, bytes, {
                tileId: entry.tileId,
                cell: entry.cell,
                acquired: entry.acquired,
                pam: entry.pam,
              }),
            );
            if (flags.json) {
              console.log(
                JSON.stringify({ file, ok: true, ...sent, tileId: entry.tileId, acquired: entry.acquired }),
              );
            } else {
              const notes = [
                sent.duplicate ? "duplicate of an earlier message, dropped by the server" : `seq ${sent.seq}`,
                sent.object ? `via object store ${sent.object}` : null,
              ].filter(Boolean);
              console.log(
                `${progress}published ${file} -> ${sent.subject} (tile ${entry.tileId}, ${entry.acquired}, ${size(bytes.length)}; ${notes.join("; ")})`,
              );
            }
          } catch (err) {
            // One file's problem is that file's line; the others are still published.
            refused++;
            const code = err instanceof LanemapError ? err.code : "ERROR";
            if (flags.json)
              console.log(JSON.stringify({ file, ok: false, code, reason: describeError(err) }));
            else console.error(`${progress}lanemap: refused ${file}: ${errorLine(err)}`);
          }
        }
      } finally {
        await drainWithin(nc);
      }
      if (refused > 0) throw new IngestRefusedError(refused, files.length);
    });
}
