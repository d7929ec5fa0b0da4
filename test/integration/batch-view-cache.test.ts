/**
 * A coordinator's local view cache follows retention (issue 14, F-D). With LANEMAP_STORAGE=nats
 * every run downloads the view it reuses into `<dataDir>/cache/views`, and only serving evicted
 * copies: after 22 runs a coordinator held 18 versions (53 MB) while the store kept 5. Now a run's
 * retention removes this machine's copies of the versions the store no longer keeps, and the next
 * run still reuses the current one. Real nats-server, real DuckDB.
 */
import assert from "node:assert/strict";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { createBatchRunner } from "../../batch/index.js";
import { NatsPublishedViews } from "../../shared/adapters/nats/index.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import { makeDataDir, makeSampleSet, type SampleSet } from "./batch-fixture.js";

let set: SampleSet;
before(async () => {
  set = await makeSampleSet({ width: 2, height: 2, tileSize: 64, seed: 13 });
});
after(() => set?.dispose());

test(
  "a coordinator's cache of downloaded views keeps only the versions the store keeps, and the next run still reuses the current one",
  { skip: natsMissing(), timeout: 180_000 },
  async () => {
    await using nats = await natsFixture();
    const d = await makeDataDir(set, "cache");
    const cacheDir = join(d.dataDir, "cache", "views");
    const views = await NatsPublishedViews.open(nats.nc, { cacheDir });
    const config = d.config({ LANEMAP_BATCH_KEEP: "2", LANEMAP_BATCH_WORKERS: "1" });
    const runner = createBatchRunner(config, { logger: d.logger, views });
    const evicted: string[] = [];
    try {
      for (let i = 1; i <= 5; i++) {
        const report = await runner.run({ model: set.modelPath });
        assert.equal(report.version, `v00000${i}`);
        if (i > 1) assert.equal(report.tiles.reused, 4, `run ${i} reuses every tile of the current view`);
        evicted.push(...report.retention.evictedLocal);
        const kept = (await views.list()).map((v) => v.name);
        assert.deepEqual(kept, i === 1 ? ["v000001"] : [`v00000${i - 1}`, `v00000${i}`]);
        const cached = (await readdir(cacheDir).catch(() => [])).filter((n) => !n.startsWith("."));
        assert.ok(
          cached.every((n) => kept.includes(n)),
          `after run ${i} the cache holds only kept versions: ${cached.join(", ")} (kept ${kept.join(", ")})`,
        );
      }
      assert.deepEqual(
        evicted.sort(),
        ["v000001", "v000002", "v000003"],
        "each copy evicted once it was retired",
      );
    } finally {
      await runner.close();
    }
  },
);
