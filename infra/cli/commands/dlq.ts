import { jetstreamManager } from "@nats-io/jetstream";
import type { Command } from "commander";
import {
  DeadLetterQueue,
  ensureStreams,
  ensureTileObjects,
  type DeadLetter,
  drainWithin,
} from "../../../shared/adapters/nats/index.js";
import { describeError, errorLine, LanemapError } from "../../../shared/index.js";
import type { Logger } from "pino";
import { cliLogger } from "../logger.js";
import { connectForCli } from "../nats-connect.js";
import { refuseIngestStreamBehind } from "../../platform/ingest-clock.js";
import { openTileArchive } from "../../platform/storage.js";
import { openPublishedViews } from "../../platform/views.js";
import { UsageError } from "../usage.js";
import { cliConfig } from "../config.js";
import { commandSummary } from "./index.js";

interface DlqFlags {
  nats?: string;
  /** Set when run as `lanemap ops dlq ... --data-dir`. */
  dataDir?: string;
  json?: boolean;
}

interface RetryFlags extends DlqFlags {
  all?: boolean;
  seq?: string[];
}

/** Some dead letters could not be retried. */
export class DlqRetryError extends LanemapError {
  constructor(failed: number, total: number) {
    super("DLQ_RETRY", `${failed} of ${total} dead letter(s) could not be retried (see the lines above)`);
  }
}

function oneLine(d: DeadLetter): string {
  const tile = d.tileId ?? "(no tile id)";
  const where = d.object ? `object ${d.object}` : `${d.bytes} bytes`;
  return `${String(d.seq).padStart(6)}  ${d.at}  ${d.cell}  ${tile}  seq ${d.originalSeq}  ${d.code}  ${d.deliveries}x  ${where}\n        ${d.reason}`;
}

/**
 * Runs `fn` with the dead-letter queue. `retry` writes (it republishes to the ingest stream), so it
 * brings the streams up to config first; `list` only reads, and creates or updates nothing: a
 * read-only command must not rewrite a stream's limits or replicas from whatever environment the
 * operator ran it in (issue 14, F4), nor wait for the meta leader a node loss is re-electing.
 */
async function withQueue<T>(
  flags: DlqFlags,
  mode: "read" | "write",
  fn: (q: DeadLetterQueue, logger: Logger) => Promise<T>,
): Promise<T> {
  const config = cliConfig({ LANEMAP_DATA_DIR: flags.dataDir });
  const logger = await cliLogger(config.logLevel, { role: "dlq", pid: process.pid });
  const nc = await connectForCli(config, flags.nats, "lanemap-dlq");
  try {
    if (mode === "read") return await fn(await DeadLetterQueue.open(nc), logger);
    await ensureStreams(await jetstreamManager(nc), config.stream, config.storage.replicas);
    // A retry publishes to the ingest stream: not to a recreated one (sequences from 1 again).
    await refuseIngestStreamBehind(
      nc,
      {
        views: await openPublishedViews(config, nc, logger),
        archive: await openTileArchive(config, nc, logger),
      },
      { what: "dlq retry", logger },
    );
    const tiles = await ensureTileObjects(nc, config.stream, config.storage.replicas);
    return await fn(await DeadLetterQueue.open(nc, tiles), logger);
  } finally {
    await drainWithin(nc);
  }
}

function sequences(values: string[] | undefined): number[] {
  return (values ?? [])
    .flatMap((v) => v.split(","))
    .map((v) => {
      const n = Number(v.trim());
      if (!Number.isInteger(n) || n <= 0) throw new UsageError(`--seq takes positive integers, got "${v}"`);
      return n;
    });
}

/** `lanemap dlq list|retry`: reads the speed lane's dead letters and sends them back for another try. */
export function registerDlq(program: Command): void {
  const dlq = program.command("dlq").description(commandSummary("dlq"));

  dlq
    .command("list")
    .description("list dead letters, oldest first")
    .option("--json", "print JSON")
    .option("--nats <url>", "NATS server (default NATS_URL, else the embedded server of `lanemap start`)")
    .action(async (flags: DlqFlags) => {
      const letters = await withQueue(flags, "read", (q, logger) => q.list({ logger }));
      if (flags.json) {
        console.log(JSON.stringify(letters, null, 2));
        return;
      }
      if (letters.length === 0) {
        console.log("no dead letters");
        return;
      }
      console.log("   seq  dead at  cell  tile  original seq  code  deliveries  payload\n        reason");
      for (const d of letters) console.log(oneLine(d));
      console.log(
        `\n${letters.length} dead letter(s); \`lanemap dlq retry --seq N\` sends one back to the ingest stream`,
      );
    });

  dlq
    .command("retry")
    .description("republish dead letters to the ingest stream (new message id) and remove them from the DLQ")
    .option("--all", "retry every dead letter")
    .option("--seq <n...>", "dead-letter sequence(s) to retry (see `lanemap dlq list`)")
    .option("--json", "print one JSON line per dead letter")
    .option("--nats <url>", "NATS server (default NATS_URL, else the embedded server of `lanemap start`)")
    .action(async (flags: RetryFlags) => {
      const wanted = sequences(flags.seq);
      if (flags.all && wanted.length > 0) throw new UsageError("give either --all or --seq, not both");
      if (!flags.all && wanted.length === 0)
        throw new UsageError("say which dead letters: --all or --seq N...");
      let failed = 0;
      let total = 0;
      await withQueue(flags, "write", async (q, logger) => {
        const seqs = flags.all ? (await q.list({ logger })).map((d) => d.seq) : wanted;
        total = seqs.length;
        for (const seq of seqs) {
          try {
            const { ingestSeq, letter } = await q.retry(seq);
            if (flags.json) console.log(JSON.stringify({ seq, ok: true, ingestSeq, tileId: letter.tileId }));
            else
              console.log(
                `retried dead letter ${seq} (tile ${letter.tileId ?? "?"}, ${letter.code}) as ingest seq ${ingestSeq}`,
              );
          } catch (err) {
            failed++;
            if (flags.json) console.log(JSON.stringify({ seq, ok: false, reason: describeError(err) }));
            else console.error(`lanemap: cannot retry dead letter ${seq}: ${errorLine(err)}`);
          }
        }
      });
      if (!flags.json && total === 0) console.log("no dead letters");
      if (failed > 0) throw new DlqRetryError(failed, total);
    });
}
