/**
 * The file commands' code cache (infra/bin/lanemap.js): a successful run leaves V8's code cache of
 * its bundle in $XDG_CACHE_HOME/lanemap/code-cache, the next run reads it and answers the same, a
 * cache V8 refuses is written anew, a failed run writes none, and a few builds' caches are kept.
 * The bundle leaves NATS's packages (ES modules) outside and require()s them: `train --activate`
 * with NATS_URL stores into the NATS registry from it.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { NatsModelRegistry } from "../../shared/adapters/nats/index.js";
import { generateArchive } from "../../sample/index.js";
import { projectRoot } from "../helpers/env.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";

const CLI = join(projectRoot, "infra", "bin", "lanemap.js");
const DIST_MAIN = join(projectRoot, "dist", "infra", "cli", "main.js");

describe(
  "the file commands' code cache",
  { skip: existsSync(DIST_MAIN) ? false : "dist/ is not built (npm run build)" },
  () => {
    let work = "";
    let cacheHome = "";
    const codeCache = () => join(cacheHome, "lanemap", "code-cache");
    const cacheFiles = () => (existsSync(codeCache()) ? readdirSync(codeCache()).sort() : []);

    function train(tiles: string, out: string) {
      const env: NodeJS.ProcessEnv = { ...process.env, XDG_CACHE_HOME: cacheHome };
      delete env["NATS_URL"];
      return spawnSync(
        process.execPath,
        [CLI, "train", "--tiles", tiles, "--train", join(work, "training.geojson"), "--out", out],
        { encoding: "utf8", cwd: projectRoot, env },
      );
    }

    /** A model file without its creation time, the one field two runs may differ in. */
    const modelOf = (path: string) => readFileSync(path, "utf8").replace(/"createdAt": "[^"]*"/, "");

    before(async () => {
      work = mkdtempSync(join(tmpdir(), "lanemap-code-cache-"));
      cacheHome = join(work, "xdg");
      await generateArchive({ out: work, grid: { width: 1, height: 1 }, tileSize: 64, seed: 3 });
    });
    after(() => {
      if (work) rmSync(work, { recursive: true, force: true });
    });

    test("a failed run writes no cache", () => {
      const r = train(join(work, "absent"), join(work, "never.json"));
      assert.equal(r.status, 2, r.stderr);
      assert.deepEqual(cacheFiles(), []);
    });

    test("a successful run writes the cache, and the next run reads it and trains the same model", () => {
      const first = train(join(work, "tiles"), join(work, "first.json"));
      assert.equal(first.status, 0, first.stderr);
      const files = cacheFiles();
      assert.equal(files.length, 1, `one cache file: ${files.join(", ")}`);
      assert.match(files[0]!, /^train-[0-9a-f]{16}-node.+\.v8$/);
      const cache = join(codeCache(), files[0]!);
      const written = statSync(cache).mtimeMs;

      const second = train(join(work, "tiles"), join(work, "second.json"));
      assert.equal(second.status, 0, second.stderr);
      assert.equal(second.stdout.replace("second.json", "first.json"), first.stdout);
      assert.equal(modelOf(join(work, "second.json")), modelOf(join(work, "first.json")));
      assert.equal(statSync(cache).mtimeMs, written, "a cache V8 accepts is read, not written again");
    });

    test("a cache V8 refuses is written anew, and the run answers as without it", () => {
      const [name] = cacheFiles();
      const cache = join(codeCache(), name!);
      writeFileSync(cache, Buffer.alloc(4096, 7));
      const r = train(join(work, "tiles"), join(work, "third.json"));
      assert.equal(r.status, 0, r.stderr);
      assert.equal(modelOf(join(work, "third.json")), modelOf(join(work, "first.json")));
      assert.notDeepEqual(readFileSync(cache), Buffer.alloc(4096, 7));
      assert.deepEqual(cacheFiles(), [name]);
    });

    test("the four most recently written caches of a command are kept, older ones removed", () => {
      // Four caches of other builds, written an hour ago and older, then this build's anew.
      for (const name of cacheFiles()) rmSync(join(codeCache(), name));
      const others = [1, 2, 3, 4].map((i) => join(codeCache(), `train-${String(i).repeat(16)}-other.v8`));
      others.forEach((path, i) => {
        writeFileSync(path, "another build's cache");
        const t = new Date(Date.now() - (i + 1) * 3_600_000);
        utimesSync(path, t, t);
      });
      const r = train(join(work, "tiles"), join(work, "fourth.json"));
      assert.equal(r.status, 0, r.stderr);
      const kept = cacheFiles();
      assert.equal(kept.length, 4, kept.join(", "));
      assert.ok(!existsSync(others[3]!), "the oldest is removed");
      assert.ok(kept.some((n) => /^train-[0-9a-f]{16}-node/.test(n)));
    });

    test("train --activate stores its model into the NATS registry", { skip: natsMissing() }, async () => {
      await using nats = await natsFixture();
      const r = spawnSync(
        process.execPath,
        [
          CLI,
          "train",
          "--tiles",
          join(work, "tiles"),
          "--train",
          join(work, "training.geojson"),
          "--activate",
        ],
        {
          encoding: "utf8",
          cwd: projectRoot,
          env: {
            ...process.env,
            XDG_CACHE_HOME: cacheHome,
            // Its own data directory: the checkout's default one may hold a model of this version
            // from an earlier run, which the registry rightly refuses as different content.
            LANEMAP_DATA_DIR: join(work, "data"),
            NATS_URL: nats.server.url,
            LANEMAP_LOG_LEVEL: "error",
          },
        },
      );
      assert.equal(r.status, 0, r.stderr);
      const version = /^model ([0-9a-f]{16}) -> /.exec(r.stdout)?.[1];
      assert.ok(version, r.stdout);
      const registry = await NatsModelRegistry.open(nats.nc);
      assert.equal((await registry.active())?.version, version);
    });
  },
);
