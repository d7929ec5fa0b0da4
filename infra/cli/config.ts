import { parseConfig, type Config } from "../../shared/index.js";

/**
 * A command's configuration: the environment, with the command's flags layered over it as
 * overrides of the variables they stand for (`--data-dir` -> LANEMAP_DATA_DIR, `--port` -> PORT),
 * then validated once by `parseConfig`. Flags never write into `process.env`, so nothing a command
 * does leaks into another command, a worker thread or a test running in the same process.
 * Undefined overrides leave the environment's value.
 *
 * @throws ConfigError naming every variable (or flag) that fails validation.
 */
export function cliConfig(overrides: Readonly<Record<string, string | undefined>> = {}): Config {
  const env: Record<string, string | undefined> = { ...process.env };
  for (const [name, value] of Object.entries(overrides)) if (value !== undefined) env[name] = value;
  return parseConfig(env);
}
