/**
 * A nats-server with JetStream and users of their own permissions: a failure of the broker made
 * exact (a consumer that cannot be created, a watch whose messages never arrive), where a cluster
 * with a node down makes it happen only now and then (nats-server PR #7165, issue 14).
 */
import { spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** One user: its publish and subscribe deny lists (everything else allowed). */
export interface NatsUser {
  readonly user: string;
  readonly password: string;
  readonly denyPublish?: readonly string[];
  readonly denySubscribe?: readonly string[];
}

/** Starts nats-server on a free loopback port with `users`; dispose kills it and removes its folder. */
export async function startNatsServerWithUsers(
  users: readonly NatsUser[],
): Promise<{ url: string } & AsyncDisposable> {
  const dir = await mkdtemp(join(tmpdir(), "lanemap-nats-users-"));
  const conf = join(dir, "server.conf");
  const list = (subjects: readonly string[] | undefined) => JSON.stringify(subjects ?? []);
  const entries = users.map(
    (u) =>
      `{ user: ${JSON.stringify(u.user)}, password: ${JSON.stringify(u.password)}, permissions: {
        publish: { allow: [">"], deny: ${list(u.denyPublish)} }
        subscribe: { allow: [">"], deny: ${list(u.denySubscribe)} } } }`,
  );
  await writeFile(
    conf,
    `listen: "127.0.0.1:-1"
ports_file_dir: ${JSON.stringify(dir)}
jetstream { store_dir: ${JSON.stringify(join(dir, "js"))} }
authorization { users: [
  ${entries.join("\n  ")}
] }
`,
  );
  const child = spawn("nats-server", ["-c", conf], { stdio: ["ignore", "ignore", "pipe"] });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let log = "";
  child.stderr!.on("data", (d: Buffer) => (log = (log + d.toString()).slice(-2000)));
  const deadline = Date.now() + 10_000;
  let url: string | undefined;
  while (!url) {
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill("SIGKILL");
      await rm(dir, { recursive: true, force: true });
      throw new Error(`nats-server did not start: ${log.trim().split("\n").pop() ?? ""}`);
    }
    for (const f of await readdir(dir)) {
      if (!f.endsWith(".ports")) continue;
      url = (JSON.parse(await readFile(join(dir, f), "utf8")) as { nats?: string[] }).nats?.[0];
    }
    if (!url) await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    async [Symbol.asyncDispose]() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL");
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
