/**
 * Whether the process a lock or pid file names is still its owner. A pid alone does not say: a
 * SIGKILLed process whose parent has not reaped it is a zombie that `kill(pid, 0)` still finds
 * (an operator's retry was refused on one, issue 14), and a pid is reused, by any process, or by
 * the retry itself in a fresh PID namespace (a container's entrypoint is pid 1 every time). So a
 * lock records its owner's start stamp as well (Linux: the boot id, the PID namespace and the
 * process's start time in clock ticks since boot, /proc/<pid>/stat field 22), which no later process
 * with that pid shares.
 */
import { readFileSync, readlinkSync } from "node:fs";
import { hostname } from "node:os";

/**
 * Whether a process of this host is alive: signal 0 checks without signalling. EPERM means it
 * exists but belongs to another user, so it is alive too (kill(2)). A zombie counts as alive here;
 * {@link ownerGone} tells it apart.
 */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** What a lock or pid file records of the process that wrote it. */
export interface ProcessOwner {
  readonly pid: number;
  readonly hostname: string;
  /** {@link processStartStamp} of the owner when it wrote the file; absent in older files, or off Linux. */
  readonly processStart?: string | undefined;
  /** When the owner wrote the file (ISO 8601), a bound for files without `processStart`. */
  readonly startedAt?: string | undefined;
}

interface ProcStat {
  /** One letter: R, S, D, Z (zombie), X (dead)... */
  readonly state: string;
  /** Start time, clock ticks after boot. */
  readonly startTicks: number;
}

/** /proc/<pid>/stat's state and start time, or undefined (no /proc, or no such process). */
function procStat(pid: number): ProcStat | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) is in parentheses and may hold spaces or parentheses itself.
    const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
    const state = rest[0];
    const startTicks = Number(rest[19]);
    if (!state || !Number.isFinite(startTicks)) return undefined;
    return { state, startTicks };
  } catch {
    return undefined;
  }
}

let bootIdMemo: string | null | undefined;
/** This boot of the kernel and this PID namespace ("<boot id>/<pid ns inode>"), or null off Linux. */
function bootAndNamespace(): string | null {
  if (bootIdMemo === undefined) {
    try {
      const boot = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
      const ns = /\[(\d+)\]/.exec(readlinkSync("/proc/self/ns/pid"))?.[1] ?? "0";
      bootIdMemo = `${boot}/${ns}`;
    } catch {
      bootIdMemo = null;
    }
  }
  return bootIdMemo;
}

/**
 * A stamp that names one process of this host for the life of the boot, as seen from this PID
 * namespace ("<boot id>/<pid ns>/<start ticks>"), or undefined where /proc does not tell (not
 * Linux, or no such pid).
 */
export function processStartStamp(pid: number): string | undefined {
  const prefix = bootAndNamespace();
  const stat = procStat(pid);
  return prefix && stat ? `${prefix}/${stat.startTicks}` : undefined;
}

/** This process as a lock file records it. */
export function thisProcessOwner(): Pick<ProcessOwner, "pid" | "hostname" | "processStart"> {
  return { pid: process.pid, hostname: hostname(), processStart: processStartStamp(process.pid) };
}

/** Linux's USER_HZ, the unit of /proc's start times: 100 on every architecture Node runs on. */
const USER_HZ = 100;
/** Slack when comparing a process's start with a file's time: btime moves with clock corrections. */
const START_SLACK_MS = 2_000;

/** When the process of `stat` started by the wall clock, ms, or undefined where /proc does not tell. */
function processStartedAtMs(stat: ProcStat): number | undefined {
  try {
    const btime = /^btime (\d+)$/m.exec(readFileSync("/proc/stat", "utf8"))?.[1];
    return btime === undefined ? undefined : Number(btime) * 1000 + (stat.startTicks * 1000) / USER_HZ;
  } catch {
    return undefined;
  }
}

/**
 * Why the owner a lock or pid file names is provably gone, or null when it may still be running.
 * Only an owner on this host can be proved gone: its pid is not running, is a zombie (killed, not
 * yet reaped by its parent), or now belongs to another process (its start stamp differs from the
 * one recorded; for a file without one, it started after the file was written). Another host's
 * owner is never proved gone here: the caller refuses, or applies its own age bound.
 */
export function ownerGone(owner: ProcessOwner): string | null {
  if (owner.hostname !== hostname()) return null;
  const here = bootAndNamespace();
  if (owner.processStart !== undefined && here !== null && !owner.processStart.startsWith(`${here}/`)) {
    // Another boot of this host: every process of that one is gone. Another PID namespace (a
    // container given this host name): its pids mean nothing here, so nothing can be proved.
    const [boot] = owner.processStart.split("/");
    return boot !== here.split("/")[0] ? "this host has rebooted since it was written" : null;
  }
  if (!pidAlive(owner.pid)) return `its pid ${owner.pid} is dead on this host`;
  const stat = procStat(owner.pid);
  if (!stat) return null;
  if (stat.state === "Z" || stat.state === "X")
    return `its pid ${owner.pid} has exited on this host (a zombie its parent has not reaped yet)`;
  if (owner.processStart !== undefined) {
    const now = processStartStamp(owner.pid);
    if (now !== undefined && now !== owner.processStart)
      return `its pid ${owner.pid} is now another process on this host (the pid was reused)`;
    return null;
  }
  const written = owner.startedAt === undefined ? NaN : Date.parse(owner.startedAt);
  const started = processStartedAtMs(stat);
  if (Number.isFinite(written) && started !== undefined && started > written + START_SLACK_MS)
    return `its pid ${owner.pid} is now another process on this host (started after the file was written)`;
  return null;
}

/**
 * Why a process recorded in a record every machine of a cluster shares (the batch coordinator's
 * lease in NATS KV) is provably gone, or null when it may still be running. Stricter than
 * {@link ownerGone}: a host name is no machine's identity across a cluster (two machines may share
 * one, and another boot id then is another machine, not a reboot), so only a process recorded in
 * this very boot and PID namespace (its `processStart` begins with ours) can be proved gone here.
 */
export function recordedProcessGone(owner: ProcessOwner): string | null {
  const here = bootAndNamespace();
  if (owner.processStart === undefined || here === null || !owner.processStart.startsWith(`${here}/`))
    return null;
  return ownerGone(owner);
}
