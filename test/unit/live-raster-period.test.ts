import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  LIVE_RASTER_BUCKET,
  liveRasterBucket,
  liveRasterPeriod,
  parseLiveRasterBucket,
} from "../../shared/adapters/nats/index.js";

describe("the period of a live raster bucket", () => {
  test("is the UTC month the raster is written in, whatever the local time zone says", () => {
    assert.equal(liveRasterPeriod(new Date("2026-11-30T23:59:59.999Z")), "202611");
    assert.equal(liveRasterPeriod(new Date("2026-12-01T00:00:00Z")), "202612");
    assert.equal(liveRasterPeriod(new Date("2026-12-01T00:30:00+01:00")), "202611");
    assert.equal(liveRasterPeriod(new Date("0999-01-15T00:00:00Z")), "099901");
  });

  test("names a bucket whose name gives the period back, and the legacy bucket has none", () => {
    assert.equal(liveRasterBucket("202611"), "lanemap-live-rasters-202611");
    assert.equal(parseLiveRasterBucket("lanemap-live-rasters-202611"), "202611");
    assert.equal(liveRasterBucket(null), LIVE_RASTER_BUCKET);
    assert.equal(parseLiveRasterBucket(LIVE_RASTER_BUCKET), null);
    for (const other of [
      "lanemap-live",
      "lanemap-live-rasters-2026",
      "lanemap-live-rasters-2026110",
      "lanemap-tiles",
    ])
      assert.equal(parseLiveRasterBucket(other), undefined, other);
  });
});
