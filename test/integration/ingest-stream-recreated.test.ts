/**
 * LANEMAP_TILES deleted and recreated while lanemap's data is kept (`nats stream rm`, a lost
 * JetStream store): its sequences start at 1 again, below the watermark of the published view and
 * the sequences of the catalogue and the live view. Every role refuses to start on it with one line
 * naming the stream, its last sequence, the record and the repair — never silently hiding new tiles
 * as absorbed or dropping catalogue tiles from the next view — and `lanemap ops
 * advance-ingest-stream` mends it: afterwards the roles start, a new tile is visible in a query and
 * the next batch run keeps every catalogued tile. Real nats-server, CLI processes, files storage.
 */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { buildBatchRunner } from "../../infra/platform/batch-runners.js";
import { openTileArchive } from "../../infra/platform/storage.js";
import { INGEST_STREAM, ensureStreams } from "../../shared/adapters/nats/index.js";
import { publishTile, startSpeedWorker, type SpeedEvent } from "../../speed/index.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import {
  activateModel,
  lanemap,
  runLanemap,
  tempDir,
  testConfig,
  testEnv,
  testLogger,
  testModel,
  testTile,
  waitFor,
} from "./speed-fixtures.js";

/**
 * Runs `lanemap ...args` to its end, or kills it after 90 s: a role that does not refuse would run
 * for ever (a failure guard, never a measurement).
 */
async function runToEnd(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | string; stdout: string; stderr: string }> {
  await using p = lanemap(args, env);
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([
    p.exited,
    new Promise<string>((resolve) => (timer = setTimeout(() => resolve("still running after 90 s"), 90_000))),
  ]);
  clearTimeout(timer);
  return { code, stdout: p.out.join("\n"), stderr: p.stderr() };
}

/** The one `lanemap: ...` line of a refused command (asserted to be the only one). */
function refusalLine(stderr: string): string {
  const lines = stderr.split("\n").filter((l) => l.startsWith("lanemap: "));
  assert.equal(lines.length, 1, `one line naming the refusal:\n${stderr}`);
  return lines[0]!;
}

test(
  "a recreated ingest stream is refused by speed, batch run, serve, ingest, archive remove, dlq retry and ops replay, and ops status says so, until ops advance-ingest-stream moves it past lanemap's record; then a new tile is served live and the next view keeps every tile",
  { skip: natsMissing(), timeout: 240_000 },
  async () => {
    await using nats = await natsFixture();
    await using dataDir = await tempDir("ingest-recreated-");
    const extra = { NATS_URL: nats.server.url, LANEMAP_BATCH_WORKERS: "1" };
    const config = testConfig(dataDir.path, extra);
    const env = testEnv(dataDir.path, extra);
    const logger = testLogger();
    await activateModel(nats.nc, await testModel());
    const js = jetstream(nats.nc);
    const jsm = await jetstreamManager(nats.nc);
    const old = [
      testTile(0, 0, "2024-01-10T16:40:00Z"),
      testTile(1, 0, "2024-01-10T16:40:00Z"),
      testTile(0, 1, "2024-01-10T16:40:00Z"),
      testTile(1, 1, "2024-01-11T16:40:00Z"),
    ];
    const send = (t: (typeof old)[number]) =>
      publishTile(js, t.bytes, { tileId: t.tileId, cell: t.cell, acquired: t.acquired });

    // Sequences 1..3 classified and absorbed by batch view v000001 (W 3), then sequence 4 live above it.
    {
      const events: SpeedEvent[] = [];
      await using worker = await startSpeedWorker(config, { nc: nats.nc, logger });
      worker.on((e) => events.push(e));
      const classified = (n: number) => () =>
        events.filter((e) => e.type === "tile-classified").length >= n || undefined;
      for (const t of old.slice(0, 3)) await send(t);
      await waitFor("three tiles classified", classified(3), 60_000);
      const { runner } = await buildBatchRunner(config, { logger, nc: nats.nc });
      try {
        const report = await runner.run({});
        assert.equal(report.watermark, 3);
      } finally {
        await runner.close();
      }
      assert.equal((await send(old[3]!)).seq, 4);
      await waitFor("the fourth tile classified", classified(4), 60_000);
    }

    // The stream deleted and made again (as any lanemap command or `nats stream add` would): empty, at 0.
    await jsm.streams.delete(INGEST_STREAM);
    await ensureStreams(jsm, config.stream);

    const fresh = testTile(0, 0, "2024-01-20T16:40:00Z");
    const file = join(dataDir.path, "fresh.tif");
    await writeFile(file, fresh.bytes);
    const [speed, batch, serve, ingest, remove, retry, replay, status] = await Promise.all([
      runToEnd(["speed"], env),
      runToEnd(["batch", "run"], env),
      runToEnd(["serve", "--no-batch-runs"], { ...env, PORT: "0" }),
      runToEnd(["ingest", file, "--cell", fresh.cell, "--acquired", fresh.acquired], env),
      runToEnd(["archive", "remove", old[1]!.tileId], env),
      runToEnd(["dlq", "retry", "--all"], env),
      runToEnd(["ops", "replay", "--from-seq", "1"], env),
      runToEnd(["ops", "status"], env),
    ]);
    const behind = (recorded: number, source: RegExp) =>
      new RegExp(
        `^lanemap: INGEST_STREAM_BEHIND: ingest stream LANEMAP_TILES is at last sequence 0 but lanemap recorded sequence ${recorded} \\(${source.source}\\): .*run \`lanemap ops advance-ingest-stream\` \\(its first sequence becomes ${recorded + 1}\\)$`,
      );
    const viewW = behind(3, /the watermark of batch view v000001/);
    for (const [name, r] of [
      ["speed", speed],
      ["serve", serve],
      ["ingest", ingest],
      // Its tombstone would record sequence 0 and make every older tombstone look droppable.
      ["archive remove", remove],
      // Both republish to the ingest stream.
      ["dlq retry", retry],
      ["ops replay", replay],
    ] as const) {
      assert.equal(r.code, 1, `lanemap ${name} exit code; stderr:\n${r.stderr}`);
      assert.match(refusalLine(r.stderr), viewW, `lanemap ${name}`);
    }
    // The batch run has read the catalogue: its highest sequence (4, the live tile) is the record.
    assert.equal(batch.code, 1, `lanemap batch run exit code; stderr:\n${batch.stderr}`);
    assert.match(refusalLine(batch.stderr), behind(4, /the catalogue's highest ingest sequence/));
    // ops status reports it (the live view's sequence 4 is the record there) as degraded: exit 3.
    assert.equal(status.code, 3, `ops status exit code; stdout:\n${status.stdout}\n${status.stderr}`);
    assert.match(
      status.stdout,
      /^ {10}BEHIND: INGEST_STREAM_BEHIND: .* recorded sequence 4 \(live result of tile /m,
    );
    assert.equal((await jsm.streams.info(INGEST_STREAM)).state.messages, 0, "nothing was published");
    assert.ok(await (await openTileArchive(config)).get(old[1]!.tileId), "nothing was removed");

    // A message published meanwhile (a producer of its own): the advance refuses rather than delete it.
    assert.equal((await js.publish(`tiles.in.${fresh.cell}`, new Uint8Array([1]))).seq, 1);
    const refused = await runLanemap(["ops", "advance-ingest-stream"], env);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(
      refusalLine(refused.stderr),
      /^lanemap: INGEST_STREAM_BEHIND: LANEMAP_TILES holds 1 message\(s\) \(sequences 1\.\.1\) stored since it was recreated, below lanemap's record 4 .*--discard-stored/,
    );
    const dry = await runLanemap(["ops", "advance-ingest-stream", "--dry-run", "--discard-stored"], env);
    assert.equal(dry.code, 0, dry.stderr);
    assert.deepEqual(dry.stdout.split("\n"), [
      `LANEMAP_TILES: last sequence 1, 1 message(s); lanemap's highest recorded sequence: 4 (catalogue entry ${old[3]!.tileId})`,
      "dry run: would set its first sequence to 5 and delete its 1 message(s)",
    ]);
    assert.equal((await jsm.streams.info(INGEST_STREAM)).state.last_seq, 1, "a dry run changes nothing");
    const advanced = await runLanemap(["ops", "advance-ingest-stream", "--discard-stored", "--json"], env);
    assert.equal(advanced.code, 0, advanced.stderr);
    const report = JSON.parse(advanced.stdout) as { outcome: string; nextSeq: number; purged: number };
    assert.deepEqual([report.outcome, report.nextSeq, report.purged], ["advanced", 5, 1]);
    const state = (await jsm.streams.info(INGEST_STREAM)).state;
    assert.deepEqual([state.first_seq, state.last_seq, state.messages], [5, 4, 0]);
    const again = await runLanemap(["ops", "advance-ingest-stream"], env);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /not behind: nothing to do/, "idempotent");

    // Every role starts; the next tile gets sequence 5, above W, and wins its cell in a query.
    await using speedCli = lanemap(["speed"], { ...env, LANEMAP_LOG_LEVEL: "info" });
    await speedCli.waitForLine(
      "the speed worker started",
      (l) => l["msg"] === "speed worker started",
      60_000,
    );
    await using serveCli = lanemap(["serve", "--no-batch-runs"], { ...env, PORT: "0" });
    const serving = await serveCli.waitForLine(
      "serve listening",
      (l) => typeof l["text"] === "string" && l["text"].startsWith("lanemap serving at "),
      60_000,
    );
    const url = String(serving["text"]).slice("lanemap serving at ".length).split(" ")[0]!;
    assert.equal((await send(fresh)).seq, 5);
    const cell = await waitFor(
      "the fresh tile winning its cell",
      async () => {
        const body = (await (await fetch(`${url}/v1/tiles/${fresh.cell}`)).json()) as {
          winner?: { tileId: string; lane: string };
          absorbed: { tileId: string }[];
        };
        return body.winner?.tileId === fresh.tileId ? body : undefined;
      },
      60_000,
    );
    assert.equal(cell.winner?.lane, "live");
    assert.ok(!cell.absorbed.some((a) => a.tileId === fresh.tileId), "not hidden as absorbed");

    // The next batch run: W past the record, every catalogued tile in the view, the fresh one too.
    const rerun = await runLanemap(["batch", "run", "--json"], env);
    assert.equal(rerun.code, 0, rerun.stderr);
    const view = JSON.parse(rerun.stdout) as { version: string; watermark: number; tiles: { total: number } };
    assert.deepEqual([view.version, view.watermark, view.tiles.total], ["v000002", 5, 5]);
  },
);
