/**
 * A lock file held for milliseconds around a read-then-write (the label log's append, the model
 * registry's activation): created with O_EXCL, holding its owner's pid, host, start stamp and time,
 * removed when done. A waiter takes over at once a lock whose owner is provably gone (a writer
 * SIGKILLed mid-append: its pid dead, a zombie or reused on this host, shared/util/process.ts), and
 * any lock past `staleMs` (its owner on another host, or a file of an older version holding a bare
 * pid); otherwise it waits up to `waitMs` and then throws naming the owner and what to do.
 */
import { open, readFile, rename, stat, unlink } from "node:fs/promises";
import { hostname } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { ownerGone, thisProcessOwner, type ProcessOwner } from "../../util/process.js";

/** Another process holds the lock past the wait: what the caller turns into its own error. */
export class ShortLockHeldError extends Error {
  constructor(
    readonly path: string,
    readonly owner: ProcessOwner | null,
    waitMs: number,
  ) {
    super(
      owner
        ? `${path} is held by pid ${owner.pid} on ${owner.hostname} (since ${owner.startedAt ?? "an unknown time"}) for over ${waitMs / 1000} s: ` +
            (owner.hostname === hostname()
              ? `a lanemap process that is stuck; stop it (kill ${owner.pid}) and retry`
              : `if no lanemap runs on ${owner.hostname}, remove ${path} and retry`)
        : `${path} has been held for over ${waitMs / 1000} s by a process it does not name; if no lanemap process is running, remove it and retry`,
    );
    this.name = "ShortLockHeldError";
  }
}

function ownerIn(text: string): ProcessOwner | null {
  try {
    const parsed = JSON.parse(text) as Partial<ProcessOwner>;
    if (typeof parsed.pid === "number" && typeof parsed.hostname === "string") return parsed as ProcessOwner;
  } catch {
    // Gone, half-written, or an older version's bare pid: judged by its age.
  }
  return null;
}

/** Why a lock may be taken over now, or null. */
async function staleReason(
  path: string,
  owner: ProcessOwner | null,
  staleMs: number,
): Promise<string | null> {
  const gone = owner ? ownerGone(owner) : null;
  if (gone !== null) return gone;
  const age = await stat(path).then(
    (s) => Date.now() - s.mtimeMs,
    () => 0,
  );
  return age > staleMs ? `it is ${Math.round(age / 1000)} s old (over the ${staleMs / 1000} s bound)` : null;
}

/**
 * Takes `path` or throws: ShortLockHeldError past `waitMs`; the file system's error (ENOENT when its
 * folder is missing) as it is. `onTakenOver` hears of each lock taken over, with why.
 * @returns the release: removes the file (only while it is still this holder's).
 */
export async function takeShortLock(
  path: string,
  options: {
    waitMs: number;
    staleMs: number;
    pollMs: number;
    onTakenOver?: (owner: ProcessOwner | null, reason: string) => void;
  },
): Promise<() => Promise<void>> {
  const me: ProcessOwner = { ...thisProcessOwner(), startedAt: new Date().toISOString() };
  const text = JSON.stringify(me) + "\n";
  const deadline = Date.now() + options.waitMs;
  for (;;) {
    try {
      const fh = await open(path, "wx");
      try {
        await fh.writeFile(text);
      } finally {
        await fh.close();
      }
      return async () => {
        if ((await readFile(path, "utf8").catch(() => "")) === text)
          await unlink(path).catch(() => undefined);
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const held = await readFile(path, "utf8").catch(() => "");
    const owner = ownerIn(held);
    const reason = await staleReason(path, owner, options.staleMs);
    if (reason !== null) {
      // Aside first (rename is atomic): of two waiters taking over one lock, only one moves it; one
      // that moved a fresh lock instead (the other took over and locked in between) puts it back.
      const aside = `${path}.stale.${process.pid}.${Date.now()}`;
      const moved = await rename(path, aside).then(
        () => true,
        () => false,
      );
      if (!moved) continue;
      if ((await readFile(aside, "utf8").catch(() => "")) !== held) {
        await rename(aside, path).catch(() => undefined);
      } else {
        await unlink(aside).catch(() => undefined);
        options.onTakenOver?.(owner, reason);
      }
      continue;
    }
    if (Date.now() > deadline) throw new ShortLockHeldError(path, owner, options.waitMs);
    await sleep(options.pollMs);
  }
}
