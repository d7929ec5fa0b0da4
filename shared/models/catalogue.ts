/**
 * The class catalogue: which id and colour each class name has in one data directory. A name keeps
 * its id (and colour) for the life of the directory; a new name gets the next id, never one used
 * before; a class no current model has (retired) keeps its id, so an old view still reads right.
 * Before the catalogue, ids were "sorted class names from 1": adding "cloud" renumbered every class
 * after it, and a live result from the newer model was named and counted as the wrong class.
 *
 * The catalogue is kept by the model registry (files or NATS KV, like the models): it grows when a
 * model with new names is stored. These functions are the pure rules.
 */
import { conventionalColour } from "../classifier/colours.js";
import { MAX_CLASSES } from "../classifier/engine.js";
import type { ModelClass } from "../classifier/model.js";
import { ModelError, TrainingDataError } from "../errors.js";
import { distinctClassColour } from "./class-colours.js";

/** The catalogue: every class ever stored, by id. */
export interface ClassCatalogue {
  /** Sorted by id; ids are distinct, 1..255, and not necessarily contiguous. */
  readonly classes: readonly ModelClass[];
}

export const EMPTY_CATALOGUE: ClassCatalogue = { classes: [] };

/**
 * The classes of a model trained on `names`: a catalogued name keeps its id and colour, a new one
 * gets the next id after the highest ever given and a colour far from every colour the catalogue
 * (and the names before it in this call) has (`distinctClassColour`: its conventional land-cover
 * colour when that stands apart, else the palette colour of greatest least CIEDE2000 difference;
 * never white, black or grey). The choice depends on the catalogue alone, not on which names one
 * training happens to have. `colours` overrides colours of new names only (a catalogued colour is
 * stable for the life of the data directory).
 * @returns sorted by id.
 * @throws TrainingDataError when the ids would run past 255 (a class raster is uint8).
 */
export function assignClasses(
  catalogue: ClassCatalogue,
  names: readonly string[],
  colours: Readonly<Record<string, string>> = {},
): ModelClass[] {
  const byName = new Map(catalogue.classes.map((c) => [c.name, c]));
  let next = catalogue.classes.reduce((m, c) => Math.max(m, c.id), 0) + 1;
  const taken = catalogue.classes.map((c) => c.colour);
  const out: ModelClass[] = [];
  for (const name of names) {
    const have = byName.get(name);
    if (have) {
      out.push(have);
      continue;
    }
    if (next > MAX_CLASSES)
      throw new TrainingDataError(
        `class "${name}" would get id ${next}: a data directory holds at most ${MAX_CLASSES} class ids over its life`,
      );
    const colour = colours[name] ?? distinctClassColour(taken, conventionalColour(name));
    taken.push(colour);
    const cls: ModelClass = { id: next++, name, colour };
    byName.set(name, cls);
    out.push(cls);
  }
  return out.sort((a, b) => a.id - b.id);
}

/**
 * The catalogue after storing a model with `classes`: names it lacks are added with the model's ids.
 * @throws ModelError when the model gives a catalogued name another id, or a catalogued id to another
 * name (it was trained against another catalogue; retrain it against this one).
 */
export function mergeClasses(catalogue: ClassCatalogue, classes: readonly ModelClass[]): ClassCatalogue {
  const byName = new Map(catalogue.classes.map((c) => [c.name, c]));
  const byId = new Map(catalogue.classes.map((c) => [c.id, c]));
  const added: ModelClass[] = [];
  for (const c of classes) {
    const named = byName.get(c.name);
    const taken = byId.get(c.id);
    if (named && named.id !== c.id)
      throw new ModelError(
        `class "${c.name}" has id ${c.id} in the model but ${named.id} in the class catalogue: retrain the model in this data directory`,
      );
    if (!named && taken)
      throw new ModelError(
        `class id ${c.id} is "${c.name}" in the model but "${taken.name}" in the class catalogue: retrain the model in this data directory`,
      );
    if (!named) {
      added.push(c);
      byName.set(c.name, c);
      byId.set(c.id, c);
    }
  }
  if (added.length === 0) return catalogue;
  return { classes: [...catalogue.classes, ...added].sort((a, b) => a.id - b.id) };
}
