/**
 * Which bands of a tile are red, near infrared and green, as the model that classified it says: its
 * feature spec names red and NIR (and green when it uses NDWI), given by whoever trained it
 * (`lanemap train --red --nir`). Source imagery uses them to build the true- and false-colour
 * presets for tiles that are not in Landsat TM/ETM+ band order (a Landsat 8 stack has red = 4).
 *
 * Read from the batch view's own copy of the model (`model.json` beside view.duckdb), once per view
 * version: a view never changes, so the answer is cached by its folder. Only the feature spec is
 * taken, and only for results of that very model version; a result of another model (a live result
 * after a switch) gets null and the presets fall back to Landsat order.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { BATCH_VIEW_FILES, FeatureSpecSchema } from "../../shared/index.js";
import type { ServedResult } from "../view/served-result.js";
import type { SnapshotLease } from "../view/snapshot.js";

/** 1-based band numbers a model's feature spec names. */
export interface SpectralBands {
  readonly red: number;
  readonly nir: number;
  readonly green: number | null;
}

/** Views whose answer is kept: the open one and a few recent ones. */
const MAX_VIEWS = 8;

/** Looks up (and caches per batch view folder) the spectral bands of the view's model. */
export class ModelBands {
  private readonly byDir = new Map<string, Promise<{ version: string; bands: SpectralBands } | null>>();

  /** The bands of the model that produced `drawn`, when the snapshot's batch view holds that model. */
  async of(lease: SnapshotLease, drawn: ServedResult): Promise<SpectralBands | null> {
    const batch = lease.snapshot.batch;
    if (!batch) return null;
    let pending = this.byDir.get(batch.dir);
    if (!pending) {
      pending = readSpec(join(batch.dir, BATCH_VIEW_FILES.model));
      if (this.byDir.size >= MAX_VIEWS) {
        const oldest = this.byDir.keys().next().value;
        if (oldest !== undefined) this.byDir.delete(oldest);
      }
      this.byDir.set(batch.dir, pending);
    }
    const found = await pending;
    return found && found.version === drawn.summary.modelVersion ? found.bands : null;
  }
}

async function readSpec(path: string): Promise<{ version: string; bands: SpectralBands } | null> {
  try {
    const json = JSON.parse(await readFile(path, "utf8")) as { version?: unknown; features?: unknown };
    const spec = FeatureSpecSchema.safeParse(json.features);
    if (typeof json.version !== "string" || !spec.success) return null;
    return {
      version: json.version,
      bands: { red: spec.data.red, nir: spec.data.nir, green: spec.data.green },
    };
  } catch {
    // A view without a readable model copy: the presets fall back to Landsat order.
    return null;
  }
}
