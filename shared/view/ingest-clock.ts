/**
 * The ingest stream's sequences are lanemap's clock: the batch watermark W, catalogue entries'
 * `ingestSeq`, live results' sequences and tombstones all compare them (the merge rule absorbs live
 * results with seq <= W). A stream that was deleted and recreated (`nats stream rm`, a lost
 * JetStream store with lanemap's data kept) starts again at sequence 1, and every such comparison
 * goes silently wrong: new tiles hidden as absorbed, catalogue tiles dropped from the next view by a
 * lower W, a tombstone covering a re-ingested tile's new messages. The stream is behind when its last
 * sequence is below the highest sequence lanemap recorded; this module says so, purely, from the
 * stream's state and those records (the reads are the adapters', the refusals the composition
 * roots'; `lanemap ops advance-ingest-stream` is the repair).
 */
import { LanemapError } from "../errors.js";

/**
 * The ingest stream's stored range, from its stream info (`state.first_seq`, `last_seq`, `messages`).
 * An empty stream has `messages` 0 and firstSeq = lastSeq + 1 (0 and 0 when nothing was ever stored).
 */
export interface IngestStreamRange {
  readonly firstSeq: number;
  readonly lastSeq: number;
  readonly messages: number;
  /** When the first stored message was stored (undefined when the stream is empty). */
  readonly firstStoredAt?: Date;
}

/** One sequence lanemap recorded, and where it is recorded (for the message: "batch view v000003's watermark"). */
export interface RecordedSeq {
  readonly seq: number;
  readonly source: string;
}

/** The stream is behind lanemap's record: what to say and what the repair must reach. */
export interface IngestStreamBehind {
  readonly stream: string;
  /** The stream's last sequence (0: empty since created, or the stream does not exist). */
  readonly lastSeq: number;
  /** Messages it holds: the ones stored since it was recreated. */
  readonly messages: number;
  /** The highest sequence lanemap recorded, and where. */
  readonly recorded: RecordedSeq;
  /** The first sequence the stream must give out next: past every recorded one. */
  readonly nextSeq: number;
}

/** The highest of `records` (the first of equal ones), or undefined when there is none above 0. */
export function highestRecorded(records: Iterable<RecordedSeq>): RecordedSeq | undefined {
  let top: RecordedSeq | undefined;
  for (const r of records) if (r.seq > 0 && (top === undefined || r.seq > top.seq)) top = r;
  return top;
}

/**
 * Whether the ingest stream `stream` is behind lanemap's record: its last sequence below the highest
 * recorded one. `range` null means the stream does not exist (a command would create it empty).
 * Null when it is not behind: nothing recorded, or the stream has reached the record.
 */
export function ingestStreamBehind(
  stream: string,
  range: IngestStreamRange | null,
  records: Iterable<RecordedSeq>,
): IngestStreamBehind | null {
  const top = highestRecorded(records);
  const lastSeq = range?.lastSeq ?? 0;
  if (top === undefined || lastSeq >= top.seq) return null;
  return { stream, lastSeq, messages: range?.messages ?? 0, recorded: top, nextSeq: top.seq + 1 };
}

/** The command that repairs it (`lanemap ops advance-ingest-stream`). */
export const ADVANCE_INGEST_COMMAND = "lanemap ops advance-ingest-stream";

/** One line: the stream, its last sequence, the record, what it breaks and what to run. */
export function describeIngestStreamBehind(b: IngestStreamBehind): string {
  const since =
    b.messages > 0
      ? `; it already holds ${b.messages} message(s) stored since: the advance refuses a stream that is not empty, see README "Operations"`
      : "";
  return (
    `INGEST_STREAM_BEHIND: ingest stream ${b.stream} is at last sequence ${b.lastSeq} but lanemap recorded ` +
    `sequence ${b.recorded.seq} (${b.recorded.source}): the stream was deleted or recreated, and its new ` +
    `sequences would be taken for ones already absorbed; run \`${ADVANCE_INGEST_COMMAND}\` ` +
    `(its first sequence becomes ${b.nextSeq})${since}`
  );
}

/** The ingest stream is behind lanemap's record: a role refuses to start, a batch run to read. */
export class IngestStreamBehindError extends LanemapError {
  readonly behind: IngestStreamBehind;
  constructor(behind: IngestStreamBehind) {
    super("INGEST_STREAM_BEHIND", describeIngestStreamBehind(behind));
    this.behind = behind;
  }
}
