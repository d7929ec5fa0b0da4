export {
  MAX_HILBERT_ORDER,
  hilbertIndex,
  hilbertIndexOfPoint,
  hilbertOrderFor,
  hilbertPoint,
} from "./curve.js";
export {
  aoiCompletion,
  blockAround,
  orderTiles,
  splitRanges,
  type GridPoint,
  type GridTile,
  type Ordering,
  type TileBlock,
} from "./ordering.js";
