/**
 * The `lanemap` CLI: one composition root per command. Commands live in ./commands/, one file each,
 * and register themselves on the program; errors end as one line on stderr and a non-zero exit.
 *
 * Only the command named on the command line is loaded (see ./commands/index.ts); every other one
 * is listed by name and summary. So `lanemap --help` and `--version` load commander alone, and
 * the error classes are loaded only when there is an error to report.
 */
import { Command, CommanderError } from "commander";
import { commands } from "./commands/index.js";
import { packageVersion } from "./version.js";

// `lanemap ... | head` closes the pipe early: that is not an error.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") process.exit(0);
  throw err;
});

/** The command a command line runs: its first word, or the one after `help`. */
function commandNamed(argv: readonly string[]): string | undefined {
  const words = argv.filter((a) => !a.startsWith("-"));
  return words[0] === "help" ? words[1] : words[0];
}

const program = new Command("lanemap")
  .description(
    "near-real-time thematic mapping of satellite imagery (batch + speed lanes, merged at query time)",
  )
  .version(packageVersion(), "-V, --version", "print lanemap's version")
  .showHelpAfterError("(run `lanemap --help` for usage)")
  .addHelpText("after", "\nRun `lanemap <command> --help` for a command's options.")
  .exitOverride();

// A misspelt LANEMAP_* variable would leave its default in force silently: one warning per name
// before a command runs (not for --help or --version, which load no configuration).
program.hook("preAction", async () => {
  const { warnUnknownVariables } = await import("./config.js");
  warnUnknownVariables(process.env);
});

/**
 * Runs the command line: loads the command it names, parses, and turns what is thrown into one
 * line on stderr and the exit code. An async function, not top-level await, so the file commands'
 * CommonJS bundles (see infra/bin/build.js) can hold it as well as the ES module bundle.
 */
async function main(argv: readonly string[]): Promise<void> {
  const named = commandNamed(argv.slice(2));
  for (const entry of commands) {
    if (entry.name === named) (await entry.load())(program);
    else program.command(entry.args ? `${entry.name} ${entry.args}` : entry.name).description(entry.summary);
  }
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version output end here too, with exit code 0. Commander's own refusals (unknown
      // command or option, missing argument) are usage errors: exit 2, as the error table's USAGE.
      process.exitCode = err.exitCode === 0 ? 0 : 2;
    } else {
      // The exit code is the error table's (shared/errors.ts): 2 for usage, 1 for the rest. The line
      // carries the code first: `lanemap: BATCH_RUN_ACTIVE: ...`.
      const { LanemapError, errorLine, exitCodeOf } = await import("../../shared/index.js");
      console.error(`lanemap: ${errorLine(err)}`);
      if (!(err instanceof LanemapError) && process.env["LANEMAP_DEBUG"]) console.error(err);
      process.exitCode = exitCodeOf(err);
      // A role whose start failed may hold what it opened before the failing step (a NATS
      // connection reconnecting forever, a cron timer): it must still exit, so a supervisor
      // (systemd's Restart=on-failure) sees the failure. stderr is synchronous here (pipes, files
      // and TTYs are on Linux), so the line above is out before the exit.
      process.exit();
    }
  }
}

// A command that fails to load rejects here, as the top-level await did: Node prints it, exit 1.
void main(process.argv);
