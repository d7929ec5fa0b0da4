/**
 * Test hooks, parsed once here — by the composition root, from the environment — and handed to
 * the lanes as plain values; no lane reads process.env for them. Fault and crash tests set them
 * to SIGKILL a real process at a known point; they must not be set in production:
 *
 *   LANEMAP_TEST_TILE_DELAY_MS     every tile waits this long before it is classified
 *                                  (batch: in its worker; speed: after it is registered)
 *   LANEMAP_TEST_PUBLISH_DELAY_MS  a batch run pauses this long after its manifest is written into
 *                                  the staging folder, before the folder is renamed into place
 */
import type { BatchTestHooks } from "../../batch/index.js";
import { UsageError } from "./usage.js";

/** The hooks set in `env` (0 = off). @throws UsageError when one is not a number of ms. */
export function parseTestHooks(env: Readonly<Record<string, string | undefined>>): BatchTestHooks {
  const ms = (name: string): number => {
    const raw = env[name];
    if (raw === undefined || raw === "") return 0;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < 0) throw new UsageError(`${name} must be a number of ms, got "${raw}"`);
    return Math.floor(n);
  };
  return {
    tileDelayMs: ms("LANEMAP_TEST_TILE_DELAY_MS"),
    publishDelayMs: ms("LANEMAP_TEST_PUBLISH_DELAY_MS"),
  };
}
