import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { EMPTY_CATALOGUE, assignClasses, mergeClasses, type ClassCatalogue } from "../../shared/internal.js";

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
