/**
 * The label set on files: one append-only log, `<data-dir>/labels/log.jsonl`, one JSON line per
 * change (`add` with the new labels, `remove` with the ids), each numbered with the label-set version
 * it makes. Any version is the replay of the log up to it, so a model can name the exact label set it
 * was trained on and that set can be read back later; nothing is ever rewritten in place.
 *
 * Writers in several processes (`lanemap labels add` beside a running server) take a lock file
 * (open with O_EXCL) around read-version-then-append; each append is fsync'd before the version is
 * answered. A line torn by a crash mid-append is not a change: readers skip it and the next writer
 * cuts it off before appending.
 */
import { randomBytes } from "node:crypto";
import { mkdir, open, readFile, stat, truncate } from "node:fs/promises";
import { join } from "node:path";
import { LanemapError } from "../../errors.js";
import type { Label, LabelDraft, LabelSet } from "../../labels/index.js";
import { dataPaths } from "../../view/paths.js";
import { ShortLockHeldError, takeShortLock } from "./short-lock.js";

/** One line of the log. */
type LogEntry =
  | { readonly version: number; readonly at: string; readonly op: "add"; readonly labels: readonly Label[] }
  | {
      readonly version: number;
      readonly at: string;
      readonly op: "remove";
      readonly ids: readonly string[];
      readonly author: string | null;
    };

/**
 * How long a writer waits for the lock, and when a lock file is judged left behind whatever it says
 * (a writer on another host; one provably dead on this host is taken over at once, short-lock.ts).
 */
const LOCK_WAIT_MS = 10_000;
const LOCK_STALE_MS = 30_000;

/** The store cannot be read or written. */
export class LabelStoreError extends LanemapError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("LABEL_STORE", message, options);
  }
}

/** No label with that id in the current set. */
export class LabelNotFoundError extends LanemapError {
  readonly labelId: string;
  constructor(id: string) {
    super("LABEL_NOT_FOUND", `no label "${id}" in the current label set`);
    this.labelId = id;
  }
}

/** The versioned label set of one data directory. */
export class LabelStore {
  /** The log file. */
  readonly path: string;
  private readonly lockPath: string;

  constructor(dataDir: string) {
    const paths = dataPaths(dataDir);
    this.path = join(paths.labels, "log.jsonl");
    this.lockPath = join(paths.locks, "labels.lock");
  }

  private async entries(): Promise<LogEntry[]> {
    let text: string;
    try {
      text = await readFile(this.path, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw new LabelStoreError(`cannot read ${this.path}: ${(err as Error).message}`, { cause: err });
    }
    const out: LogEntry[] = [];
    const lines = text.split("\n");
    // The last piece is "" after a final newline, or a line torn by a crash: not a change either way.
    lines.pop();
    lines.forEach((line, i) => {
      try {
        out.push(JSON.parse(line) as LogEntry);
      } catch (err) {
        throw new LabelStoreError(`${this.path} line ${i + 1} is not JSON`, { cause: err });
      }
    });
    return out;
  }

  /**
   * The label set at `version` (default: the newest). Version 0 is the empty set.
   * @throws LabelNotFoundError never; LabelStoreError when the log is unreadable or `version` is past the newest.
   */
  async read(version?: number): Promise<LabelSet> {
    const entries = await this.entries();
    const upTo = version ?? entries.at(-1)?.version ?? 0;
    if (!Number.isInteger(upTo) || upTo < 0 || upTo > (entries.at(-1)?.version ?? 0))
      throw new LabelStoreError(`there is no label-set version ${version}`);
    const labels = new Map<string, Label>();
    let updatedAt: string | null = null;
    for (const e of entries) {
      if (e.version > upTo) break;
      updatedAt = e.at;
      if (e.op === "add") for (const l of e.labels) labels.set(l.id, l);
      else for (const id of e.ids) labels.delete(id);
    }
    return { version: upTo, updatedAt, labels: [...labels.values()] };
  }

  /** Adds labels as one change; resolves with their ids and the new version. */
  async add(drafts: readonly LabelDraft[]): Promise<{ version: number; ids: string[]; at: string }> {
    return this.change((version, at) => {
      const labels = drafts.map((d): Label => ({
        ...d,
        id: `lbl-${randomBytes(6).toString("hex")}`,
        addedIn: version,
      }));
      return {
        entry: { version, at, op: "add", labels },
        result: { version, ids: labels.map((l) => l.id), at },
      };
    });
  }

  /**
   * Removes one label as one change.
   * @throws LabelNotFoundError when the current set has no label `id`.
   */
  async remove(id: string, author: string | null = null): Promise<{ version: number; at: string }> {
    return this.change((version, at, current) => {
      if (!current.labels.some((l) => l.id === id)) throw new LabelNotFoundError(id);
      return { entry: { version, at, op: "remove", ids: [id], author }, result: { version, at } };
    });
  }

  /** Under the lock: reads the current set, makes one entry numbered with the next version, appends it. */
  private async change<R>(
    make: (version: number, at: string, current: LabelSet) => { entry: LogEntry; result: R },
  ): Promise<R> {
    const release = await this.lock();
    try {
      const current = await this.read();
      const at = new Date().toISOString();
      const { entry, result } = make(current.version + 1, at, current);
      await this.append(`${JSON.stringify(entry)}\n`);
      return result;
    } finally {
      await release();
    }
  }

  private async append(line: string): Promise<void> {
    try {
      await mkdir(join(this.path, ".."), { recursive: true });
      // Cut a torn last line (a crash mid-append) so this line starts on its own.
      const size = await stat(this.path).then(
        (s) => s.size,
        () => 0,
      );
      if (size > 0) {
        const text = await readFile(this.path, "utf8");
        if (!text.endsWith("\n"))
          await truncate(this.path, Buffer.byteLength(text.slice(0, text.lastIndexOf("\n") + 1)));
      }
      const fh = await open(this.path, "a");
      try {
        await fh.write(line);
        await fh.sync();
      } finally {
        await fh.close();
      }
    } catch (err) {
      throw new LabelStoreError(`cannot append to ${this.path}: ${(err as Error).message}`, { cause: err });
    }
  }

  private async lock(): Promise<() => Promise<void>> {
    await mkdir(join(this.lockPath, ".."), { recursive: true });
    try {
      return await takeShortLock(this.lockPath, { waitMs: LOCK_WAIT_MS, staleMs: LOCK_STALE_MS, pollMs: 20 });
    } catch (err) {
      if (err instanceof ShortLockHeldError) throw new LabelStoreError(err.message, { cause: err });
      throw new LabelStoreError(`cannot take ${this.lockPath}: ${(err as Error).message}`, { cause: err });
    }
  }
}
