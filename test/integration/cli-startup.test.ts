/**
 * How `lanemap` starts: the command catalogue is the one source of the top-level help, only the
 * command named on the command line is loaded, and the compiled CLI in dist/ (when built) answers
 * like the sources do.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, test } from "node:test";
import { Command } from "commander";
import { commands } from "../../infra/cli/commands/index.js";
import { projectRoot } from "../helpers/env.js";

const CLI = join(projectRoot, "infra", "bin", "lanemap.js");
const DIST_MAIN = join(projectRoot, "dist", "infra", "cli", "main.js");
const version = (JSON.parse(readFileSync(join(projectRoot, "package.json"), "utf8")) as { version: string })
  .version;

function run(entry: string, ...args: string[]) {
  return spawnSync(process.execPath, [entry, ...args], { encoding: "utf8", cwd: projectRoot });
}

describe("lanemap's start-up", () => {
  test("every command in the catalogue registers itself under its name with the catalogue's summary", async () => {
    for (const entry of commands) {
      const program = new Command("lanemap");
      (await entry.load())(program);
      assert.deepEqual(
        program.commands.map((c) => c.name()),
        [entry.name],
      );
      const command = program.commands[0]!;
      assert.equal(command.description(), entry.summary, entry.name);
      const args = command.registeredArguments.map((a) =>
        a.required ? `<${a.name()}${a.variadic ? "..." : ""}>` : `[${a.name()}]`,
      );
      assert.equal(args.join(" ") || undefined, entry.args, `${entry.name}'s arguments`);
    }
  });

  test("lanemap --version prints the package version and --help lists every command", () => {
    const v = run(CLI, "--version");
    assert.equal(v.status, 0, v.stderr);
    assert.equal(v.stdout.trim(), version);
    const help = run(CLI, "--help");
    assert.equal(help.status, 0, help.stderr);
    for (const entry of commands) assert.match(help.stdout, new RegExp(`^  ${entry.name}\\b`, "m"));
  });

  test("lanemap help <command> and <command> --help show that command's own options", () => {
    for (const args of [
      ["help", "serve"],
      ["serve", "--help"],
    ]) {
      const r = run(CLI, ...args);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /^Usage: lanemap serve \[options\]/m);
      assert.match(r.stdout, /--port <port>/);
    }
  });

  test("an unknown command is a usage error that suggests the closest one", () => {
    const r = run(CLI, "serv");
    assert.equal(r.status, 2);
    assert.match(r.stderr, /unknown command 'serv'/);
    assert.match(r.stderr, /Did you mean serve\?/);
  });

  test("the launcher runs dist/ while every source dist/SOURCES lists exists and none is newer, else the sources", () => {
    // A project of two sources whose dist/ and sources each say which one ran.
    const dir = mkdtempSync(join(tmpdir(), "lanemap-fresh-"));
    try {
      const file = (rel: string, text: string): string => {
        const p = join(dir, rel);
        mkdirSync(dirname(p), { recursive: true });
        writeFileSync(p, text);
        return p;
      };
      copyFileSync(CLI, file("infra/bin/lanemap.js", ""));
      symlinkSync(join(projectRoot, "node_modules"), join(dir, "node_modules"));
      file("package.json", '{ "type": "module" }\n');
      const main = file("infra/cli/main.ts", 'console.log("sources");\n');
      const shared = file("shared/a.ts", "export const a = 1;\n");
      file("dist/infra/cli/main.js", 'console.log("dist");\n');
      const sources = file("dist/SOURCES", "infra/cli/main.ts\nshared/a.ts\n");
      file("dist/BUILT", "built\n");
      const past = new Date(Date.now() - 3_600_000);
      const later = new Date(Date.now() + 3_600_000);
      for (const p of [main, shared]) utimesSync(p, past, past);
      const ran = (): string => {
        const r = run(join(dir, "infra", "bin", "lanemap.js"));
        assert.equal(r.status, 0, r.stderr);
        return r.stdout.trim();
      };
      assert.equal(ran(), "dist", "built after every source");
      // A new file nothing imports yet: importing it means editing a listed source.
      file("shared/b.ts", "export const b = 2;\n");
      assert.equal(ran(), "dist", "a file added since the build, imported by none");
      utimesSync(shared, later, later);
      assert.equal(ran(), "sources", "a listed source edited since the build");
      utimesSync(shared, past, past);
      unlinkSync(shared);
      assert.equal(ran(), "sources", "a listed source removed since the build");
      file("shared/a.ts", "export const a = 1;\n");
      utimesSync(shared, past, past);
      assert.equal(ran(), "dist");
      unlinkSync(sources);
      assert.equal(ran(), "sources", "a dist/ built before SOURCES existed");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test(
    "the compiled CLI in dist/ answers --version and --help like the sources",
    { skip: existsSync(DIST_MAIN) ? false : "dist/ is not built (npm run build)" },
    () => {
      const v = run(DIST_MAIN, "--version");
      assert.equal(v.stdout.trim(), version);
      const help = run(DIST_MAIN, "--help");
      assert.equal(help.status, 0, help.stderr);
      assert.equal(help.stdout, run(CLI, "--help").stdout);
    },
  );

  test(
    "lanemap classify loads its code from a handful of bundled files, not ~300 modules one by one",
    { skip: existsSync(DIST_MAIN) ? false : "dist/ is not built (npm run build)" },
    () => {
      // A module hook that writes down every JavaScript file the command loads from the project.
      const dir = mkdtempSync(join(tmpdir(), "lanemap-startup-"));
      try {
        const log = join(dir, "loaded.txt");
        const hooks = join(dir, "hooks.mjs");
        writeFileSync(
          hooks,
          `import { appendFileSync } from "node:fs";
export async function load(url, context, next) {
  if (url.startsWith(${JSON.stringify(pathToFileURL(projectRoot).href)})) appendFileSync(${JSON.stringify(log)}, url + "\\n");
  return next(url, context);
}`,
        );
        const register = join(dir, "register.mjs");
        writeFileSync(
          register,
          `import { register } from "node:module"; register(${JSON.stringify(pathToFileURL(hooks).href)});`,
        );
        // `classify --help` loads the classify command and everything it imports, and runs nothing.
        const r = spawnSync(
          process.execPath,
          ["--import", pathToFileURL(register).href, CLI, "classify", "--help"],
          {
            encoding: "utf8",
            cwd: projectRoot,
          },
        );
        assert.equal(r.status, 0, r.stderr);
        assert.match(r.stdout, /^Usage: lanemap classify/m);
        const loaded = readFileSync(log, "utf8").trim().split("\n");
        assert.ok(loaded.length <= 40, `${loaded.length} files loaded:\n${loaded.slice(0, 20).join("\n")}`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
