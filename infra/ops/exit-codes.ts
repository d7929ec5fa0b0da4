/**
 * The exit codes of every `lanemap ops` command, in one place: scripts and cron jobs branch on
 * them, so they are part of the operator contract (README.md of this folder, `lanemap ops --help`).
 */
export const OPS_EXIT = {
  /** Done; every check passed. */
  ok: 0,
  /** An error: NATS or the data directory unusable, a refused operation (one line on stderr). */
  error: 1,
  /** Bad usage: unknown option, malformed value. */
  usage: 2,
  /** Ran fine, and a check failed: a cell over the diff threshold. */
  checkFailed: 3,
} as const;

/** The exit-code table as `lanemap ops --help` prints it. */
export const OPS_EXIT_HELP = `
Exit codes (every ops command):
  0  ok; every check passed
  1  error (NATS unreachable where required, no batch view, a refused operation); one line on stderr
  2  usage error (unknown option, malformed value)
  3  ran fine but a check failed: \`ops diff\` found a cell over --threshold

Every command takes --json, --data-dir DIR and --nats URL. The ones that change state (expire,
replay, dlq retry, views rollback, model activate) take --dry-run: print what they would do, change
nothing, exit 0 (or 1 when the real run would be refused). Runbook: infra/ops/README.md.`;
