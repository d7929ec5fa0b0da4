/**
 * The batch run lock: at most one batch run per data directory, across processes and hosts that
 * share it. The lock is a file created with O_EXCL (`open(..., "wx")`), holding the owner's pid,
 * host name, process start stamp, run id and start time. A lock whose owner is provably gone is
 * broken, with a warn line: its pid is dead on this host, a zombie, or now another process's
 * (shared/util/process.ts), or the lock is older than a generous staleness bound (a run on another
 * host that died cannot be checked by pid). A live owner's, or another host's, is refused naming the
 * owner and what to do.
 *
 * Acquisition is synchronous on purpose: `trigger()` must refuse a second run at once, with an
 * error the caller can turn into "409 Conflict", not later from a background promise.
 */
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import type { Logger } from "pino";
import { LanemapError, dataPaths, ownerGone, processStartStamp } from "../shared/index.js";

/** What a lock file says about its owner. */
export interface LockOwner {
  readonly pid: number;
  readonly hostname: string;
  /** The owner's start stamp (shared/util/process.ts); absent in locks of older versions. */
  readonly processStart?: string;
  readonly runId: string;
  readonly startedAt: string;
}

/** A batch run is already active (in this process or another); the trigger is refused. */
export class BatchRunningError extends LanemapError {
  readonly owner: LockOwner | null;
  constructor(owner: LockOwner | null, lockPath: string) {
    super(
      "BATCH_RUN_ACTIVE",
      owner
        ? `a batch run is already active: run ${owner.runId} (pid ${owner.pid} on ${owner.hostname}, started ${owner.startedAt}); lock ${lockPath}; ${whatToDo(owner, lockPath)}`
        : `a batch run is already active (lock ${lockPath} is being written); retry in a minute`,
    );
    this.owner = owner;
  }
}

/** What an operator refused by a live lock can do. */
function whatToDo(owner: LockOwner, lockPath: string): string {
  return owner.hostname === hostname()
    ? `wait for it to end (lanemap ops status), or stop it (kill ${owner.pid}) and rerun`
    : `it runs on another host, where only it can be checked: if no lanemap runs there (pid ${owner.pid}), remove ${lockPath} and rerun (a lock over 24 h old is broken by itself)`;
}

/** Options of {@link acquireBatchLock}. */
export interface LockOptions {
  readonly runId: string;
  readonly logger: Logger;
  /** A lock older than this is broken whatever its pid (default 24 h: longer than any run). */
  readonly staleAfterMs?: number;
  /** An unreadable lock (its owner died between create and write) is broken after this (default 30 s). */
  readonly unreadableGraceMs?: number;
}

/** A held lock; `releaseSync` removes it (only if it is still ours). */
export interface BatchLock {
  readonly path: string;
  readonly owner: LockOwner;
  releaseSync(): void;
}

const DEFAULT_STALE_MS = 24 * 3600_000;
const DEFAULT_UNREADABLE_GRACE_MS = 30_000;

/** The lock file of batch runs under a data directory. */
export function batchLockPath(dataDir: string): string {
  return join(dataPaths(dataDir).locks, "batch.lock");
}

function readOwner(path: string): LockOwner | null {
  try {
    const parsed = JSON.parse(readFileSync(path, "utf8")) as Partial<LockOwner>;
    if (
      typeof parsed.pid === "number" &&
      typeof parsed.hostname === "string" &&
      typeof parsed.runId === "string" &&
      typeof parsed.startedAt === "string" &&
      (parsed.processStart === undefined || typeof parsed.processStart === "string")
    )
      return parsed as LockOwner;
  } catch {
    // Missing, half-written or not JSON: the caller decides by the file's age.
  }
  return null;
}

/**
 * The owner of `dataDir`'s batch lock while it may still be running (`lanemap ops status`), or null
 * when there is no lock or it is stale (its pid dead on this host, or over the 24 h bound).
 */
export function liveBatchLockOwner(dataDir: string): LockOwner | null {
  const path = batchLockPath(dataDir);
  const owner = readOwner(path);
  if (!owner) return null;
  return staleReason(path, owner, DEFAULT_STALE_MS, DEFAULT_UNREADABLE_GRACE_MS) === null ? owner : null;
}

/** Why a lock is stale, or null when its owner may still be running. */
function staleReason(
  path: string,
  owner: LockOwner | null,
  staleAfterMs: number,
  graceMs: number,
): string | null {
  if (!owner) {
    let age: number;
    try {
      age = Date.now() - statSync(path).mtimeMs;
    } catch {
      return "it vanished";
    }
    return age > graceMs ? `it is unreadable and ${Math.round(age / 1000)} s old` : null;
  }
  const gone = ownerGone(owner);
  if (gone !== null) return gone;
  const age = Date.now() - Date.parse(owner.startedAt);
  if (Number.isFinite(age) && age > staleAfterMs)
    return `it is ${Math.round(age / 3600_000)} h old (over the ${Math.round(staleAfterMs / 3600_000)} h bound)`;
  return null;
}

function tryCreate(path: string, owner: LockOwner): boolean {
  let fd: number;
  try {
    fd = openSync(path, "wx");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw new LanemapError("LOCK", `cannot create lock ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    writeSync(fd, JSON.stringify(owner) + "\n");
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return true;
}

/**
 * Takes the batch lock of a data directory or throws BatchRunningError. A stale lock is broken
 * (logged at warn) and the acquisition retried once.
 */
export function acquireBatchLock(dataDir: string, options: LockOptions): BatchLock {
  const path = batchLockPath(dataDir);
  mkdirSync(dataPaths(dataDir).locks, { recursive: true });
  const stamp = processStartStamp(process.pid);
  const owner: LockOwner = {
    pid: process.pid,
    hostname: hostname(),
    ...(stamp === undefined ? {} : { processStart: stamp }),
    runId: options.runId,
    startedAt: new Date().toISOString(),
  };
  const staleAfterMs = options.staleAfterMs ?? DEFAULT_STALE_MS;
  const graceMs = options.unreadableGraceMs ?? DEFAULT_UNREADABLE_GRACE_MS;
  for (let attempt = 0; attempt < 2; attempt++) {
    if (tryCreate(path, owner)) return heldLock(path, owner);
    const existing = readOwner(path);
    const reason = staleReason(path, existing, staleAfterMs, graceMs);
    if (reason === null) throw new BatchRunningError(existing, path);
    // Move the stale lock aside before deleting it: rename is atomic, so of two processes breaking
    // the same lock only one moves it; the other's rename fails with ENOENT and it simply retries.
    const aside = `${path}.stale.${process.pid}.${Date.now()}`;
    try {
      renameSync(path, aside);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      continue;
    }
    const moved = readOwner(aside);
    if (existing && moved && moved.runId !== existing.runId) {
      // We raced another breaker and moved its fresh lock: put it back and give way.
      renameSync(aside, path);
      throw new BatchRunningError(moved, path);
    }
    unlinkSync(aside);
    const whose = existing ? ` of run ${existing.runId} (pid ${existing.pid} on ${existing.hostname})` : "";
    options.logger.warn(
      { lock: path, staleOwner: existing, reason },
      `broke a stale batch lock${whose}: ${reason}`,
    );
  }
  throw new BatchRunningError(readOwner(path), path);
}

function heldLock(path: string, owner: LockOwner): BatchLock {
  let released = false;
  return {
    path,
    owner,
    releaseSync() {
      if (released) return;
      released = true;
      // Only remove the file if it is still ours (a staleness bound may have let another run take it).
      const now = readOwner(path);
      if (now && now.runId === owner.runId && now.pid === owner.pid) {
        try {
          unlinkSync(path);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
        }
      }
    },
  };
}
