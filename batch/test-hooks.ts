/**
 * Test hooks of the batch runner, read from the environment by the runner only (never by another
 * component) so that crash tests can SIGKILL a real `lanemap batch run` at a known point:
 *
 *   LANEMAP_TEST_TILE_DELAY_MS     each worker sleeps this long before classifying a tile
 *   LANEMAP_TEST_PUBLISH_DELAY_MS  the run pauses this long after the manifest is written into
 *                                  the staging folder and before the folder is renamed into place
 *
 * Both default to 0 and must not be set in production.
 */

/** Delays the runner inserts for tests. */
export interface BatchTestHooks {
  readonly tileDelayMs: number;
  readonly publishDelayMs: number;
}

function ms(value: string | undefined): number {
  const n = Number(value ?? "0");
  return Number.isFinite(n) && n > 0 ? Math.floor(n) : 0;
}

/** The hooks set in `env`. */
export function testHooksFromEnv(env: Readonly<Record<string, string | undefined>>): BatchTestHooks {
  return {
    tileDelayMs: ms(env["LANEMAP_TEST_TILE_DELAY_MS"]),
    publishDelayMs: ms(env["LANEMAP_TEST_PUBLISH_DELAY_MS"]),
  };
}
