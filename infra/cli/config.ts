import { parseConfig, unknownVariables, type Config } from "../../shared/index.js";

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

/**
 * Warns on stderr, once per name, about each `LANEMAP_*` variable of `env` that nothing reads,
 * naming the closest known one: a misspelt variable would otherwise leave its default in force
 * without a word (shared/config.ts `unknownVariables`).
 */
export function warnUnknownVariables(env: Readonly<Record<string, string | undefined>>): void {
  for (const u of unknownVariables(env))
    console.error(
      `lanemap: warning: ${u.name} is not a lanemap variable and is ignored` +
        (u.suggestion ? ` (did you mean ${u.suggestion}?)` : " (`lanemap config` lists them)"),
    );
}
