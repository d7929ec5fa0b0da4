import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import { isFedEntry, startFeeder } from "../../infra/platform/feeder.js";

const logger = pino({ level: "silent" });

async function until(what: string, ok: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

test("the feeder stops at the cap, counting what earlier runs fed, and feeds no more after it", async () => {
  let published = 0;
  const feeder = startFeeder({
    intervalS: 0.005,
    maxTiles: 5,
    alreadyFed: 2,
    feedOnce: async () => {
      published++;
    },
    logger,
  });
  await until("the cap", () => feeder.capped());
  assert.equal(published, 3);
  assert.equal(feeder.fed(), 3);
  await sleep(50);
  assert.equal(published, 3, "nothing is fed once the cap is reached");
  feeder.stop();
});

test("a data dir already at its cap feeds nothing; a cap of 0 means no cap", async () => {
  let published = 0;
  const feedOnce = async () => {
    published++;
  };
  const full = startFeeder({ intervalS: 0.005, maxTiles: 4, alreadyFed: 4, feedOnce, logger });
  assert.equal(full.capped(), true);
  await sleep(40);
  assert.equal(published, 0);
  full.stop();
  const endless = startFeeder({ intervalS: 0.005, maxTiles: 0, alreadyFed: 10_000, feedOnce, logger });
  await until("ten feeds", () => published >= 10);
  assert.equal(endless.capped(), false);
  endless.stop();
});

test("a failed feed is not counted against the cap, and feeds never overlap", async () => {
  let calls = 0;
  let running = 0;
  let overlapped = false;
  const feeder = startFeeder({
    intervalS: 0.002,
    maxTiles: 3,
    alreadyFed: 0,
    feedOnce: async () => {
      calls++;
      running++;
      overlapped ||= running > 1;
      await sleep(15);
      running--;
      if (calls === 1) throw new Error("nats away");
    },
    logger,
  });
  await until("the cap", () => feeder.capped());
  assert.equal(calls, 4);
  assert.equal(feeder.fed(), 3);
  assert.equal(overlapped, false);
  feeder.stop();
});

test("only the feeder's own stream entries count against the cap", () => {
  assert.equal(isFedEntry({ source: "stream", tileId: "c0003r0001-20261130T125800Z" }), true);
  assert.equal(isFedEntry({ source: "bulk", tileId: "c0003r0001-20261130T125800Z" }), false);
  assert.equal(isFedEntry({ source: "stream", tileId: "LC08_L2SP_021047_20240110" }), false);
});
