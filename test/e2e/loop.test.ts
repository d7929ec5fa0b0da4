/**
 * The analyst's loop in a real browser against `lanemap start`'s composition root (embedded
 * nats-server, the 8×8 sample, speed worker, batch runner, trainer): draw a polygon with
 * leaflet-geoman, name its class, save it (POST /v1/labels), retrain (POST /v1/models, progress from
 * SSE), see the new version with its accuracy in the model switcher, activate it with the viewport
 * as `around`, and see the visible cells redrawn with the new model's classes.
 *
 * Waits are bounded polling in the page; screenshots go to test/results/e2e/loop-*.png. Skips
 * visibly when Chromium or nats-server is absent.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { pino } from "pino";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { startPlatform, type Platform } from "../../infra/platform/platform.js";
import { parseConfig } from "../../shared/index.js";
import { projectRoot } from "../helpers/env.js";
import { natsMissing } from "../helpers/nats.js";

interface DomElement {
  readonly dataset: Record<string, string | undefined>;
  readonly textContent: string | null;
  readonly complete?: boolean;
  readonly naturalWidth?: number;
}
declare const document: {
  readonly body: DomElement;
  getElementById(id: string): DomElement | null;
  querySelectorAll(selector: string): Iterable<DomElement>;
};

const CHROMIUM = "/usr/bin/chromium";
const SHOTS = join(projectRoot, "test", "results", "e2e");
const TOKEN = "loop-operator-token-0123456789";
/** Upper bound of every wait; training and a batch run of 64 tiles on a loaded 2-core machine. */
const WAIT_MS = 120_000;

const skip = !existsSync(CHROMIUM) ? `${CHROMIUM} is absent (apt-get install chromium)` : natsMissing();

/** The overlay images' keys (lane|tileId@processedAt@modelVersion|view|size|bbox: web/state.js imageKey), when every one is loaded. */
function overlayKeys(page: Page): Promise<string[]> {
  return page.$$eval("img.lm-classes", (imgs) =>
    (imgs as unknown as DomElement[]).map((i) =>
      i.complete && (i.naturalWidth ?? 0) > 0 ? (i.dataset["key"] ?? "") : "",
    ),
  );
}

describe("the label -> retrain -> see-the-map-change loop in the web map", { skip: skip ?? false }, () => {
  let platform: Platform;
  let root: string;
  let context: BrowserContext;
  let page: Page;
  const problems: string[] = [];

  before(async () => {
    await mkdir(SHOTS, { recursive: true });
    root = await mkdtemp(join(tmpdir(), "lanemap-loop-"));
    const config = parseConfig({
      LANEMAP_DATA_DIR: join(root, "data"),
      PORT: "0",
      HOST: "127.0.0.1",
      LANEMAP_OPERATOR_TOKEN: TOKEN,
      LANEMAP_FEED_INTERVAL_S: "0",
      LANEMAP_BATCH_WORKERS: "2",
      LANEMAP_LOG_LEVEL: "silent",
    });
    platform = await startPlatform(config, pino({ level: process.env["LANEMAP_TEST_LOG"] ?? "silent" }));
    context = await chromium.launchPersistentContext(join(root, "profile"), {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--no-sandbox",
        "--headless",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
      ],
      viewport: { width: 1280, height: 860 },
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on("console", (m) => {
      if (m.type() === "error") problems.push(`console: ${m.text()}`);
    });
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  });

  after(async () => {
    await context?.close();
    await platform?.stop();
    if (root) await rm(root, { recursive: true, force: true });
  });

  test("draw, label, retrain, activate: the switcher lists the new version with its accuracy and the visible cells change", async () => {
    await page.goto(platform.url + "/", { waitUntil: "load" });
    await page.waitForFunction(() => document.body.dataset["loop"] === "ready", null, { timeout: WAIT_MS });
    await page.waitForFunction(
      () => {
        const imgs = [...document.querySelectorAll("img.lm-classes")];
        return imgs.length === 64 && imgs.every((i) => i.complete && (i.naturalWidth ?? 0) > 0);
      },
      null,
      { timeout: WAIT_MS },
    );
    const before = await overlayKeys(page);
    assert.match(await page.locator("#label-count").innerText(), /^Label set v1: \d+ labels/);
    await page.locator("#operator-token").fill(TOKEN);
    await page.locator("#operator-token").dispatchEvent("change");

    // Draw a polygon with geoman's tool: four clicks in the map, then the first vertex again. Zoomed in
    // two steps first, so a square well apart from geoman's 20-pixel snapping is still a small label
    // (about 25 × 25 pixels of one cover), not a land-cover map of its own.
    await page.locator(".leaflet-control-zoom-in").click();
    await page.locator(".leaflet-control-zoom-in").click();
    await page.waitForTimeout(800); // the zoom animation; the clicks below need the final view
    const box = await page.locator("#map").boundingBox();
    assert.ok(box);
    await page.locator(".leaflet-pm-icon-polygon").click();
    const cx = box.x + box.width * 0.5;
    const cy = box.y + box.height * 0.5;
    const d = 40;
    const corners: [number, number][] = [
      [cx - d, cy - d],
      [cx + d, cy - d],
      [cx + d, cy + d],
      [cx - d, cy + d],
    ];
    for (const [x, y] of corners) await page.mouse.click(x, y);
    await page.mouse.click(corners[0]![0], corners[0]![1]);
    await page.locator("#label-form").waitFor({ state: "visible", timeout: WAIT_MS });
    await page.locator("#label-class").fill("wetland");
    await page.locator("#label-note").fill("drawn in the browser test");
    await page.screenshot({ path: join(SHOTS, "loop-01-labelled.png") });
    await page.locator("#label-save").click();
    // Back to the whole archive, so every cell's overlay is in view again.
    await page.locator(".leaflet-control-zoom-out").click();
    await page.locator(".leaflet-control-zoom-out").click();
    await page.waitForFunction(
      () => /^Label set v2: .*wetland 1/.test(document.getElementById("label-count")?.textContent ?? ""),
      null,
      { timeout: WAIT_MS },
    );

    await page.locator("#retrain").click();
    await page.waitForFunction(
      () => /trained in|failed/.test(document.getElementById("train-status")?.textContent ?? ""),
      null,
      { timeout: WAIT_MS },
    );
    const trained = await page.locator("#train-status").innerText();
    assert.match(
      trained,
      /^Model [0-9a-f]{16} trained in [\d.]+ s: OA 0\.\d{3}, κ -?\d\.\d{3} \(5-fold\)\.$/,
    );
    const version = /Model ([0-9a-f]{16})/.exec(trained)![1] as string;
    const row = page.locator(`#model-list li[data-version="${version}"]`);
    await row.waitFor({ timeout: WAIT_MS });
    assert.match(await row.innerText(), /OA 0\.\d{3} · κ -?\d\.\d{3}/);
    assert.match(await row.innerText(), /7 classes · labels v2/);
    await page.screenshot({ path: join(SHOTS, "loop-02-trained.png") });

    await row.locator("button.activate").click();
    await page.waitForFunction(
      (v) => {
        const imgs = [...document.querySelectorAll("img.lm-classes")];
        return (
          imgs.length === 64 &&
          imgs.every(
            (i) => i.complete && (i.naturalWidth ?? 0) > 0 && (i.dataset["key"] ?? "").includes(`@${v}|`),
          )
        );
      },
      version,
      { timeout: WAIT_MS },
    );
    await page.waitForFunction(
      () => /The map shows the new model/.test(document.getElementById("train-status")?.textContent ?? ""),
      null,
      {
        timeout: WAIT_MS,
      },
    );
    const afterKeys = await overlayKeys(page);
    assert.ok(
      afterKeys.every((k) => !before.includes(k)),
      "every overlay was redrawn from the new model",
    );
    const legend = await page.locator("#legend").innerText();
    assert.match(legend, /wetland/);
    await page.screenshot({ path: join(SHOTS, "loop-03-activated.png") });
    assert.deepEqual(problems, []);
  });
});
