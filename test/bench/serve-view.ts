/**
 * The view bench:serve measures, shared with point-load.probe.ts so both query the same tiles: SIDE²
 * UTM tiles (zone 33N) of PIXELS² pixels of PIXEL_M m, classes in bands so every class occurs in
 * every tile, and the server processes (the serving layer, bare Express) both fork.
 */
import express from "express";
import { pino } from "pino";
import { parseConfig } from "../../shared/index.js";
import { createServer } from "../../serving/index.js";
import { makeRaster, utmTile, type TileFixture } from "../helpers/serving-views.js";

/** Tiles per side of the view's square. */
export const SIDE = 100;
/** Pixels per side of a tile. */
export const PIXELS = 64;
/** A pixel's side (m). */
export const PIXEL_M = 30;
/** The view's upper-left corner, easting and northing in EPSG:32633 (m). */
export const X0 = 300_000;
export const Y0 = 5_600_000;
/** A tile's side (m). */
export const TILE_M = PIXELS * PIXEL_M;

/** The view's SIDE² batch tiles, cell `cCCCCrRRRR` and tile id `t-col-row`. */
export function buildTiles(): TileFixture[] {
  const tiles: TileFixture[] = [];
  for (let col = 0; col < SIDE; col++)
    for (let row = 0; row < SIDE; row++)
      tiles.push(
        utmTile({
          x0: X0 + col * TILE_M,
          y0: Y0 - row * TILE_M,
          pixels: PIXELS,
          pixelM: PIXEL_M,
          cell: `c${String(col).padStart(4, "0")}r${String(row).padStart(4, "0")}`,
          tileId: `t-${col}-${row}`,
          lane: "batch",
          acquired: "2026-06-01T10:00:00Z",
          ingestSeq: col * SIDE + row,
          raster: makeRaster(
            PIXELS,
            (c, r) => ((c >> 3) + (r >> 3) + col + row) % 5,
            5,
            (c) => 1 + (c % 5),
          ),
        }),
      );
  return tiles;
}

/** In a forked child: the serving layer over `dataDir` on a free loopback port; its URL goes to the parent. */
export async function serveChild(dataDir: string): Promise<void> {
  const config = parseConfig({
    LANEMAP_DATA_DIR: dataDir,
    PORT: "0",
    HOST: "127.0.0.1",
    LANEMAP_LOG_LEVEL: "silent",
  });
  const server = createServer(config, { logger: pino({ level: "silent" }) });
  const l = await server.listen();
  process.once("SIGTERM", () => void server.close().then(() => process.exit(0)));
  process.send?.({ url: l.url });
}

/** In a forked child: the bare Express endpoint GET /ok → `{"ok": true}`; its URL goes to the parent. */
export function bareChild(): void {
  const app = express();
  app.get("/ok", (_req, res) => {
    res.json({ ok: true });
  });
  const server = app.listen(0, "127.0.0.1", () => {
    const addr = server.address();
    process.send?.({ url: `http://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}` });
  });
  process.once("SIGTERM", () => server.close(() => process.exit(0)));
}
