import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, rmSync, utimesSync, writeFileSync, existsSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterEach, beforeEach, describe, test } from "node:test";
import { pino } from "pino";
import { BatchRunningError, acquireBatchLock, batchLockPath } from "../../batch/index.js";

function captureLogger() {
  const lines: { msg: string; reason?: string }[] = [];
  const logger = pino({ level: "debug" }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  return { logger, lines };
}

/** The pid of a process that has already exited (so it is dead on this host). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], {
    encoding: "utf8",
  });
  return Number(r.stdout);
}

describe("the batch lock", () => {
  let dataDir: string;
  beforeEach(() => {
    dataDir = mkdtempSync(join(tmpdir(), "lanemap-lock-"));
  });
  afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

  test("a second acquisition while the first is held is refused with BATCH_RUN_ACTIVE naming the holder", () => {
    const { logger } = captureLogger();
    const first = acquireBatchLock(dataDir, { runId: "run-a", logger });
    try {
      assert.throws(
        () => acquireBatchLock(dataDir, { runId: "run-b", logger }),
        (err: unknown) =>
          err instanceof BatchRunningError && err.code === "BATCH_RUN_ACTIVE" && /run-a/.test(err.message),
      );
    } finally {
      first.releaseSync();
    }
    const again = acquireBatchLock(dataDir, { runId: "run-c", logger });
    assert.equal(again.owner.runId, "run-c");
    again.releaseSync();
    assert.equal(existsSync(batchLockPath(dataDir)), false);
  });

  test("the lock file records pid, host name, run id and start time", () => {
    const { logger } = captureLogger();
    const lock = acquireBatchLock(dataDir, { runId: "run-x", logger });
    const owner = JSON.parse(readFileSync(lock.path, "utf8"));
    assert.equal(owner.pid, process.pid);
    assert.equal(owner.hostname, hostname());
    assert.equal(owner.runId, "run-x");
    assert.ok(!Number.isNaN(Date.parse(owner.startedAt)));
    lock.releaseSync();
  });

  test("a lock left by a dead pid on this host is broken with a log line", () => {
    const path = batchLockPath(dataDir);
    mkdirSync(dirname(path), { recursive: true });
    const pid = deadPid();
    writeFileSync(
      path,
      JSON.stringify({ pid, hostname: hostname(), runId: "dead-run", startedAt: new Date().toISOString() }),
    );
    const { logger, lines } = captureLogger();
    const lock = acquireBatchLock(dataDir, { runId: "fresh", logger });
    assert.equal(JSON.parse(readFileSync(path, "utf8")).runId, "fresh");
    const warning = lines.find((l) => l.msg.startsWith("broke a stale batch lock"));
    assert.ok(warning, "a warning names the broken lock");
    assert.match(warning.msg, new RegExp(`pid ${pid} is dead`));
    lock.releaseSync();
  });

  test("a live lock of another host is respected until it is older than the staleness bound", () => {
    const path = batchLockPath(dataDir);
    mkdirSync(dirname(path), { recursive: true });
    const owner = {
      pid: 1,
      hostname: "elsewhere.example",
      runId: "remote",
      startedAt: new Date(Date.now() - 3 * 3600_000).toISOString(),
    };
    writeFileSync(path, JSON.stringify(owner));
    const { logger } = captureLogger();
    assert.throws(() => acquireBatchLock(dataDir, { runId: "local", logger }), BatchRunningError);
    const lock = acquireBatchLock(dataDir, { runId: "local", logger, staleAfterMs: 3600_000 });
    assert.equal(lock.owner.runId, "local");
    lock.releaseSync();
  });

  test("an unreadable lock is respected while fresh and broken once past the grace period", () => {
    const path = batchLockPath(dataDir);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, "");
    const { logger } = captureLogger();
    assert.throws(() => acquireBatchLock(dataDir, { runId: "r1", logger }), BatchRunningError);
    const old = (Date.now() - 120_000) / 1000;
    utimesSync(path, old, old);
    const lock = acquireBatchLock(dataDir, { runId: "r1", logger });
    lock.releaseSync();
  });

  test("releasing leaves a lock alone that another run has taken over", () => {
    const { logger } = captureLogger();
    const lock = acquireBatchLock(dataDir, { runId: "mine", logger });
    writeFileSync(
      lock.path,
      JSON.stringify({
        pid: process.pid,
        hostname: hostname(),
        runId: "theirs",
        startedAt: new Date().toISOString(),
      }),
    );
    lock.releaseSync();
    assert.equal(JSON.parse(readFileSync(lock.path, "utf8")).runId, "theirs");
  });
});
