import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { CommanderError, type Command } from "commander";
import type { Logger } from "pino";
import {
  DeadLetterQueue,
  LIVE_BUCKET,
  LiveView,
  kvStreamName,
  NatsModelRegistry,
  connectNats,
  redactNatsUrl,
  ensureStreams,
  drainWithin,
} from "../../../shared/adapters/nats/index.js";
import { LanemapError, describeError, type Config } from "../../../shared/index.js";
import {
  OPS_EXIT,
  OPS_EXIT_HELP,
  advanceIngest,
  collectStatus,
  diffLanes,
  expireAbsorbed,
  formatAdvanceIngest,
  formatDiff,
  formatDiffCsv,
  formatExpire,
  formatReplay,
  formatRepairReplicas,
  formatStatus,
  previewDlqRetry,
  previewModelActivate,
  previewRollback,
  repairExitCode,
  repairFailures,
  repairReplicas,
  replayIngest,
  type NatsAccess,
} from "../../ops/index.js";
import { openPublishedViews } from "../../platform/views.js";
import { openTileArchive } from "../../platform/storage.js";
import { refuseIngestStreamBehind } from "../../platform/ingest-clock.js";
import { connectForCli, natsUrlFor } from "../nats-connect.js";
import { UsageError, positiveInt } from "../usage.js";
import { cliConfig } from "../config.js";
import { cliLogger } from "../logger.js";
import { registerDlq } from "./dlq.js";
import { registerModel } from "./model.js";
import { registerViews } from "./views.js";
import { commandSummary } from "./index.js";

interface OpsFlags {
  json?: boolean;
  dataDir?: string;
  nats?: string;
}

/** `ops status --require-nats` and NATS is not there. */
export class NatsRequiredError extends LanemapError {
  constructor(reason: string) {
    super("NATS_CONNECT", `NATS is unavailable (--require-nats): ${reason}`);
  }
}

/**
 * `ops status` reported something the deployment is configured to use as UNAVAILABLE: the batch
 * view store (LANEMAP_STORAGE=nats unreachable), or a NATS server that is configured (NATS_URL,
 * --nats, a running `lanemap start`) and does not answer. A monitoring script must not read exit 0.
 */
export class StatusUnavailableError extends LanemapError {
  constructor(what: readonly string[]) {
    super("NATS_CONNECT", `ops status: ${what.join(" and ")} UNAVAILABLE (see above)`);
  }
}

/**
 * A dry run has printed what it would do: ends the command with exit code 0 before the real action
 * runs, the way commander ends `--help` (main.ts turns a CommanderError into its exit code).
 */
class DryRunComplete extends CommanderError {
  constructor() {
    super(OPS_EXIT.ok, "lanemap.dryRun", "dry run complete");
  }
}

const NATS_HELP = "NATS server (default NATS_URL, else the embedded server of `lanemap start`)";
const DATA_DIR_HELP = "data directory (default: LANEMAP_DATA_DIR, else ./data)";

/** --json, --data-dir and --nats: what every ops command takes. */
function common(c: Command): Command {
  return c
    .option("--json", "print JSON")
    .option("--data-dir <dir>", DATA_DIR_HELP)
    .option("--nats <url>", NATS_HELP);
}

async function setup(flags: OpsFlags): Promise<{ config: Config; logger: Logger }> {
  const config = cliConfig({ LANEMAP_DATA_DIR: flags.dataDir });
  // Logs go to stderr, so stdout stays the report (JSON or CSV a script can parse).
  const logger = await cliLogger(config.logLevel, { role: "ops" });
  return { config, logger };
}

/** NATS for `status`: a connection, or why there is none (never throws). */
async function natsAccess(config: Config, flag: string | undefined, logger: Logger): Promise<NatsAccess> {
  let url: string;
  try {
    url = await natsUrlFor(config, flag);
  } catch (err) {
    return { nc: null, url: null, error: describeError(err) };
  }
  try {
    const nc = await connectNats({ servers: url, name: "lanemap-ops", logger, timeoutMs: 5_000 });
    return { nc, url: redactNatsUrl(url) };
  } catch (err) {
    return { nc: null, url: redactNatsUrl(url), error: describeError(err) };
  }
}

async function withNats<T>(
  config: Config,
  flags: OpsFlags,
  logger: Logger,
  fn: (nc: NatsConnection) => Promise<T>,
): Promise<T> {
  const nc = await connectForCli(config, flags.nats, "lanemap-ops", logger);
  try {
    return await fn(nc);
  } finally {
    await drainWithin(nc);
  }
}

/** Runs `fn` with an AbortSignal that Ctrl-C / SIGTERM fires (the operation stops between steps). */
async function interruptible<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  const onSignal = () => ac.abort(new LanemapError("CANCELLED", "interrupted"));
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    return await fn(ac.signal);
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

function threshold(value: string): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n < 0 || n > 1)
    throw new UsageError(`--threshold must be a share between 0 and 1 (e.g. 0.1 = 10 %), got "${value}"`);
  return n;
}

function seqs(values: string[] | undefined): number[] {
  return (values ?? []).flatMap((v) => v.split(",")).map((v) => positiveInt("--seq", v.trim(), 0));
}

const child = (parent: Command, name: string): Command => {
  const c = parent.commands.find((x) => x.name() === name);
  // Only a renamed borrowed command can get here: a wiring mistake, caught by any `lanemap` run.
  if (!c) throw new LanemapError("INTERNAL", `the ${parent.name()} command has no ${name} subcommand`);
  return c;
};

/** Adds whichever of --json, --data-dir, --nats a borrowed command lacks. */
function completeOptions(c: Command, natsNote?: string): void {
  const has = (flag: string) => c.options.some((o) => o.long === flag);
  if (!has("--json")) c.option("--json", "print JSON");
  if (!has("--data-dir")) c.option("--data-dir <dir>", DATA_DIR_HELP);
  if (!has("--nats")) c.option("--nats <url>", natsNote ?? NATS_HELP);
}

/**
 * `ops dlq|views|model`: the existing commands themselves (one implementation), registered under
 * `ops` with the options every ops command takes and a `--dry-run` for the destructive ones.
 */
function borrowCommands(ops: Command): void {
  registerDlq(ops);
  registerViews(ops);
  registerModel(ops);
  const dlq = child(ops, "dlq");
  const views = child(ops, "views");
  const model = child(ops, "model");
  // Their --data-dir (to find the embedded nats-server) reaches their config as an override.
  for (const group of [dlq, model]) for (const c of group.commands) completeOptions(c);
  for (const c of views.commands) completeOptions(c, "accepted for uniformity; batch views are files");

  child(dlq, "retry")
    .option("--dry-run", "list the dead letters that would be retried; change nothing")
    .hook("preAction", async (cmd) => {
      const flags = cmd.opts() as OpsFlags & { dryRun?: boolean; all?: boolean; seq?: string[] };
      if (!flags.dryRun) return;
      const wanted = seqs(flags.seq);
      if (flags.all && wanted.length > 0) throw new UsageError("give either --all or --seq, not both");
      if (!flags.all && wanted.length === 0)
        throw new UsageError("say which dead letters: --all or --seq N...");
      const { config, logger } = await setup(flags);
      const preview = await withNats(config, flags, logger, async (nc) => {
        await ensureStreams(await jetstreamManager(nc), config.stream, config.storage.replicas);
        return previewDlqRetry(await DeadLetterQueue.open(nc), flags.all ? { all: true } : { seqs: wanted });
      });
      if (flags.json) console.log(JSON.stringify({ dryRun: true, ...preview }, null, 2));
      else {
        for (const d of preview.letters)
          console.log(
            `would retry dead letter ${d.seq} (tile ${d.tileId ?? "?"}, ${d.code}) to ${d.originalSubject}`,
          );
        for (const s of preview.missing) console.log(`dead letter ${s} is not in the DLQ`);
        console.log(`dry run: ${preview.letters.length} dead letter(s) would be retried`);
      }
      // The real retry fails on these (exit 1); so does its dry run.
      if (preview.missing.length > 0)
        throw new LanemapError(
          "DLQ_NOT_FOUND",
          `${preview.missing.length} of ${wanted.length} dead letter(s) are not in the DLQ: ${preview.missing.join(", ")}`,
        );
      throw new DryRunComplete();
    });

  child(views, "rollback")
    .option("--dry-run", "check the version and show the switch; leave CURRENT alone")
    .hook("preAction", async (cmd) => {
      const flags = cmd.opts() as OpsFlags & { dryRun?: boolean };
      if (!flags.dryRun) return;
      const { config } = await setup(flags);
      const p = await previewRollback(config.dataDir, String(cmd.args[0] ?? ""));
      if (flags.json) console.log(JSON.stringify({ dryRun: true, ...p }, null, 2));
      else
        console.log(
          `dry run: CURRENT ${p.from ?? "(none)"} -> ${p.to} (watermark ${p.watermark}, model ${p.modelVersion}, ${p.tiles} tiles)`,
        );
      throw new DryRunComplete();
    });

  child(model, "activate")
    .option("--dry-run", "validate the file or version and show the switch; activate nothing")
    .hook("preAction", async (cmd) => {
      const flags = cmd.opts() as OpsFlags & { dryRun?: boolean };
      if (!flags.dryRun) return;
      const target = String(cmd.args[0] ?? "");
      const { config, logger } = await setup(flags);
      const p = await withNats(config, flags, logger, async (nc) =>
        previewModelActivate(await NatsModelRegistry.open(nc), target),
      );
      if (flags.json) console.log(JSON.stringify({ dryRun: true, ...p }, null, 2));
      else
        console.log(
          `dry run: current model ${p.from ?? "(none)"} -> ${p.version}${p.upload ? " (would be uploaded)" : ""}`,
        );
      throw new DryRunComplete();
    });
}

/**
 * `lanemap ops ...`: the operator's reconciliation scripts (status, diff, expire, replay) and the
 * dead-letter, view and model commands under one roof. See infra/ops/README.md.
 */
export function registerOps(program: Command): void {
  const ops = program.command("ops").description(commandSummary("ops")).addHelpText("after", OPS_EXIT_HELP);
  // Commander's own usage errors (unknown option, missing argument) exit 2 like ours; subcommands
  // created below inherit this.
  ops.exitOverride((err) => {
    throw err.exitCode === OPS_EXIT.ok ? err : new CommanderError(OPS_EXIT.usage, err.code, err.message);
  });

  common(ops.command("status"))
    .description(
      "batch versions and CURRENT, live view size and lag, ingest stream, consumer lag, DLQ, current model",
    )
    .option(
      "--require-nats",
      "exit 1 when NATS is unavailable, even when none is configured (a configured NATS or view store that is unavailable always exits 1)",
    )
    .action(async (flags: OpsFlags & { requireNats?: boolean }) => {
      const { config, logger } = await setup(flags);
      const access = await natsAccess(config, flags.nats, logger);
      try {
        const s = await collectStatus({ dataDir: config.dataDir, nats: access, logger, config });
        console.log(flags.json ? JSON.stringify(s, null, 2) : formatStatus(s));
        if (!s.nats.ok && flags.requireNats) throw new NatsRequiredError(s.nats.error);
        // Exit 1 when what is configured is unavailable; NATS merely not configured stays exit 0.
        const down = [
          ...(s.batch.error === undefined ? [] : ["batch"]),
          ...(!s.nats.ok && s.nats.url !== null ? ["nats"] : []),
        ];
        if (down.length > 0) throw new StatusUnavailableError(down);
        // Everything answers but a stream lacks a replica: a check failed, not an error (exit 3).
        if (s.health === "degraded") {
          console.error(`lanemap: ops status: DEGRADED: ${s.degraded.join("; ")}`);
          process.exitCode = OPS_EXIT.checkFailed;
        }
      } finally {
        if (access.nc) await drainWithin(access.nc);
      }
    });

  common(ops.command("repair-replicas"))
    .description(
      "replace the copies of lanemap streams that diverged from the others (ops status names them) with fresh ones from the leader; needs LANEMAP_NATS_MONITOR_URLS",
    )
    .option("--stream <name>", "only this stream (e.g. OBJ_lanemap-views)")
    .option("--dry-run", "list the copies that would be replaced; change nothing")
    .option(
      "--trust-leader",
      "when no majority of a stream's copies agree, replace the others from the leader's (what only they held is lost)",
    )
    .action(async (flags: OpsFlags & { stream?: string; dryRun?: boolean; trustLeader?: boolean }) => {
      const { config, logger } = await setup(flags);
      const report = await withNats(config, flags, logger, (nc) =>
        repairReplicas({
          nc,
          monitorUrls: config.storage.monitorUrls,
          ...(flags.stream === undefined ? {} : { stream: flags.stream }),
          dryRun: flags.dryRun ?? false,
          trustLeader: flags.trustLeader ?? false,
          replicas: config.storage.replicas,
          settleMs: config.storage.replicaSettleMs,
          logger,
        }),
      );
      console.log(flags.json ? JSON.stringify(report, null, 2) : formatRepairReplicas(report));
      // A repair tried and failed is an error (its line on stderr: what the stream was left at and
      // the command to run again); copies still diverged, a replica still unplaced, or a node's
      // copies not compared are a check that failed, as in ops status.
      const failures = repairFailures(report);
      if (failures.length > 0) throw new LanemapError("NATS_SETUP", failures.join("; "));
      process.exitCode = repairExitCode(report);
    });

  common(ops.command("diff"))
    .description(
      "per cell, class-share differences between the current batch view and the live view (absorbed results included); exit 3 over the threshold",
    )
    .option("--threshold <share>", "largest tolerated class-share difference, 0..1", "0.1")
    .option("--format <format>", "text, json or csv (default text; --json = --format json)")
    .option(
      "--any-tile",
      "also compare cells without a live result of the batch's tile, with their newest one (change on the ground counts too)",
    )
    .action(async (flags: OpsFlags & { threshold: string; format?: string; anyTile?: boolean }) => {
      const limit = threshold(flags.threshold);
      if (flags.format !== undefined && !["text", "json", "csv"].includes(flags.format))
        throw new UsageError(`--format must be text, json or csv, got "${flags.format}"`);
      if (flags.json && flags.format !== undefined && flags.format !== "json")
        throw new UsageError(`--json contradicts --format ${flags.format}`);
      const format = flags.json ? "json" : (flags.format ?? "text");
      const { config, logger } = await setup(flags);
      const report = await withNats(config, flags, logger, async (nc) =>
        diffLanes({
          views: await openPublishedViews(config, nc, logger),
          dataDir: config.dataDir,
          live: await LiveView.open(nc),
          threshold: limit,
          anyTile: flags.anyTile ?? false,
          logger,
        }),
      );
      if (format === "json") console.log(JSON.stringify(report, null, 2));
      else if (format === "csv") process.stdout.write(formatDiffCsv(report));
      else console.log(formatDiff(report));
      if (report.summary.exceeding > 0) process.exitCode = OPS_EXIT.checkFailed;
    });

  common(ops.command("expire"))
    .description(
      "remove live results absorbed by the current batch view (ingest seq <= its watermark); idempotent, safe while workers run",
    )
    .option("--dry-run", "list what would be removed; change nothing")
    .action(async (flags: OpsFlags & { dryRun?: boolean }) => {
      const { config, logger } = await setup(flags);
      const report = await interruptible((signal) =>
        withNats(config, flags, logger, async (nc) =>
          expireAbsorbed({
            views: await openPublishedViews(config, nc, logger),
            live: await LiveView.open(nc),
            dryRun: flags.dryRun ?? false,
            logger,
            signal,
          }),
        ),
      );
      console.log(flags.json ? JSON.stringify(report, null, 2) : formatExpire(report));
    });

  common(ops.command("replay"))
    .description(
      "republish stored ingest messages FROM..TO (fresh message ids) so the speed workers re-drive them",
    )
    .option("--from-seq <n>", "first stream sequence of LANEMAP_TILES to replay (required)")
    .option("--to-seq <m>", "last one, inclusive (default: the stream's last sequence now)")
    .option("--dry-run", "list the messages that would be republished; publish nothing")
    .action(async (flags: OpsFlags & { fromSeq?: string; toSeq?: string; dryRun?: boolean }) => {
      if (flags.fromSeq === undefined) throw new UsageError("say where to start: --from-seq N");
      const fromSeq = positiveInt("--from-seq", flags.fromSeq, 1);
      const toSeq = flags.toSeq === undefined ? undefined : positiveInt("--to-seq", flags.toSeq, 1);
      if (toSeq !== undefined && toSeq < fromSeq)
        throw new UsageError(`--to-seq ${toSeq} is before --from-seq ${fromSeq}`);
      const { config, logger } = await setup(flags);
      const report = await interruptible((signal) =>
        withNats(config, flags, logger, async (nc) => {
          // The archive's tombstones: the replay leaves out what `archive remove` took out since.
          const archive = await openTileArchive(config, nc, logger);
          // It republishes to the ingest stream: not to a recreated one (sequences from 1 again).
          await refuseIngestStreamBehind(
            nc,
            { views: await openPublishedViews(config, nc, logger), archive },
            { what: "ops replay", logger },
          );
          const removals = [];
          for await (const r of archive.removals()) removals.push(r);
          return replayIngest({
            nc,
            removals,
            fromSeq,
            ...(toSeq === undefined ? {} : { toSeq }),
            dryRun: flags.dryRun ?? false,
            logger,
            signal,
          });
        }),
      );
      console.log(flags.json ? JSON.stringify(report, null, 2) : formatReplay(report));
    });

  common(ops.command("advance-ingest-stream"))
    .description(
      "after LANEMAP_TILES was deleted and recreated (INGEST_STREAM_BEHIND): set its first sequence past every sequence lanemap recorded, while it is empty; idempotent",
    )
    .option("--dry-run", "say what it would set; change nothing")
    .option(
      "--discard-stored",
      "also when the stream already holds messages: they are deleted (publish their tiles again after)",
    )
    .action(async (flags: OpsFlags & { dryRun?: boolean; discardStored?: boolean }) => {
      const { config, logger } = await setup(flags);
      const report = await withNats(config, flags, logger, async (nc) => {
        const jsm = await jetstreamManager(nc);
        // The live view's sequences count too; a bucket nobody created is no live result.
        const hasLive = await jsm.streams.info(kvStreamName(LIVE_BUCKET)).then(
          () => true,
          () => false,
        );
        return advanceIngest({
          nc,
          config,
          views: await openPublishedViews(config, nc, logger),
          archive: await openTileArchive(config, nc, logger),
          ...(hasLive ? { liveEntries: await (await LiveView.open(nc)).list() } : {}),
          dryRun: flags.dryRun ?? false,
          discardStored: flags.discardStored ?? false,
          logger,
        });
      });
      console.log(flags.json ? JSON.stringify(report, null, 2) : formatAdvanceIngest(report));
    });

  borrowCommands(ops);
}
