import { ERROR_CODES } from "../../shared/index.js";

/**
 * The exit codes of every `lanemap ops` command, in one place: scripts and cron jobs branch on
 * them, so they are part of the operator contract (README.md of this folder, `lanemap ops --help`).
 * Errors exit as the error table says (shared/errors.ts); only `checkFailed` is ops' own.
 */
export const OPS_EXIT = {
  /** Done; every check passed. */
  ok: 0,
  /** An error: NATS or the data directory unusable, a refused operation (one line on stderr). */
  error: ERROR_CODES.INTERNAL.exit,
  /** Bad usage: unknown option, malformed value. */
  usage: ERROR_CODES.USAGE.exit,
  /**
   * Ran fine, and a check failed: a cell over the diff threshold; `ops status` found the cluster
   * degraded (a node offline, a replica behind, a stream without a leader, a copy diverged);
   * `ops repair-replicas` left copies that disagree or a replica unplaced (a repair it tried and
   * failed is an error: exit 1).
   */
  checkFailed: 3,
} as const;

/** The exit-code table as `lanemap ops --help` prints it. */
export const OPS_EXIT_HELP = `
Exit codes (every ops command):
  ${OPS_EXIT.ok}  ok; every check passed
  ${OPS_EXIT.error}  error (NATS unreachable where required, no batch view, a refused operation); one line on stderr
  ${OPS_EXIT.usage}  usage error (unknown option, malformed value)
  ${OPS_EXIT.checkFailed}  ran fine but a check failed: \`ops diff\` found a cell over --threshold, or
     \`ops status\` found NATS degraded (a node offline, a replica behind, a stream without a leader,
     a node's copy diverged, a replica unplaced, the ingest stream behind lanemap's record), or
     \`ops repair-replicas\` left copies that still disagree or a replica unplaced (a repair it
     tried and failed: 1)

Every command takes --json, --data-dir DIR and --nats URL. The ones that change state (expire,
replay, repair-replicas, advance-ingest-stream, dlq retry, views rollback, model activate) take
--dry-run: print what they would do, change nothing, exit 0 (or 1 when the real run would be
refused). Runbook: infra/ops/README.md.`;
