import type { Command } from "commander";
import { redactNatsUrl } from "../../../shared/adapters/nats/index.js";
import { configReference, parseConfig } from "../../../shared/index.js";
import { commandSummary } from "./index.js";

/** `lanemap config`: every variable with its default, and the effective values (validated). */
export function registerConfig(program: Command): void {
  program
    .command("config")
    .description(commandSummary("config"))
    .option("--json", "print JSON")
    .action((opts: { json?: boolean }) => {
      // Throws a ConfigError naming every bad variable: the same check every role runs at start.
      const effective = parseConfig();
      const shown = {
        ...effective,
        operatorToken: effective.operatorToken ? "(set)" : undefined,
        natsUrl: effective.natsUrl === undefined ? undefined : redactNatsUrl(effective.natsUrl),
      };
      if (opts.json) {
        console.log(JSON.stringify({ reference: configReference(), effective: shown }, null, 2));
        return;
      }
      for (const v of configReference()) {
        console.log(`${v.name}${v.default === undefined ? "" : ` (default ${v.default})`}\n    ${v.doc}`);
      }
      console.log("\neffective:\n" + JSON.stringify(shown, null, 2));
    });
}
