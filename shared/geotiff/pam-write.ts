/**
 * GDAL's PAM sidecar (`<file>.aux.xml`) for what a GeoTIFF cannot hold itself. GDAL's GTiff driver keeps
 * a band's category names there (`gdal_translate` of a raster with categories writes exactly this), and
 * `gdalinfo`, QGIS and rasterio read them from it: a class raster's names travel this way.
 */

function xmlText(s: string): string {
  return s.replace(/[<>&]/g, (c) => (c === "<" ? "&lt;" : c === ">" ? "&gt;" : "&amp;"));
}

/**
 * The `.aux.xml` text giving band 1 the category names `names` (index = pixel value; an empty string
 * leaves a value unnamed), as GDAL writes it.
 */
export function pamCategoryNamesXml(names: readonly string[]): string {
  const categories = names.map((n) => `      <Category>${xmlText(n)}</Category>`).join("\n");
  return (
    `<PAMDataset>\n  <PAMRasterBand band="1">\n    <CategoryNames>\n${categories}\n` +
    `    </CategoryNames>\n  </PAMRasterBand>\n</PAMDataset>\n`
  );
}
