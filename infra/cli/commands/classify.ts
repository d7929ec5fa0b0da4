import { writeFile } from "node:fs/promises";
import type { Command } from "commander";
import {
  classSummary,
  createClassifier,
  encodeGeoTiff,
  loadModelFile,
  pamCategoryNamesXml,
  parseColour,
  type Model,
  type Rgb,
} from "../../../shared/index.js";
import { UsageError } from "../usage.js";
import { readRaster } from "./train.js";
import { commandSummary } from "./index.js";

interface ClassifyFlags {
  model?: string;
  out?: string;
}

/** The class raster's palette: index 0 (not classified) black, then each class's colour. */
function palette(model: Model): Rgb[] {
  const colours: Rgb[] = [[0, 0, 0]];
  for (const c of model.classes) colours[c.id] = parseColour(c.colour);
  for (let i = 0; i < colours.length; i++) colours[i] ??= [0, 0, 0];
  return colours;
}

/** Category names by pixel value: 0 is "not classified", then each class at its id. */
function categoryNames(model: Model): string[] {
  const names = ["not classified"];
  for (const c of model.classes) names[c.id] = c.name;
  return Array.from(names, (n) => n ?? "");
}

/** `lanemap classify`: one tile -> a uint8 class GeoTIFF and a JSON summary on stdout. */
export function registerClassify(program: Command): void {
  program
    .command("classify")
    .description(commandSummary("classify"))
    .argument("<tile>", "GeoTIFF tile")
    .option("--model <model.json>", "model file from `lanemap train`")
    .option("--out <classes.tif>", "where to write the class raster (omit for the summary alone)")
    .action(async (tile: string, flags: ClassifyFlags) => {
      if (!flags.model) throw new UsageError("--model <model.json> is required");
      const model = await loadModelFile(flags.model);
      const raster = await readRaster(tile);
      const t0 = performance.now();
      const classification = createClassifier(model).classify(raster);
      const seconds = (performance.now() - t0) / 1000;
      if (flags.out) {
        const bytes = encodeGeoTiff(
          {
            width: raster.width,
            height: raster.height,
            bands: [classification.classes],
            // The tile's georeferencing tags verbatim (GeoKeys, parameters, tie points or matrix):
            // the class raster has exactly the tile's CRS and grid, EPSG code or not.
            geoTags: raster.geoTags ?? null,
            geoTransform: raster.geoTransform,
            nodata: 0,
            bandNames: ["class"],
            colorMap: palette(model),
            metadata: {
              LANEMAP_MODEL_VERSION: model.version,
              LANEMAP_CLASSES: model.classes.map((c) => `${c.id}=${c.name}`).join(","),
            },
          },
          // Runs of classes: zlib's run-length strategy (see GeoTiffEncodeOptions.deflateStrategy).
          { compression: "deflate", deflateStrategy: "rle" },
        );
        await writeFile(flags.out, bytes);
        // Class names where GDAL reads them (gdalinfo "Categories:", QGIS, rasterio).
        await writeFile(`${flags.out}.aux.xml`, pamCategoryNamesXml(categoryNames(model)));
      }
      const summary = classSummary(classification, model, raster);
      console.log(
        JSON.stringify(
          {
            tile,
            out: flags.out ?? null,
            ...summary,
            seconds: Math.round(seconds * 1000) / 1000,
          },
          null,
          2,
        ),
      );
    });
}
