/**
 * The Leaflet map: panes, scale, the pointer's coordinates and a graticule (there is no basemap).
 */
import * as L from "/vendor/leaflet/leaflet-src.esm.js";
import { h } from "./dom.js";
import { requestVisibleImages } from "./images.js";

export const map = L.map("map", {
  zoomSnap: 0.25,
  zoomDelta: 0.5,
  minZoom: 2,
  maxZoom: 18,
  worldCopyJump: false,
  attributionControl: true,
});
map.attributionControl.setPrefix(false);
map.attributionControl.addAttribution("lanemap classes · Leaflet");
L.control.scale({ metric: true, imperial: false }).addTo(map);
// Class images sit below the outlines (overlayPane, 400), so clicks reach the outlines; the
// graticule is drawn over both but takes no clicks. z-indexes are in style.css.
map.createPane("classes");
map.createPane("graticule");
map.setView([0, 0], 2);

/** Shows the pointer's coordinates, the only geography a map without a basemap can give. */
const CoordinatesControl = L.Control.extend({
  options: { position: "bottomleft" },
  onAdd(m) {
    const el = h("div", { className: "leaflet-control coords", "aria-hidden": "true" });
    m.on("mousemove", (e) => {
      const { lat, lng } = e.latlng;
      el.textContent = `${Math.abs(lat).toFixed(4)}° ${lat >= 0 ? "N" : "S"}  ${Math.abs(lng).toFixed(4)}° ${lng >= 0 ? "E" : "W"}`;
    });
    m.on("mouseout", () => (el.textContent = ""));
    return el;
  },
});
new CoordinatesControl().addTo(map);

let graticule = L.layerGroup().addTo(map);

/** The step of a graticule with a handful of lines over `span` degrees: 1, 2 or 5 × 10^k. */
function graticuleStep(span) {
  const raw = span / 6;
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5]) if (m * p >= raw) return m * p;
  return 10 * p;
}

/** Lines of latitude and longitude over the view, redrawn after every move. */
export function drawGraticule() {
  const b = map.getBounds();
  const south = Math.max(-85, b.getSouth());
  const north = Math.min(85, b.getNorth());
  const west = Math.max(-180, b.getWest());
  const east = Math.min(180, b.getEast());
  if (!(north > south && east > west)) return;
  const step = graticuleStep(Math.max(north - south, east - west));
  const layer = L.layerGroup();
  const style = { pane: "graticule", interactive: false, color: "#7b8794", weight: 1, opacity: 0.45 };
  for (let lat = Math.ceil(south / step) * step; lat <= north; lat += step)
    L.polyline(
      [
        [lat, west],
        [lat, east],
      ],
      style,
    ).addTo(layer);
  for (let lng = Math.ceil(west / step) * step; lng <= east; lng += step)
    L.polyline(
      [
        [south, lng],
        [north, lng],
      ],
      style,
    ).addTo(layer);
  graticule.remove();
  graticule = layer.addTo(map);
}

map.on("moveend", () => {
  drawGraticule();
  requestVisibleImages();
});
