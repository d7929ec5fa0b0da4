import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { MAX_PAM_BYTES, TileInvalidError, applyPam, parsePam, type RasterInfo } from "../../shared/index.js";
import { pamFromHeader } from "../../speed/publish.js";

const GDAL_SIDECAR = `<PAMDataset>
  <SRS dataAxisToSRSAxisMapping="1,2">PROJCS["WGS 84 / UTM zone 15N"]</SRS>
  <PAMRasterBand band="1">
    <Offset>1</Offset>
    <Scale>7</Scale>
  </PAMRasterBand>
  <PAMRasterBand band="2">
    <NoDataValue>3.00000000000000E+00</NoDataValue>
    <Offset>10</Offset>
    <Scale>0.5</Scale>
    <Metadata><MDI key="STATISTICS_MEAN">2.5</MDI></Metadata>
  </PAMRasterBand>
  <PAMRasterBand band="3">
    <NoDataValue le_hex_equiv="9A9999999999B93F">1.00000000000000E-01</NoDataValue>
  </PAMRasterBand>
  <PAMRasterBand band="4">
    <NoDataValue>nan</NoDataValue>
  </PAMRasterBand>
</PAMDataset>`;

function info(extra: Partial<RasterInfo> = {}): RasterInfo {
  return {
    width: 1,
    height: 1,
    bandCount: 4,
    dtype: "float32",
    nodata: [1, 1, 1, 1],
    scale: [2, 1, 1, 1],
    offset: [1, 0, 0, 0],
    geoTransform: null,
    crs: null,
    bounds: null,
    boundsWgs84: null,
    acquired: null,
    compression: "none",
    tiled: false,
    ...extra,
  };
}

describe("GDAL PAM sidecars", () => {
  test("reads each band's nodata (exactly, from le_hex_equiv when given), scale and offset, and nothing else", () => {
    assert.deepEqual(parsePam(GDAL_SIDECAR), {
      bands: [
        { band: 1, scale: 7, offset: 1 },
        { band: 2, nodata: "3.00000000000000E+00", scale: 0.5, offset: 10 },
        { band: 3, nodata: "0.1" },
        { band: 4, nodata: "nan" },
      ],
    });
  });

  test("the sidecar's nodata wins over the TIFF's, in the band's type; its scale/offset only where the TIFF has none", () => {
    const out = applyPam(info(), parsePam(GDAL_SIDECAR));
    assert.equal(out.nodata[1], 3);
    assert.equal(out.nodata[2], Math.fround(0.1), "compared as float32");
    assert.ok(Number.isNaN(out.nodata[3]));
    assert.deepEqual(out.scale, [2, 0.5, 1, 1], "band 1 keeps the TIFF's scale 2");
    assert.deepEqual(out.offset, [1, 10, 0, 0]);
  });

  test("refuses what is not a PAM sidecar, or too large to be one", () => {
    for (const [xml, reason] of [
      ["<PAMDataset><PAMRasterBand band='1'>", /well-formed/],
      ["<Other/>", /PAMDataset/],
      ["<PAMDataset><PAMRasterBand band='1'><Scale>x</Scale></PAMRasterBand></PAMDataset>", /not a number/],
      ["<PAMDataset>" + " ".repeat(MAX_PAM_BYTES) + "</PAMDataset>", /over the/],
    ] as const)
      assert.throws(
        () => parsePam(xml),
        (err: unknown) => err instanceof TileInvalidError && reason.test(err.message),
      );
  });

  test("travels in the ingest message's Lanemap-Pam header and comes back the same", () => {
    const pam = parsePam(GDAL_SIDECAR);
    assert.deepEqual(pamFromHeader(JSON.stringify(pam)), pam);
    assert.equal(pamFromHeader(undefined), undefined);
    assert.throws(() => pamFromHeader('{"bands":[{"band":0}]}'), TileInvalidError);
  });
});
