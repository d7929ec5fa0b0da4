import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { workersSummary } from "../../infra/cli/commands/batch.js";

describe("the workers line of a batch run's summary", () => {
  test("a threads run counts its worker threads and the ones it replaced", () => {
    assert.equal(workersSummary({ workers: 4, replacedWorkers: 1 }), "workers 4 (1 replaced)");
  });

  test("a stream run says how many worker processes returned results and how many tiles were redelivered, never '0 replaced'", () => {
    const line = workersSummary({ workers: 3, replacedWorkers: 0, redeliveredTasks: 2 });
    assert.equal(
      line,
      "workers 3 lanemap worker process(es) returned results; 2 tile(s) redelivered after a worker was lost or missed its deadline",
    );
    assert.doesNotMatch(line, /replaced/);
  });
});
