/** The tile pipeline both lanes share: describe and register a tile, classify it into a result. */
export { acquiredFromFileName, describeTile, type DescribeOptions, type TileMeta } from "./describe.js";
export { readSidecar, registerTile } from "./register.js";
export { classifyRaster, classifyTileBytes, prepareClassifier, type ResultSource } from "./classify.js";
