/**
 * The web map end to end, in a real browser against the real platform: Debian's Chromium (driven
 * by playwright-core) loads `/` from an in-process platform (nats-server, one batch view, a speed
 * worker, the serving layer), and the test reads what a person would see: overlays drawn in the
 * model's colours, the legend, the lane toggle, a tile's provenance, and a fresh acquisition
 * published through NATS replacing its cell's overlay via server-sent events.
 *
 * Every wait is bounded polling in the page (waitForFunction); nothing is timed. Screenshots go to
 * test/results/e2e/. Skips visibly when Chromium or nats-server is absent.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { confidenceColour } from "../../serving/render/confidence.js";
import { projectRoot } from "../helpers/env.js";
import { natsMissing } from "../helpers/nats.js";
import { startTestPlatform, type TestPlatform } from "../helpers/platform.js";

// The in-page functions below run in Chromium, but the project compiles without the DOM library
// (its code is Node's): these module-local declarations describe the little of the DOM they touch.
interface DomRect {
  readonly left: number;
  readonly right: number;
  readonly top: number;
  readonly bottom: number;
  readonly width: number;
  readonly height: number;
}
interface DomElement {
  readonly dataset: Record<string, string | undefined>;
  readonly textContent: string | null;
  getBoundingClientRect(): DomRect;
  querySelector(selector: string): DomElement | null;
}
interface DomImage extends DomElement {
  readonly complete: boolean;
  readonly naturalWidth: number;
  readonly naturalHeight: number;
}
interface DomCanvas {
  width: number;
  height: number;
  getContext(kind: "2d"): {
    drawImage(image: DomImage, x: number, y: number): void;
    getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray };
  } | null;
}
declare const document: {
  readonly body: DomElement;
  getElementById(id: string): DomElement | null;
  querySelector(selector: string): DomElement | null;
  querySelectorAll(selector: string): Iterable<DomElement>;
  createElement(tag: "canvas"): DomCanvas;
  addEventListener(
    type: "securitypolicyviolation",
    listener: (e: { violatedDirective: string; blockedURI: string }) => void,
  ): void;
};
declare function getComputedStyle(element: DomElement): { backgroundColor: string; zIndex: string };

const CHROMIUM = "/usr/bin/chromium";
const SHOTS = join(projectRoot, "test", "results", "e2e");
/** Upper bound of every wait in the page; a guard against hanging, never a measurement. */
const WAIT_MS = 30_000;
/** The cell the test floods: grassland by a river, where the flood scenario adds the most water. */
const FLOOD_CELL = "c0002r0001";

function skipReason(): string | undefined {
  if (!existsSync(CHROMIUM)) return `${CHROMIUM} is absent (apt-get install chromium)`;
  return natsMissing();
}

/** What the page shows for one overlay image. */
interface OverlayInfo {
  cell: string;
  tileId: string;
  lane: string;
  key: string;
  loaded: boolean;
  visible: boolean;
}

/** Every class overlay image the map holds, as the page's DOM says. */
function overlays(page: Page): Promise<OverlayInfo[]> {
  return page.$$eval("img.lm-classes", (elements) => {
    const map = document.getElementById("map")?.getBoundingClientRect();
    return (elements as unknown as DomImage[]).map((img) => {
      const r = img.getBoundingClientRect();
      return {
        cell: img.dataset["cell"] ?? "",
        tileId: img.dataset["tileId"] ?? "",
        lane: img.dataset["lane"] ?? "",
        key: img.dataset["key"] ?? "",
        loaded: img.complete && img.naturalWidth > 0,
        visible:
          !!map &&
          r.width > 4 &&
          r.height > 4 &&
          r.left >= map.left - 1 &&
          r.right <= map.right + 1 &&
          r.top >= map.top - 1 &&
          r.bottom <= map.bottom + 1,
      };
    });
  });
}

/** Waits until exactly `count` overlays are loaded and labelled (and, if given, all of `lane`). */
async function waitForOverlays(page: Page, count: number, lane?: string): Promise<void> {
  await page.waitForFunction(
    ({ count, lane }) => {
      const imgs = [...document.querySelectorAll("img.lm-classes")] as DomImage[];
      return (
        imgs.length === count &&
        imgs.every(
          (img) =>
            img.complete &&
            img.naturalWidth > 0 &&
            img.dataset["key"] !== undefined &&
            (lane === undefined || img.dataset["lane"] === lane),
        )
      );
    },
    { count, lane },
    { timeout: WAIT_MS, polling: 50 },
  );
}

/**
 * Share of one overlay's opaque pixels drawn in each legend colour, read back from the decoded
 * image (the PNG is same-origin, so the canvas is readable).
 */
function colourShares(page: Page, cell: string): Promise<Record<string, number>> {
  return page.$eval(`img.lm-classes[data-cell="${cell}"]`, (element) => {
    const img = element as unknown as DomImage;
    const canvas = document.createElement("canvas");
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    const ctx = canvas.getContext("2d");
    if (!ctx) throw new Error("no 2d context");
    ctx.drawImage(img, 0, 0);
    const { data } = ctx.getImageData(0, 0, canvas.width, canvas.height);
    const byColour = new Map<string, number>();
    let opaque = 0;
    for (let i = 0; i < data.length; i += 4) {
      if ((data[i + 3] ?? 0) === 0) continue;
      opaque++;
      const hex =
        "#" + [data[i], data[i + 1], data[i + 2]].map((v) => (v ?? 0).toString(16).padStart(2, "0")).join("");
      byColour.set(hex, (byColour.get(hex) ?? 0) + 1);
    }
    const out: Record<string, number> = {};
    for (const [hex, n] of byColour) out[hex] = n / Math.max(1, opaque);
    return out;
  });
}

async function shoot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`) });
}

/** Chooses a lane with its toggle and waits until the page says it shows that lane. */
async function chooseLane(page: Page, lane: "merged" | "batch" | "live", label: string): Promise<void> {
  await page.getByRole("radio", { name: label }).check();
  await page.waitForFunction((l) => document.body.dataset["lane"] === l, lane, { timeout: WAIT_MS });
}

const skip = skipReason();

describe("the web map at /", { skip: skip ?? false }, () => {
  let platform: TestPlatform;
  let context: BrowserContext;
  let page: Page;
  let profile: string;
  /** Console errors, uncaught exceptions, CSP violations and failed responses seen by the page. */
  const problems: string[] = [];

  before(async () => {
    await mkdir(SHOTS, { recursive: true });
    platform = await startTestPlatform({ grid: { width: 3, height: 3 }, tileSize: 128, seed: 7 });
    profile = await mkdtemp(join(tmpdir(), "lanemap-chromium-"));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--no-sandbox",
        "--headless",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
      viewport: { width: 1280, height: 800 },
    });
    // CSP violations also reach the console, but the event names the directive exactly.
    await context.addInitScript(() => {
      document.addEventListener("securitypolicyviolation", (e) =>
        console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline"}`),
      );
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on("console", (m) => {
      if (m.type() === "error") problems.push(`console: ${m.text()} (${m.location().url || "page"})`);
    });
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    page.on("response", (r) => {
      if (r.status() >= 400) problems.push(`HTTP ${r.status()} ${r.url()}`);
    });
  });

  after(async () => {
    await context?.close();
    await platform?.stop();
    if (profile) await rm(profile, { recursive: true, force: true });
  });

  test("the page is served under the app's content security policy", async () => {
    const res = await page.goto(platform.url + "/", { waitUntil: "load" });
    assert.equal(res?.status(), 200);
    const csp = (await res?.allHeaders())?.["content-security-policy"] ?? "";
    assert.match(csp, /script-src 'self'/);
    assert.match(csp, /style-src 'self'/);
  });

  test("every cell's class raster is drawn on the map, fitted to the data", async () => {
    await waitForOverlays(page, platform.cells.length, "batch");
    const shown = await overlays(page);
    assert.deepEqual(shown.map((o) => o.cell).sort(), [...platform.cells]);
    for (const o of shown) assert.ok(o.visible, `the overlay of ${o.cell} lies inside the map`);
    const colours = new Set(platform.model.classes.map((c) => c.colour.toLowerCase()));
    for (const cell of platform.cells) {
      const shares = await colourShares(page, cell);
      const inLegend = Object.entries(shares)
        .filter(([hex]) => colours.has(hex))
        .reduce((a, [, s]) => a + s, 0);
      assert.ok(inLegend > 0.999, `every opaque pixel of ${cell} is drawn in a class colour`);
    }
    await shoot(page, "01-merged");
  });

  test("the legend lists the model's classes in their colours", async () => {
    const items = await page.$$eval("#legend li", (lis) =>
      lis.map((li) => ({
        name: li.textContent?.trim() ?? "",
        colour: getComputedStyle((li as unknown as DomElement).querySelector(".swatch") as DomElement)
          .backgroundColor,
      })),
    );
    const rgb = (hex: string) => {
      const n = parseInt(hex.slice(1), 16);
      return `rgb(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255})`;
    };
    assert.deepEqual(
      items,
      platform.model.classes.map((c) => ({ name: c.name, colour: rgb(c.colour) })),
    );
  });

  test("clicking a tile shows its provenance and class shares", async () => {
    const outline = page.locator(`path[data-cell="${FLOOD_CELL}"]`);
    await outline.click();
    const panel = page.locator(`#tile-panel[data-cell="${FLOOD_CELL}"]`);
    await panel.waitFor({ timeout: WAIT_MS });
    const field = (name: string) => page.locator(`#tile-panel [data-field="${name}"]`).innerText();
    assert.equal(await field("lane"), "batch");
    assert.equal(await field("batch-version"), `${platform.batch.version} (1)`);
    assert.equal(await field("watermark"), `ingest seq ${platform.batch.watermark}`);
    assert.equal(await field("model-version"), platform.model.version);
    assert.match(await field("acquired"), /^2024-01-\d\d \d\d:\d\d:\d\d UTC$/);
    assert.match(await field("processed"), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
    assert.match(await field("staleness"), /^acquired .+ ago; batch view .+ old$/);
    const shares = await page.$$eval("#tile-panel table.shares tbody tr", (rows) =>
      rows.map((r) => ({
        name: r.querySelector("th")?.textContent ?? "",
        share: r.querySelector(".share-text")?.textContent ?? "",
      })),
    );
    const names = new Set(platform.model.classes.map((c) => c.name));
    assert.ok(shares.length > 0, "the panel lists class shares");
    for (const s of shares) {
      assert.ok(names.has(s.name), `"${s.name}" is a class of the model`);
      assert.match(s.share, /^\d+(\.\d+)? %$/);
    }
    await shoot(page, "02-panel-batch");
  });

  test("the lane toggle shows the batch view, the (empty) live view and the merged view", async () => {
    await chooseLane(page, "live", "Live");
    await waitForOverlays(page, 0);
    assert.match(await page.locator("#status").innerText(), /No live results yet/);
    await chooseLane(page, "batch", "Batch");
    await waitForOverlays(page, platform.cells.length, "batch");
    await chooseLane(page, "merged", "Merged");
    await waitForOverlays(page, platform.cells.length, "batch");
    assert.match(page.url(), /\/$/);
  });

  test("a fresh acquisition published through NATS replaces its cell's overlay live", async () => {
    const before = (await overlays(page)).find((o) => o.cell === FLOOD_CELL);
    assert.ok(before, `${FLOOD_CELL} has an overlay`);
    const water = platform.model.classes.find((c) => c.name === "water");
    assert.ok(water, "the model knows water");
    const waterBefore = (await colourShares(page, FLOOD_CELL))[water.colour.toLowerCase()] ?? 0;

    // A clear acquisition: under clouds the merged map rightly keeps the older pixels (per-pixel
    // compositing), which a cloudy draw of the time-driven cloud field made look like too little water.
    const sent = await platform.publish(FLOOD_CELL, "flood", 0);
    // Only the server-sent event can tell the page: nothing here reloads or polls the map.
    await page.waitForFunction(
      ({ cell, tileId }) => {
        const img = document.querySelector(`img.lm-classes[data-cell="${cell}"]`) as DomImage | null;
        return (
          img?.dataset["tileId"] === tileId &&
          img.dataset["lane"] === "live" &&
          img.complete &&
          img.naturalWidth > 0
        );
      },
      { cell: FLOOD_CELL, tileId: sent.tileId },
      { timeout: WAIT_MS, polling: 50 },
    );
    const afterwards = (await overlays(page)).find((o) => o.cell === FLOOD_CELL);
    assert.notEqual(afterwards?.key, before.key, "the overlay's cache key changed");
    const waterAfter = (await colourShares(page, FLOOD_CELL))[water.colour.toLowerCase()] ?? 0;
    assert.ok(
      waterAfter > waterBefore + 0.1,
      `the flooded cell shows more water (${waterBefore.toFixed(3)} -> ${waterAfter.toFixed(3)})`,
    );
    // The panel was showing this cell: it follows the change too.
    await page.waitForFunction(
      (tileId) => {
        const p = document.getElementById("tile-panel");
        return p?.dataset["tileId"] === tileId && p.dataset["lane"] === "live";
      },
      sent.tileId,
      { timeout: WAIT_MS },
    );
    assert.equal(await page.locator(`path[data-cell="${FLOOD_CELL}"]`).getAttribute("data-lane"), "live");
    await page.waitForFunction(
      () => /Live following · 1 result\b/.test(document.getElementById("lag-live")?.textContent ?? ""),
      undefined,
      { timeout: WAIT_MS },
    );
    await shoot(page, "03-live-flood");
  });

  test("after the live change each lane shows its own result for the flooded cell", async () => {
    const sent = (await overlays(page)).find((o) => o.cell === FLOOD_CELL);
    await chooseLane(page, "live", "Live");
    await waitForOverlays(page, 1, "live");
    assert.equal((await overlays(page))[0]?.tileId, sent?.tileId);
    await shoot(page, "04-live-lane");
    await chooseLane(page, "batch", "Batch");
    await waitForOverlays(page, platform.cells.length, "batch");
    await page.waitForFunction(
      () => document.getElementById("tile-panel")?.dataset["lane"] === "batch",
      undefined,
      {
        timeout: WAIT_MS,
      },
    );
    await chooseLane(page, "merged", "Merged");
    await page.waitForFunction(
      (cell) => document.querySelector(`img.lm-classes[data-cell="${cell}"]`)?.dataset["lane"] === "live",
      FLOOD_CELL,
      { timeout: WAIT_MS },
    );
  });

  test("the layer toggles draw the source scene under the classes and the vote share over them", async () => {
    const cells = platform.cells.length;
    /** Waits until every cell has a decoded overlay of `kind` whose key ends with `suffix`. */
    const waitForLayer = (kind: string, suffix: string) =>
      page.waitForFunction(
        ({ kind, suffix, cells }) => {
          const imgs = [...document.querySelectorAll(`img.lm-${kind}`)] as DomImage[];
          return (
            imgs.length === cells &&
            imgs.every((i) => i.complete && i.naturalWidth > 0 && (i.dataset["key"] ?? "").endsWith(suffix))
          );
        },
        { kind, suffix, cells },
        { timeout: WAIT_MS, polling: 50 },
      );
    /** Colour counts of one layer image's opaque pixels, and how many pixels are opaque. */
    const pixels = (kind: string, cell: string) =>
      page.$eval(`img.lm-${kind}[data-cell="${cell}"]`, (element) => {
        const img = element as unknown as DomImage;
        const canvas = document.createElement("canvas");
        canvas.width = img.naturalWidth;
        canvas.height = img.naturalHeight;
        const ctx = canvas.getContext("2d");
        if (!ctx) throw new Error("no 2d context");
        ctx.drawImage(img, 0, 0);
        const { data } = ctx.getImageData(0, 0, canvas.width, canvas.height);
        const colours: Record<string, number> = {};
        let opaque = 0;
        for (let i = 0; i < data.length; i += 4) {
          if ((data[i + 3] ?? 0) === 0) continue;
          opaque++;
          const hex =
            "#" +
            [data[i], data[i + 1], data[i + 2]].map((v) => (v ?? 0).toString(16).padStart(2, "0")).join("");
          colours[hex] = (colours[hex] ?? 0) + 1;
        }
        return { opaque, total: data.length / 4, colours };
      });

    await page.getByRole("radio", { name: "False colour" }).check();
    await waitForLayer("source", "|false-colour");
    assert.equal(await page.evaluate(() => document.body.dataset["sourceLayer"]), "false-colour");
    const scene = await pixels("source", FLOOD_CELL);
    // The layer draws the cell's per-pixel composite: each pixel from the acquisition its class came
    // from, transparent exactly where no acquisition is valid (clouds every scene has): as many opaque
    // pixels as the composite counts valid, the figure stats use.
    const detail = (await (await fetch(`${platform.url}/v1/tiles/${FLOOD_CELL}`)).json()) as {
      composite: { validPixels: number } | null;
    };
    assert.ok(detail.composite, `${FLOOD_CELL} draws a composite`);
    assert.equal(
      scene.opaque,
      detail.composite.validPixels,
      "every pixel the composite classified is drawn from its scene, the rest is not",
    );
    assert.ok(scene.opaque > scene.total / 2, "most of the scene is drawn");
    assert.ok(Object.keys(scene.colours).length > 100, "a stretched scene, not a flat fill");
    // Under the classes: turn their opacity down to see the scene through them.
    await page.locator("#classes-opacity").fill("35");
    await shoot(page, "05-false-colour-under-classes");

    await page.getByRole("radio", { name: "True colour" }).check();
    await waitForLayer("source", "|true-colour");

    await page.getByRole("checkbox", { name: /Confidence/ }).check();
    await waitForLayer("confidence", "");
    const k = platform.model.k;
    const ramp = new Set(
      Array.from({ length: k + 1 }, (_, v) => {
        const [r, g, b] = confidenceColour(v / k);
        return "#" + [r, g, b].map((x) => x.toString(16).padStart(2, "0")).join("");
      }),
    );
    for (const cell of platform.cells) {
      const shares = await pixels("confidence", cell);
      assert.ok(shares.opaque > 0, `${cell} has classified pixels`);
      for (const hex of Object.keys(shares.colours))
        assert.ok(ramp.has(hex), `${cell}: ${hex} is a vote share's colour on the ramp`);
    }
    const z = await page.evaluate(() =>
      ["source", "classes", "confidence", "overlay"].map((p) =>
        Number(getComputedStyle(document.querySelector(`.leaflet-${p}-pane`) as DomElement).zIndex),
      ),
    );
    assert.deepEqual(
      [...z].sort((a, b) => a - b),
      z,
      `source < classes < confidence < outlines: ${z.join(" < ")}`,
    );
    await page.locator("#classes-opacity").fill("100");
    // The panel (showing the flooded cell's winner) says how much of it lacks a majority.
    assert.match(
      await page.locator('#tile-panel [data-field="low-confidence"]').innerText(),
      /^\d+(\.\d+)? % of pixels won by at most \d+ of \d+ votes$/,
    );
    await shoot(page, "06-true-colour-and-confidence");

    await page.getByRole("radio", { name: "Off" }).check();
    await page.getByRole("checkbox", { name: /Confidence/ }).uncheck();
    await page.waitForFunction(
      () =>
        document.querySelectorAll("img.lm-source, img.lm-confidence")[Symbol.iterator]().next().done === true,
      undefined,
      { timeout: WAIT_MS },
    );
  });

  test("clicking a pixel names the acquisition it came from, and the Age toggle lays each cell's pixel ages over the map", async () => {
    await page.locator(`path[data-cell="${FLOOD_CELL}"]`).click();
    await page.waitForFunction(
      () => (document.getElementById("pixel-panel")?.dataset["tileId"] ?? "") !== "",
      undefined,
      {
        timeout: WAIT_MS,
      },
    );
    const pixel = await page.evaluate(() => {
      const p = document.getElementById("pixel-panel") as DomElement;
      return { lane: p.dataset["lane"], tileId: p.dataset["tileId"], text: p.textContent ?? "" };
    });
    // The fresh acquisition, or the batch one under one of its clouds.
    assert.ok(pixel.lane === "live" || pixel.lane === "batch", `lane ${pixel.lane}`);
    assert.match(pixel.text, /Source/);
    assert.match(pixel.text, /days/);
    await page.locator("#age-toggle").check();
    await page.waitForFunction(
      (count) => {
        const imgs = [...document.querySelectorAll("img.lm-age")] as DomImage[];
        return imgs.length === count && imgs.every((img) => img.complete && img.naturalWidth > 0);
      },
      platform.cells.length,
      { timeout: WAIT_MS, polling: 50 },
    );
    await shoot(page, "07-age-layer");
    await page.locator("#age-toggle").uncheck();
    await page.waitForFunction(() => [...document.querySelectorAll("img.lm-age")].length === 0, undefined, {
      timeout: WAIT_MS,
    });
  });

  test("the page logged no errors and broke no content security rule", () => {
    assert.deepEqual(problems, []);
  });
});
