/**
 * Whether a process of this host is alive: signal 0 checks without signalling. EPERM means it
 * exists but belongs to another user, so it is alive too (kill(2)).
 */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
