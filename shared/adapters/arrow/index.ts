/** Arrow adapter: tabular answers as Arrow IPC streams (apache-arrow), and back for tests. */
export {
  ARROW_STREAM_MEDIA_TYPE,
  arrowColumn,
  decodeArrowStream,
  encodeArrowStream,
  type ArrowColumn,
  type ArrowColumnType,
  type ArrowColumnValue,
} from "./arrow-stream.js";
