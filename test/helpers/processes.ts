/**
 * Processes a lock's owner can be: one that lives until killed, and a zombie (exited, not reaped),
 * as a SIGKILLed lanemap process is until its parent waits for it (shared/util/process.ts).
 */
import { spawn } from "node:child_process";
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
