/**
 * The logger of a CLI role. Human output (URLs, reports, tables) is the command's own lines on
 * stdout; structured logs go to stderr, so `lanemap ... | jq` and `lanemap ... > report.txt` see
 * only what the command prints. On a terminal the log lines are pretty-printed (pino-pretty,
 * loaded only then); otherwise they are pino's JSON lines, one per event, for journald and tests.
 */
import { pino, stdTimeFunctions, type Logger, type LoggerOptions } from "pino";

/** A pino logger at `level` writing to stderr, with `base` bound into every line. */
export async function cliLogger(level: string, base: Record<string, unknown>): Promise<Logger> {
  // `time` as RFC 3339 UTC ("2026-01-31T10:00:00.000Z"), the one format every answer uses, not epoch ms.
  const options: LoggerOptions = { level, base, timestamp: stdTimeFunctions.isoTime };
  if (process.stderr.isTTY) {
    const { default: pretty } = await import("pino-pretty");
    // Synchronous, like pino.destination(2): a line logged just before an exit is not lost.
    return pino(options, pretty({ destination: 2, sync: true, colorize: true, ignore: "pid,hostname" }));
  }
  return pino(options, pino.destination({ dest: 2, sync: true }));
}
