/**
 * Test hooks of the batch runner, parsed from the environment once by the composition root
 * (infra/cli/test-hooks.ts) and passed in, so that crash tests can SIGKILL a real
 * `lanemap batch run` at a known point:
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

/** No delays: what a runner uses unless its composition root passes hooks. */
export const NO_TEST_HOOKS: BatchTestHooks = Object.freeze({ tileDelayMs: 0, publishDelayMs: 0 });
