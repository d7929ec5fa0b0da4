export { MAX_HILBERT_ORDER, hilbertPoint } from "./curve.js";
export { orderTiles, type GridPoint, type GridTile, type Ordering } from "./ordering.js";
