import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { describe, test } from "node:test";
import express from "express";
import { pino } from "pino";
import { UsageError } from "../../infra/cli/usage.js";
import { problemMiddleware } from "../../serving/http/problem.js";
import type { ProblemError } from "../../serving/errors.js";
import {
  AreaTooLargeError,
  CursorExpiredError,
  InvalidParamsError,
  NotFoundError,
} from "../../serving/errors.js";
import {
  ERROR_CODES,
  ERROR_TABLE,
  DeadlineError,
  LanemapError,
  PixelBudgetError,
  TileDecodeError,
  TileInvalidError,
  codeOfSlug,
  decodeError,
  encodeError,
  errorLine,
  exitCodeOf,
  isErrorCode,
  isPermanent,
  problemSlug,
  type ErrorCode,
} from "../../shared/index.js";
import { projectRoot } from "../helpers/env.js";

const codes = Object.keys(ERROR_TABLE) as ErrorCode[];

describe("the error table", () => {
  test("every code has an HTTP error status, an exit code, a permanence and a one-line meaning", () => {
    for (const code of codes) {
      const spec = ERROR_CODES[code];
      assert.match(code, /^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$/);
      assert.ok(spec.status >= 400 && spec.status <= 599, code);
      assert.ok(Number.isInteger(spec.exit) && spec.exit >= 1 && spec.exit <= 125, code);
      assert.equal(typeof spec.permanent, "boolean");
      assert.ok(spec.meaning.length > 0 && !spec.meaning.includes("\n"), code);
    }
  });

  test("each code is its own problem slug and back", () => {
    for (const code of codes) assert.equal(codeOfSlug(problemSlug(code)), code);
    assert.equal(problemSlug("TILE_NOT_FOUND"), "tile-not-found");
    assert.equal(new Set(codes.map(problemSlug)).size, codes.length);
  });

  test("only codes of the table are codes", () => {
    assert.ok(isErrorCode("TILE_DECODE"));
    for (const s of ["ORDER", "EMPTY_ARCHIVE", "BATCH_RUNNING", "tile_decode", "toString", "", undefined])
      assert.equal(isErrorCode(s), false, String(s));
  });

  test("the tile-level failures the speed lane dead-letters at once are permanent; the moment's are not", () => {
    for (const code of ["TILE_DECODE", "PIXEL_BUDGET", "TILE_INVALID", "TILE_CONFLICT", "DEADLINE", "MODEL"])
      assert.equal(isPermanent(new LanemapError(code as ErrorCode, "x")), true, code);
    for (const code of ["NATS_CONNECT", "CATALOGUE", "DUCKDB", "WORKER_CRASHED", "MODEL_NOT_FOUND"])
      assert.equal(isPermanent(new LanemapError(code as ErrorCode, "x")), false, code);
    assert.equal(isPermanent(new TypeError("anything not thrown on purpose")), false);
  });

  test("the CLI exits 2 for usage and 1 for every other error", () => {
    assert.equal(exitCodeOf(new UsageError("--k must be a positive integer")), 2);
    assert.equal(exitCodeOf(new TileDecodeError("not a TIFF")), 1);
    assert.equal(exitCodeOf(new Error("boom")), 1);
  });

  test("the CLI's one line of an error carries its code first, once, and of anything else the message", () => {
    assert.equal(
      errorLine(new LanemapError("BATCH_RUN_ACTIVE", "another batch coordinator holds the lease: host a")),
      "BATCH_RUN_ACTIVE: another batch coordinator holds the lease: host a",
    );
    assert.equal(errorLine(new UsageError("--out <dir> is required")), "USAGE: --out <dir> is required");
    // A message that names its code first already (INGEST_STREAM_BEHIND's do) is not doubled.
    assert.equal(
      errorLine(new LanemapError("INGEST_STREAM_BEHIND", "INGEST_STREAM_BEHIND: ingest stream X is at 0")),
      "INGEST_STREAM_BEHIND: ingest stream X is at 0",
    );
    assert.equal(errorLine(new Error("boom\nsecond line")), "boom");
  });

  test("the README's Errors section lists every code as the table says", () => {
    const readme = readFileSync(join(projectRoot, "README.md"), "utf8");
    const rows = [...readme.matchAll(/^\| `([A-Z_0-9]+)` \| (\d+) \| (\d+) \| (yes|no) \| (.+) \|$/gm)];
    assert.deepEqual(
      rows.map((m) => [m[1], Number(m[2]), Number(m[3]), m[4] === "yes", m[5]]),
      codes.map((c) => [
        c,
        ERROR_CODES[c].status,
        ERROR_CODES[c].exit,
        ERROR_CODES[c].permanent,
        ERROR_CODES[c].meaning,
      ]),
    );
  });

  test("serving's problem classes answer with their code's status", () => {
    const problems: ProblemError[] = [
      new InvalidParamsError([{ name: "bbox", reason: "is malformed" }]),
      new NotFoundError("no tile x", "tile-not-found"),
      new CursorExpiredError("gone"),
      new AreaTooLargeError(10, 5),
    ];
    for (const p of problems) assert.equal(p.status, ERROR_CODES[p.code].status, p.slug);
    assert.equal(problems[1]!.code, "TILE_NOT_FOUND");
  });
});

describe("the wire encoding", () => {
  const roundTrip = (err: unknown) => decodeError(structuredClone(encodeError(err)));

  test("a named error comes back as its class, with code, message, stack and cause", () => {
    const cause = new TileInvalidError("no CRS");
    const sent = new TileDecodeError("strip 3 is truncated", { cause });
    const got = roundTrip(sent);
    assert.ok(got instanceof TileDecodeError);
    assert.equal(got.code, "TILE_DECODE");
    assert.equal(got.message, sent.message);
    assert.equal(got.stack, sent.stack);
    assert.ok(got.cause instanceof TileInvalidError);
    assert.equal((got.cause as Error).message, "no CRS");
  });

  test("a pixel budget keeps its numbers, a deadline its class", () => {
    const got = roundTrip(new PixelBudgetError(4_000_000, 1_000_000));
    assert.ok(got instanceof PixelBudgetError);
    assert.deepEqual([got.pixels, got.budget], [4_000_000, 1_000_000]);
    assert.ok(roundTrip(new DeadlineError("late")) instanceof DeadlineError);
  });

  test("any other LanemapError keeps its code and class name", () => {
    const got = roundTrip(new UsageError("bad flag"));
    assert.equal(got.code, "USAGE");
    assert.equal(got.name, "UsageError");
    assert.ok(got instanceof LanemapError);
  });

  test("an error not thrown on purpose is INTERNAL under its own name", () => {
    const got = roundTrip(new RangeError("offset out of bounds"));
    assert.equal(got.code, "INTERNAL");
    assert.equal(got.name, "RangeError");
    assert.equal(got.message, "offset out of bounds");
    assert.equal(roundTrip("a thrown string").message, "a thrown string");
  });

  test("a code this process does not know decodes as INTERNAL, message kept", () => {
    const got = decodeError({ code: "FROM_THE_FUTURE", name: "FutureError", message: "new" });
    assert.equal(got.code, "INTERNAL");
    assert.equal(got.message, "new");
  });

  test("a cause cycle is cut, not followed forever", () => {
    const a = new Error("a");
    const b = new Error("b", { cause: a });
    (a as { cause?: unknown }).cause = b;
    let depth = 0;
    for (let w = encodeError(a); w.cause; w = w.cause) depth++;
    assert.equal(depth, 8);
  });
});

describe("serving's problem answers read the table", () => {
  async function answer(err: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
    const app = express();
    app.get("/x", () => {
      throw err;
    });
    app.use(problemMiddleware(pino({ level: "silent" })));
    const server = app.listen(0, "127.0.0.1");
    await new Promise((r) => server.once("listening", r));
    try {
      const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/x`);
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    } finally {
      await new Promise((r) => server.close(r));
    }
  }

  test("a LanemapError with a client-side code answers its status, type and message", async () => {
    const { status, body } = await answer(new LanemapError("CELL", "cell indices must be integers"));
    assert.equal(status, 400);
    assert.equal(body["type"], "/problems/cell");
    assert.equal(body["title"], ERROR_CODES.CELL.meaning);
    assert.equal(body["detail"], "cell indices must be integers");
  });

  test("a server-side code answers its status and hides the detail", async () => {
    const { status, body } = await answer(new LanemapError("NATS_CONNECT", "cannot connect to 10.0.0.1"));
    assert.equal(status, 503);
    assert.equal(body["type"], "/problems/internal");
    assert.doesNotMatch(String(body["detail"]), /10\.0\.0\.1/);
  });

  test("anything else is a 500 that leaks nothing", async () => {
    const { status, body } = await answer(new TypeError("x is undefined at secret.ts:12"));
    assert.equal(status, 500);
    assert.doesNotMatch(JSON.stringify(body), /secret/);
  });
});
