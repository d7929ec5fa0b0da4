import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, rmSync, utimesSync, writeFileSync, existsSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterEach, beforeEach, describe, test } from "node:test";
import { pino } from "pino";
import { BatchRunningError, acquireBatchLock, batchLockPath } from "../../batch/index.js";
import { processStartStamp } from "../../shared/index.js";
import { liveProcess, zombie } from "../helpers/processes.js";

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

function writeLock(dataDir: string, owner: Record<string, unknown>): string {
  const path = batchLockPath(dataDir);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify(owner));
  return path;
}

const onLinux = process.platform === "linux" ? {} : { skip: "reads /proc" };

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

  test(
    "a lock left by a killed process that is still a zombie (not reaped) is taken over with one warn line",
    onLinux,
    async () => {
      using z = await zombie();
      const path = writeLock(dataDir, {
        pid: z.pid,
        hostname: hostname(),
        runId: "killed-run",
        startedAt: new Date(Date.now() - 60_000).toISOString(),
      });
      const { logger, lines } = captureLogger();
      const lock = acquireBatchLock(dataDir, { runId: "retry", logger });
      assert.equal(JSON.parse(readFileSync(path, "utf8")).runId, "retry");
      const warnings = lines.filter((l) => l.msg.startsWith("broke a stale batch lock"));
      assert.equal(warnings.length, 1, JSON.stringify(lines));
      assert.match(warnings[0]!.msg, new RegExp(`of run killed-run \\(pid ${z.pid} on .*zombie`));
      lock.releaseSync();
    },
  );

  test(
    "a lock whose pid now belongs to another process (its start stamp differs) is taken over",
    onLinux,
    async () => {
      using other = await liveProcess();
      writeLock(dataDir, {
        pid: other.pid,
        hostname: hostname(),
        processStart: `${processStartStamp(other.pid)}-not-this-one`,
        runId: "earlier-run",
        startedAt: new Date().toISOString(),
      });
      const { logger, lines } = captureLogger();
      const lock = acquireBatchLock(dataDir, { runId: "retry", logger });
      assert.match(lines.find((l) => l.msg.startsWith("broke a stale"))?.msg ?? "", /pid was reused/);
      lock.releaseSync();
    },
  );

  test(
    "an older lock without a start stamp whose pid's process started after it was written is taken over",
    onLinux,
    async () => {
      using other = await liveProcess();
      writeLock(dataDir, {
        pid: other.pid,
        hostname: hostname(),
        runId: "old-format",
        startedAt: new Date(Date.now() - 3600_000).toISOString(),
      });
      const { logger, lines } = captureLogger();
      const lock = acquireBatchLock(dataDir, { runId: "retry", logger });
      assert.match(lines.find((l) => l.msg.startsWith("broke a stale"))?.msg ?? "", /started after/);
      lock.releaseSync();
    },
  );

  test(
    "a live owner on this host is refused naming it and how to stop it; the lock records its start stamp",
    onLinux,
    () => {
      const { logger } = captureLogger();
      const first = acquireBatchLock(dataDir, { runId: "live", logger });
      try {
        assert.equal(
          JSON.parse(readFileSync(first.path, "utf8")).processStart,
          processStartStamp(process.pid),
        );
        assert.throws(
          () => acquireBatchLock(dataDir, { runId: "second", logger }),
          (err: unknown) =>
            err instanceof BatchRunningError &&
            new RegExp(`run live \\(pid ${process.pid} on .*kill ${process.pid}\\) and rerun`).test(
              err.message,
            ),
        );
      } finally {
        first.releaseSync();
      }
    },
  );

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
    assert.throws(
      () => acquireBatchLock(dataDir, { runId: "local", logger }),
      (err: unknown) =>
        err instanceof BatchRunningError &&
        /on elsewhere\.example.*another host.*remove .*batch\.lock and rerun/.test(err.message),
    );
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
