import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import pino from "pino";
import { Registry } from "prom-client";
import { FileModelRegistry } from "../../shared/adapters/archive/index.js";
import type { ModelRegistry } from "../../shared/index.js";
import { ActiveModel, EventHub, createSpeedMetrics, type SpeedEvent } from "../../speed/index.js";
import { tinyModel } from "../helpers/models.js";

/** The registry on files, whose artifact reads time out the first `failures` times, as a broker's do while a node is down. */
function timingOut(registry: FileModelRegistry, failures: number): ModelRegistry & { reads: number } {
  let reads = 0;
  return new Proxy(registry, {
    get(target, key) {
      if (key === "reads") return reads;
      if (key === "artifact")
        return async (version: string) => {
          if (reads++ < failures) {
            const err = new Error("timeout");
            err.name = "TimeoutError";
            throw err;
          }
          return target.artifact(version);
        };
      const v: unknown = Reflect.get(target, key);
      return typeof v === "function" ? v.bind(target) : v;
    },
  }) as unknown as ModelRegistry & { reads: number };
}

test("an activated model whose load timed out is loaded on a retry, and meanwhile it counts as loading, not as none activated", async () => {
  const dir = await mkdtemp(join(tmpdir(), "lanemap-active-"));
  try {
    const files = await FileModelRegistry.open(dir);
    const model = tinyModel(["forest"]);
    await files.put(model);
    await files.activate(model.version);
    const registry = timingOut(files, 1);
    const events = new EventHub<SpeedEvent>();
    const active = await ActiveModel.start(
      registry,
      async () => undefined,
      pino({ level: "silent" }),
      events,
      createSpeedMetrics(new Registry()),
    );
    try {
      assert.equal(active.current, null, "the first load timed out");
      assert.equal(active.loading, true);
      const ready = await active.whenReady(AbortSignal.timeout(5_000));
      assert.equal(ready.version, model.version);
      assert.equal(active.loading, false);
      assert.equal(registry.reads, 2);
    } finally {
      active.stop();
      events.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
