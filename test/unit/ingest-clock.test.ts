/**
 * The ingest stream as lanemap's clock (issue 14 gap): when LANEMAP_TILES is behind what lanemap
 * recorded — deleted and recreated, so its sequences start at 1 again — and what the one line says.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  ERROR_CODES,
  IngestStreamBehindError,
  describeIngestStreamBehind,
  highestRecorded,
  ingestStreamBehind,
  type RecordedSeq,
} from "../../shared/index.js";

const w = (seq: number): RecordedSeq => ({ seq, source: `the watermark of batch view v00000${seq}` });
const tomb = (seq: number): RecordedSeq => ({ seq, source: `the tombstone of tile t${seq}` });
const range = (firstSeq: number, lastSeq: number, messages: number) => ({ firstSeq, lastSeq, messages });

describe("ingestStreamBehind", () => {
  test("a recreated empty stream is behind the highest recorded sequence, wherever it is recorded", () => {
    const b = ingestStreamBehind("LANEMAP_TILES", range(0, 0, 0), [w(120), tomb(131), w(97)]);
    assert.deepEqual(b, {
      stream: "LANEMAP_TILES",
      lastSeq: 0,
      messages: 0,
      recorded: tomb(131),
      nextSeq: 132,
    });
  });

  test("a stream that does not exist counts as last sequence 0", () => {
    assert.equal(ingestStreamBehind("LANEMAP_TILES", null, [w(3)])?.lastSeq, 0);
    assert.equal(ingestStreamBehind("LANEMAP_TILES", null, []), null, "nothing recorded: nothing behind");
  });

  test("a recreated stream that took new messages is behind until its last sequence reaches the record", () => {
    assert.equal(ingestStreamBehind("S", range(1, 119, 119), [w(120)])?.messages, 119);
    assert.equal(ingestStreamBehind("S", range(1, 120, 120), [w(120)]), null, "at the record");
    assert.equal(ingestStreamBehind("S", range(1, 500, 500), [w(120)]), null, "past it");
  });

  test("a stream advanced past the record (empty, first = record + 1) is not behind", () => {
    assert.equal(ingestStreamBehind("S", range(121, 120, 0), [w(120), tomb(7)]), null);
  });

  test("a stream whose limits discarded every message keeps its last sequence and is not behind", () => {
    assert.equal(ingestStreamBehind("S", range(901, 900, 0), [w(900)]), null);
  });

  test("sequence 0 records nothing (bulk loads, a view of bulk loads only, a tombstone before any ingest)", () => {
    assert.equal(ingestStreamBehind("S", range(0, 0, 0), [w(0), tomb(0)]), null);
    assert.equal(highestRecorded([w(0)]), undefined);
  });

  test("equal records keep the first one named", () => {
    assert.deepEqual(highestRecorded([w(5), tomb(5)]), w(5));
  });
});

describe("the refusal", () => {
  test("one line naming the stream, its last sequence, the record, where it is and what to run", () => {
    const b = ingestStreamBehind("LANEMAP_TILES", range(0, 0, 0), [w(3)])!;
    const line = describeIngestStreamBehind(b);
    assert.doesNotMatch(line, /\n/);
    assert.match(
      line,
      /^INGEST_STREAM_BEHIND: ingest stream LANEMAP_TILES is at last sequence 0 but lanemap recorded sequence 3 \(the watermark of batch view v000003\): .*run `lanemap ops advance-ingest-stream` \(its first sequence becomes 4\)$/,
    );
  });

  test("a stream holding messages since it was recreated says the advance will refuse them", () => {
    const line = describeIngestStreamBehind(ingestStreamBehind("LANEMAP_TILES", range(1, 2, 2), [w(3)])!);
    assert.match(line, /holds 2 message\(s\) stored since: the advance refuses a stream that is not empty/);
  });

  test("is an INGEST_STREAM_BEHIND error: permanent, exit 1, 409", () => {
    const err = new IngestStreamBehindError(ingestStreamBehind("S", null, [w(1)])!);
    assert.equal(err.code, "INGEST_STREAM_BEHIND");
    assert.equal(err.name, "IngestStreamBehindError");
    assert.deepEqual(ERROR_CODES.INGEST_STREAM_BEHIND, {
      status: 409,
      permanent: true,
      exit: 1,
      meaning: ERROR_CODES.INGEST_STREAM_BEHIND.meaning,
    });
    assert.equal(err.behind.nextSeq, 2);
  });
});
