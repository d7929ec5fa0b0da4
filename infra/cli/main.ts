/**
 * The `lanemap` CLI: one composition root per command. Commands live in ./commands/, one file each,
 * and register themselves on the program; errors end as one line on stderr and a non-zero exit.
 */
import { Command, CommanderError } from "commander";
import { LanemapError, describeError, exitCodeOf } from "../../shared/index.js";
import { commands } from "./commands/index.js";

// `lanemap ... | head` closes the pipe early: that is not an error.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") process.exit(0);
  throw err;
});

const program = new Command("lanemap")
  .description(
    "near-real-time thematic mapping of satellite imagery (batch + speed lanes, merged at query time)",
  )
  .showHelpAfterError("(run `lanemap --help` for usage)")
  .exitOverride();

for (const register of commands) register(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // Help and version output end here too, with exit code 0.
    process.exitCode = err.exitCode;
  } else {
    // The exit code is the error table's (shared/errors.ts): 2 for usage, 1 for the rest.
    console.error(`lanemap: ${err instanceof LanemapError ? err.message : describeError(err)}`);
    if (!(err instanceof LanemapError) && process.env["LANEMAP_DEBUG"]) console.error(err);
    process.exitCode = exitCodeOf(err);
  }
}
