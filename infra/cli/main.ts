/**
 * The `lanemap` CLI: one composition root per command. Commands live in ./commands/, one file each,
 * and register themselves on the program; errors end as one line on stderr and a non-zero exit.
 */
import { Command, CommanderError } from "commander";
import { LanemapError, describeError } from "../../shared/index.js";
import { UsageError } from "./usage.js";
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
  } else if (err instanceof UsageError) {
    console.error(`lanemap: ${err.message}`);
    process.exitCode = 2;
  } else if (err instanceof LanemapError) {
    console.error(`lanemap: ${err.message}`);
    process.exitCode = 1;
  } else {
    console.error(`lanemap: ${describeError(err)}`);
    if (process.env["LANEMAP_DEBUG"]) console.error(err);
    process.exitCode = 1;
  }
}
