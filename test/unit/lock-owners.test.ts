import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, test } from "node:test";
import { LabelStore } from "../../shared/adapters/archive/index.js";
import { ShortLockHeldError, takeShortLock } from "../../shared/adapters/archive/short-lock.js";
import { embeddedNatsUrl } from "../../infra/cli/nats-connect.js";
import { dataPaths, ownerGone, processStartStamp } from "../../shared/index.js";
import { liveProcess, zombie } from "../helpers/processes.js";

const onLinux = process.platform === "linux" ? {} : { skip: "reads /proc" };
const quick = { waitMs: 200, staleMs: 30_000, pollMs: 10 };

describe("short locks (the label log's and the model registry's)", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "lanemap-short-lock-"));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  test(
    "a label writer killed holding the lock (a zombie still) does not hold up the next writer",
    onLinux,
    async () => {
      using z = await zombie();
      await mkdir(join(dir, "locks"), { recursive: true });
      await writeFile(
        join(dir, "locks", "labels.lock"),
        JSON.stringify({ pid: z.pid, hostname: hostname(), startedAt: new Date().toISOString() }),
      );
      const store = new LabelStore(dir);
      const added = await store.add([]);
      assert.equal(added.version, 1);
    },
  );

  test("a lock whose owner is provably gone is taken over once, naming why", onLinux, async () => {
    using other = await liveProcess();
    const path = join(dir, "x.lock");
    await writeFile(
      path,
      JSON.stringify({
        pid: other.pid,
        hostname: hostname(),
        processStart: `${processStartStamp(other.pid)}0`,
        startedAt: "x",
      }),
    );
    const heard: string[] = [];
    const release = await takeShortLock(path, { ...quick, onTakenOver: (_o, why) => heard.push(why) });
    assert.equal(JSON.parse(await readFile(path, "utf8")).processStart, processStartStamp(process.pid));
    assert.deepEqual(heard, [
      `its pid ${other.pid} is now another process on this host (the pid was reused)`,
    ]);
    await release();
    await assert.rejects(readFile(path), { code: "ENOENT" });
  });

  test(
    "an owner of an earlier boot is gone; one of another PID namespace with this host name is not judged by its pid",
    onLinux,
    async () => {
      using other = await liveProcess();
      const [boot, ns, ticks] = processStartStamp(other.pid)!.split("/");
      const owner = { pid: other.pid, hostname: hostname() };
      assert.equal(
        ownerGone({ ...owner, processStart: `not-${boot}/${ns}/${ticks}` }),
        "this host has rebooted since it was written",
      );
      assert.equal(ownerGone({ ...owner, processStart: `${boot}/1${ns}/${ticks}` }), null);
      assert.equal(ownerGone({ ...owner, processStart: `${boot}/${ns}/${ticks}` }), null, "alive");
    },
  );

  test("a live owner, or another host's, is waited for and then refused naming it and what to do", async () => {
    using other = await liveProcess();
    const path = join(dir, "x.lock");
    await writeFile(
      path,
      JSON.stringify({ pid: other.pid, hostname: hostname(), processStart: processStartStamp(other.pid) }),
    );
    await assert.rejects(
      takeShortLock(path, quick),
      (err: unknown) =>
        err instanceof ShortLockHeldError &&
        new RegExp(`pid ${other.pid} on .*kill ${other.pid}`).test(err.message),
    );
    await writeFile(path, JSON.stringify({ pid: 1, hostname: "elsewhere.example" }));
    await assert.rejects(
      takeShortLock(path, quick),
      (err: unknown) =>
        err instanceof ShortLockHeldError &&
        /on elsewhere\.example .*if no lanemap runs on elsewhere\.example, remove .*x\.lock/.test(
          err.message,
        ),
    );
  });
});

describe("the embedded nats-server's ports file (how CLI commands find `lanemap start`'s server)", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "lanemap-ports-"));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const portsFile = async (pid: number, writtenAt: Date) => {
    const runDir = join(dataPaths(dir).nats, "run");
    await mkdir(runDir, { recursive: true });
    const path = join(runDir, `nats-server_${pid}.ports`);
    await writeFile(path, JSON.stringify({ nats: ["nats://127.0.0.1:4999"] }));
    await utimes(path, writtenAt, writtenAt);
  };

  test("names the server while its pid is the process that wrote it", async () => {
    using server = await liveProcess();
    await portsFile(server.pid, new Date());
    assert.equal(await embeddedNatsUrl(dir), "nats://127.0.0.1:4999");
  });

  test(
    "is ignored when its server was killed (a zombie still) or its pid is now a later process's",
    onLinux,
    async () => {
      using z = await zombie();
      await portsFile(z.pid, new Date());
      assert.equal(await embeddedNatsUrl(dir), undefined);
      await rm(join(dataPaths(dir).nats, "run"), { recursive: true });
      using later = await liveProcess();
      await portsFile(later.pid, new Date(Date.now() - 3600_000));
      assert.equal(await embeddedNatsUrl(dir), undefined);
    },
  );
});
