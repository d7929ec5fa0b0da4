import { test, describe, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { projectRoot } from "../helpers/env.js";

const dir = mkdtempSync(join(tmpdir(), "lanemap-cli-generate-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Runs `lanemap` as a user would and collects its exit code and output. */
function lanemap(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(projectRoot, "infra", "bin", "lanemap.js"), ...args], {
      cwd: projectRoot,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("lanemap generate", () => {
  const out = join(dir, "archive");

  test("writes an archive and prints a summary of what it wrote", async () => {
    const r = await lanemap("generate", "--out", out, "--grid", "3x2", "--tile-size", "64", "--seed", "5");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /generated 6 tiles \(3x2 of 64x64 px, 6 bands, seed 5\)/);
    assert.match(r.stdout, /land cover +bare [\d.]+ %, crop/);
    assert.match(r.stdout, /training +\d+ polygons/);
    assert.equal(readdirSync(join(out, "tiles")).length, 6);
    assert.equal(readdirSync(join(out, "truth")).length, 6);
    const manifest = JSON.parse(readFileSync(join(out, "archive.json"), "utf8")) as {
      seed: number;
      grid: { width: number; height: number };
      bands: unknown[];
    };
    assert.equal(manifest.seed, 5);
    assert.deepEqual(manifest.grid, { width: 3, height: 2 });
    assert.equal(manifest.bands.length, 6);
  });

  test("refuses a non-empty folder with one line and exit code 2, and replaces it with --force", async () => {
    const refused = await lanemap("generate", "--out", out, "--grid", "1x1", "--tile-size", "32");
    assert.equal(refused.code, 2);
    assert.equal(refused.stderr.trim().split("\n").length, 1);
    assert.match(refused.stderr, /^lanemap: USAGE: .* is not empty; refusing to overwrite it \(pass --force/);
    const forced = await lanemap(
      "generate",
      "--out",
      out,
      "--grid",
      "1x1",
      "--tile-size",
      "32",
      "--bands",
      "4",
      "--force",
    );
    assert.equal(forced.code, 0, forced.stderr);
    assert.deepEqual(readdirSync(join(out, "tiles")), ["c0000r0000.tif"]);
  });

  const bad: [string[], RegExp][] = [
    [["--grid", "4by4"], /--grid must look like WxH/],
    [["--grid", "0x3"], /--grid must be at least 1x1/],
    [["--tile-size", "abc"], /--tile-size must be a positive integer/],
    [["--tile-size", "8"], /--tile-size must be in 16\.\.4096/],
    [["--seed", "-1"], /--seed must be an integer in 0\.\.4294967295/],
    [["--bands", "7"], /--bands must be in 1\.\.6/],
  ];
  for (const [args, message] of bad) {
    test(`rejects ${args.join(" ")} with a one-line usage error and exit code 2`, async () => {
      const r = await lanemap("generate", "--out", join(dir, "never"), ...args);
      assert.equal(r.code, 2);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
      assert.match(r.stderr, message);
    });
  }

  test("asks for --out when it is missing", async () => {
    const r = await lanemap("generate");
    assert.equal(r.code, 2);
    assert.equal(r.stderr.trim(), "lanemap: USAGE: --out <dir> is required");
  });
});
