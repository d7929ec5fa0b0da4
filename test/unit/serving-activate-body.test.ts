import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { InvalidParamsError } from "../../serving/errors.js";
import { parseActivateBody } from "../../serving/usecases/activate-body.js";

describe("the body of POST /v1/models/{version}/activate", () => {
  test("an empty body asks for no batch run, `around` alone for a run ordered around the point", () => {
    assert.deepEqual(parseActivateBody(undefined), {});
    assert.deepEqual(parseActivateBody({}), {});
    assert.deepEqual(parseActivateBody({ around: { lon: -92.5, lat: 16.25 } }), {
      around: { lon: -92.5, lat: 16.25 },
    });
  });

  test("a bbox is the viewport of a progressive publish, and `around` defaults to its centre", () => {
    assert.deepEqual(parseActivateBody({ bbox: [-93, 16, -92, 17] }), {
      around: { lon: -92.5, lat: 16.5 },
      viewport: { minLon: -93, minLat: 16, maxLon: -92, maxLat: 17 },
    });
    assert.deepEqual(parseActivateBody({ around: { lon: -92.9, lat: 16.1 }, bbox: [-93, 16, -92, 17] }), {
      around: { lon: -92.9, lat: 16.1 },
      viewport: { minLon: -93, minLat: 16, maxLon: -92, maxLat: 17 },
    });
  });

  test("a bbox with min above max, out of range or of the wrong length is refused, naming body.bbox", () => {
    for (const bbox of [
      [-92, 16, -93, 17],
      [-93, 17, -92, 16],
      [-93, 16, -92, 91],
      [-93, 16, -92],
    ]) {
      assert.throws(
        () => parseActivateBody({ bbox }),
        (err: unknown) =>
          err instanceof InvalidParamsError && err.invalidParams.every((p) => p.name.startsWith("body.bbox")),
        JSON.stringify(bbox),
      );
    }
  });
});
