/**
 * A batch run's progress lines carry each field once (issue 14, F-E): `batch schedule`'s runs log
 * through the runner's own progress sink on the run's child logger, which binds `runId` already,
 * and its "batch progress: started/done" JSON lines had `"runId"` twice; `batch run`'s sink (on the
 * root logger) was clean. The raw lines are read as written, not parsed (a parser keeps one key).
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { pino } from "pino";
import { createBatchRunner, createProgressSink } from "../../batch/index.js";
import { makeDataDir, makeSampleSet, type SampleSet } from "./batch-fixture.js";

let set: SampleSet;
before(async () => {
  set = await makeSampleSet({ width: 2, height: 1, tileSize: 64, seed: 9 });
});
after(() => set?.dispose());

/** A logger whose raw JSON lines are kept in `raw`. */
function rawLogger(raw: string[]) {
  return pino({ level: "info" }, { write: (s: string) => void raw.push(s) });
}

/** How often `"key":` occurs in one raw JSON line. */
const occurrences = (line: string, key: string) => line.split(`"${key}":`).length - 1;

test("a run without a progress sink of its own (as `batch schedule` runs) writes `runId` once in each progress line", async () => {
  const d = await makeDataDir(set, "schedule-like");
  const raw: string[] = [];
  const report = await createBatchRunner(d.config(), { logger: rawLogger(raw) }).run({
    model: set.modelPath,
  });
  const lines = raw.filter((l) => l.includes('"msg":"batch progress'));
  assert.ok(lines.length >= 2, "started and done are logged");
  for (const line of lines) {
    assert.equal(occurrences(line, "runId"), 1, `one runId in ${line}`);
    assert.equal(JSON.parse(line).runId, report.runId, "the run's own id");
  }
});

test("a progress sink on a logger without the run's id (as `batch run` builds it) still names the run, once", () => {
  const raw: string[] = [];
  const sink = createProgressSink({ logger: rawLogger(raw) });
  const p = { runId: "20260101T000000Z-abcd", total: 2, done: 0, failed: 0 };
  sink.start(p);
  sink.stop({ ...p, done: 2 });
  assert.equal(raw.length, 2);
  for (const line of raw) assert.equal(occurrences(line, "runId"), 1, `one runId in ${line}`);
  assert.equal(JSON.parse(raw[0]!).runId, p.runId);
});
