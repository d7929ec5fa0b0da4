/**
 * The land-cover classes of generated archives and their surface reflectance, taken from a real
 * Landsat 7 scene so that synthetic tiles look like imagery to a classifier.
 *
 * How the numbers were derived (once, offline, 2024; not at run time):
 *   scene  ../shared/data/chiapas-l7-labels/LE70220491999322EDC01_stack.gtif (Landsat 7 ETM+ surface
 *          reflectance x 1e4, Chiapas, 1999-11-18; bands 1-6 of the stack = ETM+ bands 1,2,3,4,5,7)
 *   labels ../shared/data/chiapas-l7-labels/training_data.gtif (1 forest, 2 water, 3 herbaceous,
 *          4 barren, 5 urban), same 250 x 250 grid
 *   method with rasterio + numpy (Debian python3): for each label, every pixel whose six bands are all
 *          valid (!= -9999); per band the mean and the population standard deviation, rounded.
 *          Pixel counts: forest 383, water 16, herbaceous 145, barren 106, urban 68.
 *   forest, water, urban come straight from their labels; bare is "barren".
 *   crop and grass are derived from "herbaceous" (the scene does not separate them), by multiplying
 *          its mean per band with plausible factors: crop = irrigated, dense green canopy (red x0.70,
 *          NIR x1.12, SWIR x0.90/x0.80: higher NDVI, wetter); grass = dry pasture (red x1.35, NIR x0.78,
 *          SWIR x1.20/x1.35: lower NDVI, brighter SWIR). Their std is herbaceous' (crop x0.9: more
 *          uniform fields).
 * The scene's water is shallow and turbid (NIR 0.16), which is realistic for rivers in the region.
 */

/** Landsat SR band names of the generated bands, in file order: red = band 3, NIR = band 4. */
export const SAMPLE_BAND_NAMES = ["SR_B1", "SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B7"] as const;

/** Centre wavelengths (micrometres) of ETM+ bands 1, 2, 3, 4, 5, 7, for archive.json. */
export const SAMPLE_BAND_WAVELENGTHS = [0.485, 0.56, 0.66, 0.835, 1.65, 2.22] as const;

/** 1-based band numbers of red and near infrared in generated tiles (for NDVI). */
export const SAMPLE_RED_BAND = 3;
export const SAMPLE_NIR_BAND = 4;

/** Stored value = reflectance x 1e4; the files carry scale 1e-4 so readers get reflectance. */
export const SAMPLE_REFLECTANCE_SCALE = 1e-4;

/** The name of a generated land-cover class. */
export type SampleClassName = "bare" | "crop" | "forest" | "grass" | "urban" | "water";

/** A land-cover class: id in truth rasters, name in training polygons, colour in the truth palette. */
export interface SampleClass {
  readonly id: number;
  readonly name: SampleClassName;
  readonly color: readonly [number, number, number];
}

/**
 * The classes, numbered 1.. in the alphabetical order of their names: a classifier trained from the
 * training polygons numbers classes by sorted name (as the peer does), so its class raster and the
 * truth raster use the same ids. 0 is nodata in truth rasters.
 */
export const SAMPLE_CLASSES: readonly SampleClass[] = [
  { id: 1, name: "bare", color: [196, 160, 110] },
  { id: 2, name: "crop", color: [240, 200, 40] },
  { id: 3, name: "forest", color: [20, 110, 40] },
  { id: 4, name: "grass", color: [150, 210, 110] },
  { id: 5, name: "urban", color: [200, 40, 40] },
  { id: 6, name: "water", color: [40, 100, 200] },
];

/** Class ids by name, for readable code. */
export const CLASS_ID = {
  bare: 1,
  crop: 2,
  forest: 3,
  grass: 4,
  urban: 5,
  water: 6,
} as const satisfies Record<SampleClassName, number>;

/** Per class, per band (SR_B1..SR_B7): mean and standard deviation of reflectance x 1e4. */
export interface ClassSpectrum {
  readonly mean: readonly [number, number, number, number, number, number];
  readonly std: readonly [number, number, number, number, number, number];
}

/** Spectra by class name; see the module comment for their provenance. */
export const SAMPLE_SPECTRA: Readonly<Record<SampleClassName, ClassSpectrum>> = {
  // Chiapas "barren".
  bare: { mean: [735, 997, 1230, 2854, 3195, 2154], std: [359, 472, 550, 313, 403, 729] },
  // Chiapas "herbaceous" x (0.90, 1.05, 0.70, 1.12, 0.90, 0.80); std x 0.9.
  crop: { mean: [410, 796, 424, 4721, 1976, 755], std: [79, 133, 203, 415, 144, 121] },
  // Chiapas "forest".
  forest: { mean: [305, 454, 298, 3248, 1486, 576], std: [32, 45, 49, 325, 179, 86] },
  // Chiapas "herbaceous" x (1.10, 1.00, 1.35, 0.78, 1.20, 1.35).
  grass: { mean: [502, 758, 817, 3288, 2635, 1274], std: [88, 148, 226, 461, 160, 134] },
  // Chiapas "urban".
  urban: { mean: [965, 1296, 1705, 2746, 3501, 2807], std: [233, 312, 376, 347, 255, 230] },
  // Chiapas "water".
  water: { mean: [583, 783, 849, 1572, 968, 639], std: [126, 168, 193, 239, 276, 261] },
};
