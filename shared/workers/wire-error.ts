/**
 * Errors across the decoder worker boundary: the one wire encoding of shared/errors.ts, under the
 * names the decoder pool has always used.
 */
export { decodeError as fromWireError, encodeError as toWireError, type WireError } from "../errors.js";
