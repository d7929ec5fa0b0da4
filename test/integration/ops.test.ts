/**
 * The operator scripts against the real thing: a nats-server per test, a data directory with a
 * generated 3x3 archive of 64 px tiles, batch views published by the real batch lane (watermark =
 * the speed consumer's ack floor, as `lanemap start` wires it) and a real speed worker classifying
 * what the test publishes. CLI behaviour (exit codes, delegated commands) is checked by spawning
 * `node infra/bin/lanemap.js ops ...`.
 */
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { after, before, describe, test } from "node:test";
import { jetstream, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { createBatchRunner, type RunReport } from "../../batch/index.js";
import {
  ArchiveStore,
  FilePublishedViews,
  readCurrentPointer,
  setCurrentBatch,
} from "../../shared/adapters/archive/index.js";
import { LiveView, NatsModelRegistry, speedLaneStatus } from "../../shared/adapters/nats/index.js";
import { serializeModel, type Config } from "../../shared/index.js";
import { generateTile } from "../../sample/index.js";
import { publishTile, startSpeedWorker, type SpeedWorker } from "../../speed/index.js";
import {
  collectStatus,
  diffLanes,
  expireAbsorbed,
  formatDiffCsv,
  replayIngest,
  WatermarkMovedBackError,
  type OpsStatus,
} from "../../infra/ops/index.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import { lanemap, makeDataDir, makeSampleSet, testLogger, type SampleSet } from "./batch-fixture.js";
import { waitFor } from "./speed-fixtures.js";

/** makeSampleSet's seed: fresh acquisitions of the same ground as the archive. */
const ARCHIVE_SEED = 7;

/** A fresh acquisition sent to the speed lane. */
interface Sent {
  readonly cell: string;
  readonly tileId: string;
  readonly seq: number;
}

/** One test's platform: NATS, a data directory, the model active, a speed worker running. */
interface OpsWorld extends AsyncDisposable {
  readonly nc: NatsConnection;
  readonly url: string;
  readonly dataDir: string;
  readonly config: Config;
  readonly logger: Logger;
  readonly live: LiveView;
  readonly jsm: JetStreamManager;
  /** Publishes a new acquisition of grid cell (col, row); acquisitions get later with every call. */
  publish(col: number, row: number, scenario?: "none" | "flood"): Promise<Sent>;
  /** Publishes bytes that are no GeoTIFF (the worker dead-letters them). */
  publishGarbage(): Promise<Sent>;
  /** Resolves once every sent tile has a live result. */
  classified(sent: readonly Sent[]): Promise<void>;
  /** Resolves once the speed consumer has acknowledged (or dead-lettered) everything up to `seq`. */
  settled(seq: number): Promise<void>;
  /** A batch run whose watermark is the speed consumer's ack floor. */
  batch(): Promise<RunReport>;
  /** Environment of a `lanemap` child process for this world. */
  env(): Record<string, string>;
}

let set: SampleSet;
let worlds = 0;

async function opsWorld(): Promise<OpsWorld> {
  const nats = await natsFixture();
  let worker: SpeedWorker | undefined;
  try {
    const data = await makeDataDir(set, `data-${++worlds}`);
    const config = data.config({
      NATS_URL: nats.server.url,
      LANEMAP_SPEED_CONCURRENCY: "1",
      LANEMAP_ACK_WAIT_S: "5",
      LANEMAP_MAX_DELIVER: "3",
    });
    const logger = testLogger();
    const registry = await NatsModelRegistry.open(nats.nc);
    await registry.upload(set.model.version, new TextEncoder().encode(serializeModel(set.model)));
    await registry.activate(set.model.version);
    worker = await startSpeedWorker(config, { nc: nats.nc, logger, name: "ops-test" });
    const live = await LiveView.open(nats.nc);
    const jsm = await jetstreamManager(nats.nc);
    const js = jetstream(nats.nc);
    let minute = 0;
    const running = worker;
    return {
      nc: nats.nc,
      url: nats.server.url,
      dataDir: data.dataDir,
      config,
      logger,
      live,
      jsm,
      async publish(col, row, scenario = "none") {
        const acquired = new Date(Date.UTC(2025, 0, 1, 0, ++minute)).toISOString();
        const tile = generateTile({ seed: ARCHIVE_SEED, col, row, tileSize: 64, acquired, scenario });
        const tileId = `${tile.cell}-2025${String(minute).padStart(4, "0")}`;
        const sent = await publishTile(js, tile.bytes, { tileId, cell: tile.cell, acquired });
        return { cell: tile.cell, tileId, seq: sent.seq };
      },
      async publishGarbage() {
        const tileId = `c0002r0002-garbage${++minute}`;
        const bytes = new TextEncoder().encode("this is not a GeoTIFF");
        const sent = await publishTile(js, bytes, {
          tileId,
          cell: "c0002r0002",
          acquired: "2025-01-01T00:00:00Z",
        });
        return { cell: "c0002r0002", tileId, seq: sent.seq };
      },
      async classified(sent) {
        for (const s of sent) await waitFor(`live result of ${s.tileId}`, () => live.get(s.cell, s.tileId));
      },
      async settled(seq) {
        await waitFor(`the consumer's ack floor at ${seq}`, async () => {
          const c = (await speedLaneStatus(jsm)).consumer;
          return c !== null && c.ackFloorSeq >= seq && c.ackPending === 0 && c.pending === 0;
        });
      },
      batch: () =>
        createBatchRunner(config, {
          logger,
          watermark: async () => (await speedLaneStatus(jsm)).consumer?.ackFloorSeq ?? 0,
        }).run(),
      env: () => ({
        NATS_URL: nats.server.url,
        LANEMAP_DATA_DIR: data.dataDir,
        LANEMAP_LOG_LEVEL: "warn",
      }),
      async [Symbol.asyncDispose]() {
        await running.stop();
        await nats[Symbol.asyncDispose]();
      },
    };
  } catch (err) {
    await worker?.stop().catch(() => undefined);
    await nats[Symbol.asyncDispose]();
    throw err;
  }
}

/** The live view's results by tile id. */
async function liveByTile(world: OpsWorld): Promise<Map<string, { ingestSeq: number; revision: number }>> {
  const entries = await world.live.list();
  return new Map(
    entries.map((e) => [e.result.tileId, { ingestSeq: e.result.ingestSeq, revision: e.revision }]),
  );
}

/** A loopback port nothing listens on (taken from the OS, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("no TCP address");
  return address.port;
}

async function run(args: string[], env: Record<string, string>) {
  const p = lanemap(args, env);
  const { code } = await p.exited;
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}

describe("lanemap ops", { skip: natsMissing() }, () => {
  before(async () => {
    set = await makeSampleSet({ width: 3, height: 3, tileSize: 64, seed: ARCHIVE_SEED });
  });
  after(() => set.dispose());

  test("status reports the batch versions, live view, stream, consumer, dead letters and model as they are", async () => {
    await using world = await opsWorld();
    const absorbed = [await world.publish(0, 0), await world.publish(1, 0), await world.publish(2, 0)];
    await world.classified(absorbed);
    const v1 = await world.batch();
    const fresh = await world.publish(0, 1);
    const garbage = await world.publishGarbage();
    await world.classified([fresh]);
    await world.settled(garbage.seq);

    const s: OpsStatus = await collectStatus({
      dataDir: world.dataDir,
      nats: { nc: world.nc, url: world.url },
      logger: world.logger,
    });
    assert.equal(s.batch.current?.name, v1.version);
    assert.equal(
      s.batch.current?.watermark,
      absorbed.at(-1)?.seq,
      "the watermark is the ack floor at the run",
    );
    assert.equal(s.batch.current?.tiles.total, 9 + absorbed.length);
    assert.deepEqual(
      s.batch.versions.map((v) => v.name),
      [v1.version],
    );
    assert.equal(s.nats.ok, true);
    assert.equal(s.live?.size, absorbed.length + 1);
    assert.equal(s.live?.absorbed, absorbed.length);
    assert.equal(s.live?.aboveWatermark, 1);
    assert.ok(s.live?.newestProcessedAt, "the newest result's time is reported");
    assert.equal(s.ingest?.lastSeq, garbage.seq);
    assert.equal(s.ingest?.messages, garbage.seq);
    assert.equal(s.consumer?.pending, 0);
    assert.equal(s.consumer?.ackPending, 0);
    assert.equal(s.consumer?.ackFloorSeq, garbage.seq);
    assert.equal(s.consumer?.unacknowledged, 0);
    assert.equal(s.deadLetters, 1);
    assert.equal(s.model?.current?.version, set.model.version);

    const offline = await collectStatus({
      dataDir: world.dataDir,
      nats: { nc: null, url: null, error: "no NATS server" },
      logger: world.logger,
    });
    assert.equal(offline.nats.ok, false);
    assert.equal(offline.batch.current?.name, v1.version, "the batch side is read from files alone");
    assert.equal(offline.live, null);

    // Through the CLI: the borrowed `dlq list`, and NATS down with --require-nats.
    const down = `nats://127.0.0.1:${await closedPort()}`;
    const [dlq, required] = await Promise.all([
      run(["ops", "dlq", "list", "--json"], world.env()),
      run(["ops", "status", "--json", "--nats", down, "--require-nats"], world.env()),
    ]);
    assert.equal(dlq.code, 0, dlq.stderr);
    const letters = JSON.parse(dlq.stdout) as { tileId: string; code: string }[];
    assert.deepEqual(
      letters.map((d) => [d.tileId, d.code]),
      [[garbage.tileId, "TILE_DECODE"]],
      "ops dlq list is lanemap dlq list",
    );
    assert.equal(required.code, 1);
    assert.match(required.stderr, /NATS is unavailable/);
    const reported = JSON.parse(required.stdout) as OpsStatus;
    assert.equal(reported.nats.ok, false, "the report is printed before the exit");
    assert.equal(reported.batch.current?.name, v1.version);
  });

  test("diff finds no disagreement where both lanes classified the same tiles, and exits 3 on an injected one", async () => {
    await using world = await opsWorld();
    const sent = [await world.publish(0, 0), await world.publish(1, 1), await world.publish(2, 2, "flood")];
    await world.classified(sent);
    const v1 = await world.batch();
    assert.equal(v1.watermark, sent.at(-1)?.seq);
    // A flood after the run: the live view has only this newer tile for its cell.
    const newer = await world.publish(0, 2, "flood");
    await world.classified([newer]);

    const clean = await diffLanes({
      views: new FilePublishedViews(world.dataDir),
      dataDir: world.dataDir,
      live: world.live,
      threshold: 0.1,
      logger: world.logger,
    });
    assert.equal(clean.summary.compared, sent.length);
    assert.equal(clean.summary.otherTileOnly, 1, "a cell with only a newer tile is not a disagreement");
    assert.equal(
      clean.summary.sameTile,
      sent.length,
      "each cell is compared with its own tile's live result",
    );
    assert.ok(
      clean.cells.every((c) => c.liveAbsorbed),
      "absorbed live results take part",
    );
    assert.equal(clean.summary.exceeding, 0);
    assert.equal(clean.summary.maxMaxDiff, 0, "the same model on the same bytes agrees exactly");
    const any = await diffLanes({
      views: new FilePublishedViews(world.dataDir),
      dataDir: world.dataDir,
      live: world.live,
      threshold: 0.1,
      anyTile: true,
      logger: world.logger,
    });
    assert.equal(any.summary.compared, sent.length + 1);
    const changed = any.cells.find((c) => c.cell === newer.cell);
    assert.equal(changed?.liveTileId, newer.tileId, "anyTile compares the cell's newest live result");
    assert.equal(changed?.sameTile, false);
    assert.equal(changed?.liveAbsorbed, false);

    // The speed lane "disagrees" about one cell: all its classified pixels in another class.
    const target = sent[1]!;
    const entry = await world.live.get(target.cell, target.tileId);
    assert.ok(entry);
    const counts = [...entry.result.counts];
    const classified = counts.slice(1).reduce((a, b) => a + b, 0);
    const other = entry.result.dominantClass === 1 ? 2 : 1;
    const skewed = counts.map((c, i) => (i === 0 ? c : i === other ? classified : 0));
    await world.live.put({
      result: { ...entry.result, counts: skewed, dominantClass: other },
      k: entry.k,
      raster: await entry.raster(),
    });

    const cli = await run(["ops", "diff", "--threshold", "0.1", "--json"], world.env());
    assert.equal(cli.code, 3, `a cell over the threshold exits 3: ${cli.stderr}`);
    const report = JSON.parse(cli.stdout) as typeof clean;
    assert.equal(report.summary.exceeding, 1);
    assert.equal(report.cells[0]?.cell, target.cell);
    assert.equal(report.cells[0]?.worstClass !== null, true);
    assert.ok((report.cells[0]?.maxDiff ?? 0) > 0.1);

    const csv = formatDiffCsv(report).trim().split("\n");
    assert.equal(csv.length, 1 + sent.length, "one header and one row per compared cell");
    assert.match(csv[0] ?? "", /^cell,batch_tile,live_tile,/);
  });

  test("expire removes exactly the absorbed results while tiles keep flowing, a second run removes nothing, and a rollback below its watermark stops it", async () => {
    await using world = await opsWorld();
    const absorbed = [
      await world.publish(0, 0),
      await world.publish(1, 0),
      await world.publish(2, 0),
      await world.publish(0, 1),
    ];
    await world.classified(absorbed);
    const v1 = await world.batch();
    assert.equal(v1.watermark, absorbed.at(-1)?.seq);
    const above = [await world.publish(1, 1), await world.publish(2, 1)];
    await world.classified(above);

    const before = await liveByTile(world);
    const dry = await expireAbsorbed({
      views: new FilePublishedViews(world.dataDir),
      live: world.live,
      dryRun: true,
      logger: world.logger,
    });
    assert.deepEqual(
      dry.results.map((r) => r.tileId),
      absorbed.map((s) => s.tileId),
    );
    assert.equal(dry.removed, 0);
    assert.deepEqual(await liveByTile(world), before, "a dry run changes nothing");

    // Fresh tiles keep arriving and being classified while expiry runs.
    const flowing: Sent[] = [];
    const flow = (async () => {
      for (const [col, row] of [
        [0, 2],
        [1, 2],
        [2, 2],
        [0, 2],
        [1, 2],
      ] as const) {
        const s = await world.publish(col, row);
        flowing.push(s);
        await world.classified([s]);
      }
    })();
    const expired = await expireAbsorbed({
      views: new FilePublishedViews(world.dataDir),
      live: world.live,
      dryRun: false,
      logger: world.logger,
    });
    await flow;
    assert.equal(expired.watermark, v1.watermark);
    assert.equal(expired.removed, absorbed.length);
    assert.deepEqual(
      expired.results.map((r) => r.tileId),
      absorbed.map((s) => s.tileId),
    );
    const left = await liveByTile(world);
    assert.deepEqual(
      [...left.keys()].sort(),
      [...above, ...flowing].map((s) => s.tileId).sort(),
      "only results above the watermark remain, fresh ones included",
    );

    const again = await expireAbsorbed({
      views: new FilePublishedViews(world.dataDir),
      live: world.live,
      dryRun: false,
      logger: world.logger,
    });
    assert.equal(again.absorbed, 0);
    assert.equal(again.removed, 0);
    assert.deepEqual(await liveByTile(world), left, "expiry is idempotent");

    // A rollback to a lower watermark while expiry runs stops it before the next chunk.
    const v2 = await world.batch();
    assert.ok(v2.watermark > v1.watermark);
    let rolledBack = false;
    const rollingBack = {
      list: () => world.live.list(),
      async remove(cell: string, tileId: string) {
        await world.live.remove(cell, tileId);
        if (!rolledBack) await setCurrentBatch(world.dataDir, v1.version);
        rolledBack = true;
      },
    };
    await assert.rejects(
      expireAbsorbed({
        views: new FilePublishedViews(world.dataDir),
        live: rollingBack,
        dryRun: false,
        chunk: 1,
        logger: world.logger,
      }),
      (err: unknown) => err instanceof WatermarkMovedBackError && err.removed === 1,
    );
    assert.equal((await world.live.list()).length, left.size - 1, "the rest is kept for the older view");
  });

  test("replay re-drives a range and leaves exactly one live result per tile, with its first ingest sequence", async () => {
    await using world = await opsWorld();
    const early = [await world.publish(0, 0), await world.publish(1, 0)];
    await world.classified(early);
    const v1 = await world.batch();
    const late = [await world.publish(2, 0), await world.publish(0, 1)];
    await world.classified(late);
    const tiles = [...early, ...late];
    const last = late.at(-1)!.seq;
    const catalogueBefore = await countCatalogue(world.dataDir);

    // The incident: results of three tiles are lost (one absorbed by the batch, two above it).
    const lost = [early[0]!, late[0]!, late[1]!];
    for (const s of lost) await world.live.remove(s.cell, s.tileId);
    const kept = (await liveByTile(world)).get(early[1]!.tileId);
    assert.ok(kept);

    const dry = await replayIngest({
      nc: world.nc,
      fromSeq: 1,
      toSeq: last,
      dryRun: true,
      logger: world.logger,
    });
    assert.equal(dry.read, tiles.length);
    assert.equal(dry.republished, 0);
    assert.equal((await speedLaneStatus(world.jsm)).ingest?.lastSeq, last, "a dry run publishes nothing");

    const replay = await replayIngest({
      nc: world.nc,
      fromSeq: 1,
      toSeq: last,
      dryRun: false,
      logger: world.logger,
    });
    assert.equal(replay.republished, tiles.length);
    assert.deepEqual(
      replay.messages.map((m) => m.origSeq),
      tiles.map((s) => s.seq),
    );
    const newSeqs = replay.messages.map((m) => m.newSeq ?? 0);
    assert.ok(
      newSeqs.every((n) => n > last),
      "copies get new sequences after the range",
    );
    await world.settled(Math.max(...newSeqs));

    const live = await liveByTile(world);
    assert.deepEqual([...live.keys()].sort(), tiles.map((s) => s.tileId).sort(), "one result per tile");
    for (const s of tiles)
      assert.equal(live.get(s.tileId)?.ingestSeq, s.seq, `${s.tileId} keeps its first ingest sequence`);
    assert.ok(
      (live.get(early[0]!.tileId)?.ingestSeq ?? 0) <= v1.watermark,
      "a replayed absorbed tile stays absorbed",
    );
    assert.equal(
      live.get(early[1]!.tileId)?.revision,
      kept.revision,
      "a result still present is not rewritten",
    );
    assert.equal(await countCatalogue(world.dataDir), catalogueBefore, "the archive is not duplicated");

    // Replaying again from the start skips the copies of messages the range already holds.
    const again = await replayIngest({ nc: world.nc, fromSeq: 1, dryRun: false, logger: world.logger });
    assert.equal(again.read, 2 * tiles.length);
    assert.equal(again.skipped, tiles.length);
    assert.equal(again.republished, tiles.length);
    await world.settled(Math.max(...again.messages.map((m) => m.newSeq ?? 0)));
    assert.equal((await world.live.list()).length, tiles.length);
  });

  test("ops views rollback switches CURRENT, and a version that does not exist exits 1 naming the versions there are", async () => {
    await using world = await opsWorld();
    await world.classified([await world.publish(0, 0)]);
    const v1 = await world.batch();
    await world.classified([await world.publish(1, 0)]);
    const v2 = await world.batch();
    assert.equal(await readCurrentPointer(world.dataDir), v2.version);

    // A dry run and a bad name change nothing, so they may run side by side.
    const [dry, bad] = await Promise.all([
      run(["ops", "views", "rollback", v1.version, "--dry-run"], world.env()),
      run(["ops", "views", "rollback", "v000099"], world.env()),
    ]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, new RegExp(`${v2.version} -> ${v1.version}`));
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /v000099 does not exist; complete versions: v000001, v000002/);
    assert.equal(bad.stderr.trim().split("\n").length, 1, "one line");
    assert.equal(await readCurrentPointer(world.dataDir), v2.version, "CURRENT has not moved");

    const done = await run(["ops", "views", "rollback", v1.version, "--json"], world.env());
    assert.equal(done.code, 0, done.stderr);
    assert.equal((JSON.parse(done.stdout) as { current: string }).current, v1.version);
    assert.equal(await readCurrentPointer(world.dataDir), v1.version);
  });
});

async function countCatalogue(dataDir: string): Promise<number> {
  let n = 0;
  for await (const _ of new ArchiveStore(dataDir).entries()) n++;
  return n;
}
