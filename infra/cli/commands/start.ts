import type { Command } from "commander";
import { redactNatsUrl } from "../../../shared/adapters/nats/index.js";
import { parseConfig } from "../../../shared/index.js";
import { stopSignal } from "../stop.js";
import { startPlatform } from "../../platform/platform.js";
import { commandSummary } from "./index.js";
import { cliLogger } from "../logger.js";

/**
 * `lanemap start` (and `npm start`): the whole platform on embedded defaults. Logs go to stderr as
 * JSON lines; the URLs a person needs are printed on stdout. Ctrl-C / SIGTERM stop everything.
 */
export function registerStart(program: Command): void {
  program
    .command("start")
    .description(commandSummary("start"))
    .action(async () => {
      const config = parseConfig();
      const logger = await cliLogger(config.logLevel, { role: "start" });
      const platform = await startPlatform(config, logger);
      // Listening for the stop signal before saying "running": a supervisor may stop it at once.
      const stopping = stopSignal(logger);
      console.log(
        [
          "",
          "lanemap is running",
          `  web map         ${platform.url}/`,
          `  API             ${platform.url}/v1/tiles   (OpenAPI: ${platform.url}/openapi.json)`,
          `  STAC            ${platform.url}/stac`,
          `  metrics         ${platform.url}/metrics`,
          `  NATS            ${redactNatsUrl(platform.natsUrl)}${platform.embeddedNats ? " (embedded)" : ""}`,
          `  operator token  ${config.operatorToken ? "(from LANEMAP_OPERATOR_TOKEN)" : platform.operatorToken}`,
          `  model           ${platform.model.version} (${platform.model.classes.map((c) => c.name).join(", ")})`,
          `  data            ${config.dataDir}`,
          platform.feeding
            ? `  a fresh sample acquisition is fed every ${config.feedIntervalS} s (LANEMAP_FEED_INTERVAL_S)${
                config.feedMaxTiles > 0
                  ? `, up to ${config.feedMaxTiles} in this data dir (LANEMAP_FEED_MAX_TILES; ${platform.alreadyFed} fed before)`
                  : ""
              }`
            : config.feedIntervalS > 0
              ? "  no sample feed: the archive holds your own scenes; publish new ones with `lanemap ingest FILE...`"
              : "  feeding disabled (LANEMAP_FEED_INTERVAL_S=0)",
          "Ctrl-C stops everything.",
          "",
        ].join("\n"),
      );
      // Everything closes in order, the whole within STOP_DEADLINE_MS (stop.ts). The ingest stream
      // deleted or recreated under the running speed worker stops everything too: exit 1, its line.
      const failure = await Promise.race([
        stopping.then(() => null),
        platform.failed.catch((e: unknown) => e),
      ]);
      await platform.stop();
      if (failure !== null) throw failure;
      logger.info("stopped");
      logger.flush();
    });
}
