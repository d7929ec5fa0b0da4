/**
 * Durable file writes: the data directory must never hold a half-written file under its final name.
 * Write to a temporary name in the same folder, fsync it, then rename (replace) or link (create only
 * if absent) and fsync the folder so the new name survives a crash too.
 */
import { randomBytes } from "node:crypto";
import { link, mkdir, open, rename, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/**
 * Flushes a file or a folder to disk (fsync(2) on a read-only handle; for a folder, its entries:
 * a new or renamed name survives a crash only after this).
 * @throws the file system's error (ENOENT, EACCES, ...).
 */
export async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function writeTemp(path: string, data: Uint8Array | string): Promise<string> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
  const fh = await open(tmp, "wx");
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  return tmp;
}

/** Writes `data` to `path` atomically, replacing any previous file. */
export async function writeFileDurable(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = await writeTemp(path, data);
  try {
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fsyncPath(dirname(path));
}

/**
 * Creates `path` with `data` only if it does not exist yet, atomically (link(2) fails on an existing
 * name). Returns false, writing nothing, when the file already existed: first write wins.
 */
export async function createFileDurable(path: string, data: Uint8Array | string): Promise<boolean> {
  const tmp = await writeTemp(path, data);
  try {
    await link(tmp, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw err;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
  await fsyncPath(dirname(path));
  return true;
}
