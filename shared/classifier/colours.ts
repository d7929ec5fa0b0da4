/**
 * Default class colours: conventional land-cover colours for the names people use, so a fresh model
 * renders sensibly; any other name takes the next colour of a fixed palette.
 */

/** Keyword -> colour, first match wins (so "bare soil" is tan, not a soil-coloured default). */
const NAMED: readonly (readonly [RegExp, string])[] = [
  [/cloud/, "#ffffff"],
  [/shadow/, "#4d4d4d"],
  [/snow|ice|glacier/, "#e0f3f8"],
  [/water|river|lake|sea|ocean|reservoir|pond/, "#1f78b4"],
  [/wetland|marsh|swamp|mangrove/, "#66c2a5"],
  [/forest|tree|wood/, "#1b7837"],
  [/shrub|scrub/, "#7fbc41"],
  [/crop|agri|farm|cultiv|field/, "#e6c229"],
  [/herb|grass|pasture|meadow|savann|rangeland/, "#b8e186"],
  [/urban|built|city|town|settle|road|impervious|building/, "#d7301f"],
  [/barren|bare|sand|rock|soil|desert|mine|quarry/, "#d2b48c"],
];

/** Distinct colours for classes without a conventional one (ColorBrewer Set1/Dark2). */
export const PALETTE = [
  "#e41a1c",
  "#377eb8",
  "#4daf4a",
  "#984ea3",
  "#ff7f00",
  "#a65628",
  "#f781bf",
  "#999999",
  "#1b9e77",
  "#d95f02",
  "#7570b3",
  "#e7298a",
  "#66a61e",
  "#e6ab02",
  "#a6761d",
  "#666666",
] as const;

/**
 * Colours for class names, in order: the conventional colour of a recognised name, otherwise the
 * next palette colour (cycling).
 */
export function defaultColours(names: readonly string[]): string[] {
  let next = 0;
  return names.map((name) => {
    const lower = name.toLowerCase();
    for (const [pattern, colour] of NAMED) if (pattern.test(lower)) return colour;
    return PALETTE[next++ % PALETTE.length] as string;
  });
}

/**
 * "#rrggbb" -> [r, g, b].
 * @throws RangeError when `colour` is not #rrggbb.
 */
export function parseColour(colour: string): [number, number, number] {
  const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(colour);
  if (!m) throw new RangeError(`"${colour}" is not a #rrggbb colour`);
  return [parseInt(m[1] as string, 16), parseInt(m[2] as string, 16), parseInt(m[3] as string, 16)];
}

/** The conventional land-cover colour of a recognised class name, or null for any other name. */
export function conventionalColour(name: string): string | null {
  const lower = name.toLowerCase();
  for (const [pattern, colour] of NAMED) if (pattern.test(lower)) return colour;
  return null;
}
