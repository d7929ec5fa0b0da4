/**
 * Processes a lock's owner can be: one that lives until killed, and a zombie (exited, not reaped),
 * as a SIGKILLed lanemap process is until its parent waits for it (shared/util/process.ts); and a
 * command run to its end within a bound.
 */
import { spawn, spawnSync, type SpawnSyncOptionsWithStringEncoding } from "node:child_process";
import { readFileSync } from "node:fs";

/** A `sleep 60` process, killed on dispose. */
export async function liveProcess(): Promise<{ pid: number } & Disposable> {
  const child = spawn("sleep", ["60"], { stdio: "ignore" });
  await new Promise((resolve) => child.once("spawn", resolve));
  return { pid: child.pid!, [Symbol.dispose]: () => void child.kill("SIGKILL") };
}

/** The state letter of a process in /proc/<pid>/stat (Z: zombie). */
export function procState(pid: number): string | undefined {
  const text = readFileSync(`/proc/${pid}/stat`, "utf8");
  return text.slice(text.lastIndexOf(")") + 2)[0];
}

/**
 * A zombie: a process that has exited but that its parent never reaps (the parent execs into
 * `sleep`, which never waits); `kill(pid, 0)` still finds it. Its parent is killed on dispose, which lets init reap it.
 */
export async function zombie(): Promise<{ pid: number } & Disposable> {
  // The child exits only once its parent has become `sleep`: a shell still running might reap it.
  const child = 'while [ "$(cat /proc/$PPID/comm)" != sleep ]; do :; done';
  const parent = spawn("sh", ["-c", `sh -c '${child}' & echo $!; exec sleep 60`], {
    stdio: ["ignore", "pipe", "ignore"],
  });
  const pid = await new Promise<number>((resolve) =>
    parent.stdout.once("data", (d: Buffer) => resolve(Number(d.toString().trim()))),
  );
  // Until the child has exited it is no zombie yet.
  while (procState(pid) !== "Z") await new Promise((r) => setTimeout(r, 10));
  return { pid, [Symbol.dispose]: () => void parent.kill("SIGKILL") };
}

/** How long {@link runSync} lets a command run by default: far above any command a test runs here. */
export const RUN_SYNC_TIMEOUT_MS = 120_000;

/**
 * Runs a command to its end as spawnSync does (stdout and stderr as UTF-8 text), but never for
 * longer than `timeoutMs`: a spawnSync blocks the test file's whole event loop, so a command that
 * never ends would hold the file until the runner's file timeout (15 min) and kill it with no test
 * named (CI saw this once, in deployment-files). Killed at the bound with SIGKILL, it throws.
 *
 * @throws Error naming the command line and the bound when the command did not end within it, or
 *   could not be started (`r.error`: ENOENT...).
 */
export function runSync(
  cmd: string,
  args: readonly string[],
  options: Omit<SpawnSyncOptionsWithStringEncoding, "encoding"> & { timeoutMs?: number } = {},
): { status: number | null; stdout: string; stderr: string } {
  const { timeoutMs = RUN_SYNC_TIMEOUT_MS, ...rest } = options;
  const r = spawnSync(cmd, args, { ...rest, encoding: "utf8", timeout: timeoutMs, killSignal: "SIGKILL" });
  if (r.error) {
    const line = [cmd, ...args].join(" ");
    const timedOut = (r.error as NodeJS.ErrnoException).code === "ETIMEDOUT";
    throw new Error(
      timedOut
        ? `\`${line}\` did not end within ${timeoutMs / 1000} s (killed); stderr so far: ${r.stderr ?? ""}`
        : `\`${line}\` could not run: ${r.error.message}`,
    );
  }
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
