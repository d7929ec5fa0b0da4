import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  EMPTY_CATALOGUE,
  MIN_CLASS_DELTA_E,
  assignClasses,
  deltaE2000,
  hexToLab,
  mergeClasses,
  unusableClassColour,
  type ClassCatalogue,
  type Lab,
} from "../../shared/internal.js";

const NAMES = ["water", "forest", "crop", "urban", "barren", "cloud", "wetland", "shadow", "snow", "grass"];

describe("the class catalogue", () => {
  test("a new name gets the next id, a known name keeps its id and colour", () => {
    let catalogue: ClassCatalogue = EMPTY_CATALOGUE;
    const first = assignClasses(catalogue, ["water", "forest"]);
    assert.deepEqual(
      first.map((c) => [c.id, c.name]),
      [
        [1, "water"],
        [2, "forest"],
      ],
    );
    catalogue = mergeClasses(catalogue, first);
    const second = assignClasses(catalogue, ["cloud", "forest", "water"]);
    assert.deepEqual(
      second.map((c) => [c.id, c.name]),
      [
        [1, "water"],
        [2, "forest"],
        [3, "cloud"],
      ],
    );
    assert.equal(second[0]?.colour, first[0]?.colour);
  });

  test("a retired class keeps its id: a later new name never reuses it", () => {
    let catalogue = mergeClasses(
      EMPTY_CATALOGUE,
      assignClasses(EMPTY_CATALOGUE, ["water", "forest", "crop"]),
    );
    const withoutCrop = assignClasses(catalogue, ["water", "forest"]);
    catalogue = mergeClasses(catalogue, withoutCrop);
    const later = assignClasses(catalogue, ["water", "urban"]);
    assert.deepEqual(
      later.map((c) => [c.id, c.name]),
      [
        [1, "water"],
        [4, "urban"],
      ],
    );
  });

  test("a model whose ids disagree with the catalogue is refused", () => {
    const catalogue = mergeClasses(EMPTY_CATALOGUE, assignClasses(EMPTY_CATALOGUE, ["water", "forest"]));
    assert.throws(() => mergeClasses(catalogue, [{ id: 1, name: "forest", colour: "#000000" }]), /has id 1/);
    assert.throws(() => mergeClasses(catalogue, [{ id: 2, name: "crop", colour: "#000000" }]), /class id 2/);
  });

  test("any sequence of trainings keeps every name's id and never gives one id to two names", () => {
    fc.assert(
      fc.property(
        fc.array(fc.subarray(NAMES, { minLength: 1 }), { minLength: 1, maxLength: 12 }),
        (trainings) => {
          let catalogue: ClassCatalogue = EMPTY_CATALOGUE;
          const idOf = new Map<string, number>();
          for (const names of trainings) {
            const classes = assignClasses(catalogue, names);
            assert.deepEqual(
              classes.map((c) => c.name).sort(),
              [...names].sort(),
              "the model has exactly its training names",
            );
            for (const c of classes) {
              if (idOf.has(c.name)) assert.equal(c.id, idOf.get(c.name), `${c.name} keeps its id`);
              idOf.set(c.name, c.id);
            }
            catalogue = mergeClasses(catalogue, classes);
            const ids = catalogue.classes.map((c) => c.id);
            assert.equal(new Set(ids).size, ids.length, "ids are distinct");
            assert.deepEqual(
              ids,
              [...ids].sort((a, b) => a - b),
              "sorted by id",
            );
          }
          // Ids are given in order of first appearance, without gaps: never reused, never skipped.
          assert.deepEqual(
            catalogue.classes.map((c) => c.id),
            catalogue.classes.map((_, i) => i + 1),
          );
        },
      ),
    );
  });
});

describe("colours of new catalogue classes", () => {
  const dE = (a: string, b: string) => deltaE2000(hexToLab(a), hexToLab(b));
  const close = (got: number, want: number, tol: number) =>
    assert.ok(Math.abs(got - want) <= tol, `${got} is not within ${tol} of ${want}`);

  test("CIEDE2000 matches Sharma, Wu and Dalal's test pairs, and sRGB converts to CIELAB as the CIE does", () => {
    const pairs: [Lab, Lab, number][] = [
      [[50, 2.6772, -79.7751], [50, 0, -82.7485], 2.0425],
      [[50, 0, 0], [50, -1, 2], 2.3669],
      [[50, 2.5, 0], [73, 25, -18], 27.1492],
      [[60.2574, -34.0099, 36.2677], [60.4626, -34.1751, 39.4387], 1.2644],
      [[22.7233, 20.0904, -46.694], [23.0331, 14.973, -42.5619], 2.0373],
    ];
    for (const [p, q, want] of pairs) {
      close(deltaE2000(p, q), want, 1e-4);
      close(deltaE2000(q, p), want, 1e-4);
    }
    hexToLab("#ffffff").forEach((v, i) => close(v, [100, 0, 0][i] as number, 0.01));
    hexToLab("#ff0000").forEach((v, i) => close(v, [53.24, 80.09, 67.2][i] as number, 0.01));
  });

  test("a new class keeps clear of the catalogue's colours: 'clearing' is not urban's red, 'cloud' is not white", () => {
    const catalogue = mergeClasses(
      EMPTY_CATALOGUE,
      assignClasses(EMPTY_CATALOGUE, ["water", "forest", "crop", "urban"]),
    );
    const added = assignClasses(catalogue, ["water", "forest", "crop", "urban", "clearing", "cloud"]);
    const colourOf = (name: string) => added.find((c) => c.name === name)?.colour as string;
    // The catalogued colours stay as they were (the conventional land-cover colours).
    assert.deepEqual(["water", "forest", "crop", "urban"].map(colourOf), [
      "#1f78b4",
      "#1b7837",
      "#e6c229",
      "#d7301f",
    ]);
    for (const name of ["clearing", "cloud"]) {
      assert.ok(!unusableClassColour(hexToLab(colourOf(name))), `${name}: ${colourOf(name)} is usable`);
      for (const other of added)
        if (other.name !== name)
          assert.ok(
            dE(colourOf(name), other.colour) >= MIN_CLASS_DELTA_E,
            `${name} ${colourOf(name)} vs ${other.name} ${other.colour}`,
          );
    }
    assert.notEqual(colourOf("cloud"), "#ffffff");
  });

  test(`30 new classes added one by one stay at least ΔE00 ${MIN_CLASS_DELTA_E} from each other and the conventional colours, none white, black or grey`, () => {
    const start = [
      "water",
      "forest",
      "crop",
      "urban",
      "barren",
      "cloud",
      "wetland",
      "shadow",
      "snow",
      "grass",
    ];
    let catalogue = mergeClasses(EMPTY_CATALOGUE, assignClasses(EMPTY_CATALOGUE, start));
    const before = catalogue.classes.map((c) => [c.id, c.colour]);
    for (let i = 1; i <= 30; i++)
      catalogue = mergeClasses(catalogue, assignClasses(catalogue, [`class-${i}`]));
    assert.deepEqual(
      catalogue.classes.slice(0, start.length).map((c) => [c.id, c.colour]),
      before,
      "existing ids keep their colours",
    );
    const all = catalogue.classes;
    assert.equal(all.length, 40);
    for (let i = 0; i < all.length; i++) {
      const a = all[i] as (typeof all)[number];
      assert.ok(
        !unusableClassColour(hexToLab(a.colour)),
        `${a.name} ${a.colour} is not white, black or grey`,
      );
      for (let j = i + 1; j < all.length; j++) {
        const b = all[j] as (typeof all)[number];
        // Pairs of conventional colours are the land-cover convention's (grass and shrub are near by design).
        if (i < start.length && j < start.length) continue;
        assert.ok(
          dE(a.colour, b.colour) >= MIN_CLASS_DELTA_E,
          `${a.name} ${a.colour} vs ${b.name} ${b.colour}: ΔE00 ${dE(a.colour, b.colour).toFixed(1)}`,
        );
      }
    }
  });

  test("the same catalogue always gives a new name the same colour", () => {
    const catalogue = mergeClasses(EMPTY_CATALOGUE, assignClasses(EMPTY_CATALOGUE, ["water", "urban"]));
    assert.deepEqual(assignClasses(catalogue, ["clearing"]), assignClasses(catalogue, ["clearing"]));
  });
});
