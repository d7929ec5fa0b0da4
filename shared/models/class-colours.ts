/**
 * Colours for new catalogue classes, chosen to stay apart from every colour the catalogue already
 * has. Taking "the next palette colour" gave a new "clearing" Set1's red #e41a1c beside urban's
 * #d7301f, and "cloud" the conventional #ffffff, which reads as the map's no-data gaps. Distance is
 * CIEDE2000 (ΔE00) in CIELAB, the CIE's difference metric closest to what people see.
 *
 * Sources: sRGB -> XYZ (D65) per IEC 61966-2-1; XYZ -> CIELAB per CIE 15:2004; ΔE00 per Sharma, Wu
 * and Dalal, "The CIEDE2000 color-difference formula: implementation notes, supplementary test
 * data, and mathematical observations", Color Res. Appl. 30 (2005), whose test pairs the unit test
 * checks.
 */
import { PALETTE, parseColour } from "../classifier/colours.js";

/** A CIELAB colour (D65 white): L* 0..100, a*, b*. */
export type Lab = readonly [number, number, number];

/**
 * The least ΔE00 a new class keeps from every colour already catalogued, as long as the candidate
 * palette has such a colour left (about 30 classes: see the unit test). 10 is a "clearly different
 * at a glance" difference; 2.3 is a just-noticeable one.
 */
export const MIN_CLASS_DELTA_E = 10;

/** "#rrggbb" -> CIELAB (D65). @throws RangeError when `colour` is not #rrggbb. */
export function hexToLab(colour: string): Lab {
  const lin = parseColour(colour).map((v) => {
    const c = v / 255;
    return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  }) as [number, number, number];
  const [r, g, b] = lin;
  const x = (0.4124564 * r + 0.3575761 * g + 0.1804375 * b) / 0.95047;
  const y = 0.2126729 * r + 0.7151522 * g + 0.072175 * b;
  const z = (0.0193339 * r + 0.119192 * g + 0.9503041 * b) / 1.08883;
  const f = (t: number) => (t > 216 / 24389 ? Math.cbrt(t) : ((24389 / 27) * t + 16) / 116);
  const fx = f(x);
  const fy = f(y);
  const fz = f(z);
  return [116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)];
}

const deg = Math.PI / 180;

/** CIEDE2000 colour difference of two CIELAB colours (kL = kC = kH = 1). */
export function deltaE2000(p: Lab, q: Lab): number {
  const [l1, a1, b1] = p;
  const [l2, a2, b2] = q;
  const cBar = (Math.hypot(a1, b1) + Math.hypot(a2, b2)) / 2;
  const g = 0.5 * (1 - Math.sqrt(cBar ** 7 / (cBar ** 7 + 25 ** 7)));
  const a1p = (1 + g) * a1;
  const a2p = (1 + g) * a2;
  const c1p = Math.hypot(a1p, b1);
  const c2p = Math.hypot(a2p, b2);
  const hue = (b: number, a: number) => {
    if (a === 0 && b === 0) return 0;
    const h = Math.atan2(b, a) / deg;
    return h < 0 ? h + 360 : h;
  };
  const h1p = hue(b1, a1p);
  const h2p = hue(b2, a2p);
  const dLp = l2 - l1;
  const dCp = c2p - c1p;
  let dhp = 0;
  if (c1p * c2p !== 0) {
    dhp = h2p - h1p;
    if (dhp > 180) dhp -= 360;
    else if (dhp < -180) dhp += 360;
  }
  const dHp = 2 * Math.sqrt(c1p * c2p) * Math.sin((dhp / 2) * deg);
  const lBarP = (l1 + l2) / 2;
  const cBarP = (c1p + c2p) / 2;
  let hBarP = h1p + h2p;
  if (c1p * c2p !== 0) {
    if (Math.abs(h1p - h2p) <= 180) hBarP = (h1p + h2p) / 2;
    else hBarP = h1p + h2p < 360 ? (h1p + h2p + 360) / 2 : (h1p + h2p - 360) / 2;
  }
  const t =
    1 -
    0.17 * Math.cos((hBarP - 30) * deg) +
    0.24 * Math.cos(2 * hBarP * deg) +
    0.32 * Math.cos((3 * hBarP + 6) * deg) -
    0.2 * Math.cos((4 * hBarP - 63) * deg);
  const dTheta = 30 * Math.exp(-(((hBarP - 275) / 25) ** 2));
  const rC = 2 * Math.sqrt(cBarP ** 7 / (cBarP ** 7 + 25 ** 7));
  const sL = 1 + (0.015 * (lBarP - 50) ** 2) / Math.sqrt(20 + (lBarP - 50) ** 2);
  const sC = 1 + 0.045 * cBarP;
  const sH = 1 + 0.015 * cBarP * t;
  const rT = -Math.sin(2 * dTheta * deg) * rC;
  return Math.sqrt((dLp / sL) ** 2 + (dCp / sC) ** 2 + (dHp / sH) ** 2 + rT * (dCp / sC) * (dHp / sH));
}

/**
 * True for colours a class must not take: near white (the map's gaps and a transparent-looking
 * overlay), near black (the class raster's nodata, 0, in the GeoTIFF colour table) and greys (read as
 * "no data" or as a disabled control). L* above 92 or below 20, or chroma C* below 15.
 */
export function unusableClassColour(lab: Lab): boolean {
  return lab[0] > 92 || lab[0] < 20 || Math.hypot(lab[1], lab[2]) < 15;
}

const hex2 = (v: number) => v.toString(16).padStart(2, "0");

/** The candidates, computed by the first `distinctClassColour` that needs them (see `candidates`). */
let candidateList: readonly { hex: string; lab: Lab }[] | null = null;

/**
 * The candidates, in preference order: ColorBrewer Set1/Dark2 (`PALETTE`, whose greys the filter drops; the old palette, so the first new
 * classes of a fresh directory look as before), then the 6×6×6 sRGB cube (steps of 0x33), each
 * without the unusable colours. Built on first use rather than when the module loads: every
 * command loads this module, few name a new class, and the ~230 colour conversions cost a
 * `lanemap classify` a few ms of start-up.
 */
function candidates(): readonly { hex: string; lab: Lab }[] {
  if (candidateList !== null) return candidateList;
  const cube: string[] = [];
  for (let r = 0; r < 6; r++)
    for (let g = 0; g < 6; g++)
      for (let b = 0; b < 6; b++) cube.push(`#${hex2(r * 51)}${hex2(g * 51)}${hex2(b * 51)}`);
  const seen = new Set<string>();
  const out: { hex: string; lab: Lab }[] = [];
  for (const hex of [...PALETTE, ...cube]) {
    if (seen.has(hex)) continue;
    seen.add(hex);
    const lab = hexToLab(hex);
    if (!unusableClassColour(lab)) out.push({ hex, lab });
  }
  candidateList = out;
  return out;
}

/** The least ΔE00 from `lab` to any of `taken` (Infinity when there are none). */
function nearest(lab: Lab, taken: readonly Lab[]): number {
  let d = Infinity;
  for (const t of taken) d = Math.min(d, deltaE2000(lab, t));
  return d;
}

/**
 * The colour of a new class beside the `taken` colours (#rrggbb): its `conventional` colour (the
 * land-cover colour its name suggests, `defaultColours`) when that is usable and at least
 * MIN_CLASS_DELTA_E from every taken colour, else the candidate farthest (greatest least ΔE00) from
 * every taken colour, the earliest candidate on a tie. Deterministic: the same catalogue gives the
 * same colour.
 */
export function distinctClassColour(taken: readonly string[], conventional: string | null): string {
  const labs = taken.flatMap((t) => {
    try {
      return [hexToLab(t)];
    } catch {
      return []; // a colour the catalogue holds in another form constrains nothing it can measure
    }
  });
  if (conventional) {
    const lab = hexToLab(conventional);
    if (!unusableClassColour(lab) && nearest(lab, labs) >= MIN_CLASS_DELTA_E) return conventional;
  }
  const list = candidates();
  let best = list[0] as { hex: string; lab: Lab };
  let bestD = -1;
  for (const c of list) {
    const d = nearest(c.lab, labs);
    if (d > bestD) {
      best = c;
      bestD = d;
    }
  }
  return best.hex;
}
