/**
 * The analyst's loop on the map: label -> retrain -> switch -> see the map change.
 *
 * - Drawing is leaflet-geoman's (served from node_modules under /vendor/geoman/): a polygon, a
 *   rectangle or a point; a small form names its class (pick one of the legend's or type a new one)
 *   and an optional note, and POST /v1/labels stores it as a new label-set version.
 * - The label set is drawn on its own layer (GET /v1/labels) and follows `labels-change` events.
 * - "Retrain" is POST /v1/models: a job whose `train-job` events show its progress.
 * - The model switcher lists GET /v1/models with OA, kappa and classes; "Activate" is
 *   POST /v1/models/{version}/activate with the viewport's centre as `around`, so the batch run that
 *   follows reclassifies what the analyst looks at first. The map itself reloads on the run's
 *   `batch-switch` event (live.js), as it does for any published view.
 *
 * State-changing calls need the operator token (`lanemap start` prints it); it is typed once and
 * kept in this tab's sessionStorage only.
 */
/* global sessionStorage */
import * as L from "/vendor/leaflet/leaflet-src.esm.js";
import { $, h } from "./dom.js";
import { map } from "./map.js";
import { state } from "./state.js";
import { reportError } from "./status.js";

const TOKEN_KEY = "lanemap.operatorToken";
// Magenta: no colour of the age palette (yellow to purple) nor a default class colour.
const LABEL_STYLE = { color: "#ff00ff", weight: 2, fillOpacity: 0.15, dashArray: "4 3" };

const loop = {
  /** The shape being labelled, until it is saved or dropped. */
  pending: null,
  labelLayer: null,
  labelSetVersion: 0,
  classNames: new Set(),
  /** The training job this page started, and the version it produced. */
  jobId: null,
  trainedVersion: null,
  /** When an activation asked for a batch run: the map is "reclassifying" until the view switches. */
  activatedAt: null,
};

function token() {
  return sessionStorage.getItem(TOKEN_KEY) ?? "";
}

/** A call to an operator endpoint; problems become errors carrying their detail and field. */
async function operatorCall(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: {
      Authorization: `Bearer ${token()}`,
      ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      Accept: "application/json",
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = await res.json().catch(() => ({}));
  if (!res.ok) {
    const field = answer.invalid_params?.[0]?.name;
    throw new Error(`${answer.detail ?? answer.title ?? res.statusText}${field ? ` (${field})` : ""}`);
  }
  return answer;
}

function say(id, text, level = "info") {
  const el = $(id);
  el.textContent = text;
  el.dataset.level = level;
}

// --- drawing and labelling ---------------------------------------------------------------

async function loadGeoman() {
  // geoman's build is a classic script extending a global, mutable `L`; the page's Leaflet is an ES
  // module whose namespace is frozen. A mutable copy shares Leaflet's classes, which geoman extends.
  globalThis.L = Object.assign({}, L);
  await import("/vendor/geoman/leaflet-geoman.js");
  const G = globalThis.L;
  // The map was made before geoman's init hook existed: attach it by hand.
  if (!map.pm) {
    map.pm = new G.PM.Map(map);
    map.pm.setGlobalOptions({});
  }
  map.pm.addControls({
    position: "topleft",
    drawMarker: true,
    drawPolygon: true,
    drawRectangle: true,
    drawCircleMarker: false,
    drawPolyline: false,
    drawCircle: false,
    drawText: false,
    editMode: false,
    dragMode: false,
    cutPolygon: false,
    removalMode: false,
    rotateMode: false,
  });
  map.on("pm:create", (e) => startLabel(e.layer));
}

function startLabel(layer) {
  if (loop.pending) loop.pending.remove();
  loop.pending = layer;
  const form = $("label-form");
  form.hidden = false;
  refreshClassChoices();
  const input = $("label-class");
  input.value = "";
  $("label-note").value = "";
  say("label-status", `Name the class of this ${layer instanceof L.Marker ? "point" : "polygon"}.`);
  input.focus();
}

function refreshClassChoices() {
  const names = new Set([...state.classes.map((c) => c.name), ...loop.classNames]);
  $("label-classes").replaceChildren(...[...names].sort().map((n) => h("option", { value: n })));
}

async function saveLabel(ev) {
  ev.preventDefault();
  const layer = loop.pending;
  if (!layer) return;
  const cls = $("label-class").value.trim();
  if (!cls) {
    say("label-status", "Type or pick a class first.", "error");
    return;
  }
  const feature = layer.toGeoJSON();
  const note = $("label-note").value.trim();
  feature.properties = { class: cls, ...(note ? { note } : {}) };
  try {
    const added = await operatorCall("POST", "/v1/labels", feature);
    layer.remove();
    loop.pending = null;
    $("label-form").hidden = true;
    say("label-status", `Saved as ${added.ids[0]}: label set v${added.labelSetVersion}.`);
    await loadLabels();
  } catch (err) {
    say("label-status", `Not saved: ${err.message}`, "error");
  }
}

function dropLabel() {
  loop.pending?.remove();
  loop.pending = null;
  $("label-form").hidden = true;
  say("label-status", "");
}

async function loadLabels() {
  const res = await fetch("/v1/labels", { headers: { Accept: "application/geo+json" } });
  if (!res.ok) throw new Error(`GET /v1/labels: ${res.status}`);
  const fc = await res.json();
  loop.labelSetVersion = fc.labelSetVersion;
  loop.classNames = new Set(fc.features.map((f) => f.properties.class));
  loop.labelLayer?.remove();
  loop.labelLayer = L.geoJSON(fc, {
    pmIgnore: true,
    style: () => LABEL_STYLE,
    pointToLayer: (_f, latlng) => L.circleMarker(latlng, { ...LABEL_STYLE, radius: 5, pmIgnore: true }),
    onEachFeature: (f, layer) => layer.bindTooltip(`${f.properties.class} (${f.properties.author})`),
  }).addTo(map);
  const counts = {};
  for (const f of fc.features) counts[f.properties.class] = (counts[f.properties.class] ?? 0) + 1;
  const per = Object.entries(counts)
    .sort()
    .map(([c, n]) => `${c} ${n}`)
    .join(", ");
  $("label-count").textContent =
    `Label set v${fc.labelSetVersion}: ${fc.features.length} labels${per ? ` (${per})` : ""}`;
  $("retrain").disabled = fc.features.length === 0;
}

// --- retraining ----------------------------------------------------------------------------

async function retrain() {
  $("retrain").disabled = true;
  try {
    const accepted = await operatorCall("POST", "/v1/models", {});
    loop.jobId = accepted.jobId;
    say("train-status", `Training (job ${accepted.jobId})…`);
  } catch (err) {
    say("train-status", `Could not start training: ${err.message}`, "error");
    $("retrain").disabled = false;
  }
}

function onTrainJob(job) {
  if (loop.jobId !== null && job.jobId !== loop.jobId) return;
  if (job.state === "running") {
    say("train-status", `Training: ${job.message}`);
    $("retrain").disabled = true;
    return;
  }
  $("retrain").disabled = false;
  if (job.state === "failed") {
    say("train-status", `Training failed: ${job.message}`, "error");
    return;
  }
  const r = job.result;
  loop.trainedVersion = r.version;
  const acc = r.accuracy
    ? `OA ${fmt(r.accuracy.oa)}, κ ${fmt(r.accuracy.kappa)} (${r.accuracy.method === "folds" ? `${r.accuracy.folds}-fold` : "hold-out"})`
    : `not assessed: ${r.accuracyNote}`;
  say("train-status", `Model ${r.version} trained in ${(job.elapsedMs / 1000).toFixed(1)} s: ${acc}.`);
  void loadModels();
}

const fmt = (v) => (v === null || v === undefined ? "—" : v.toFixed(3));

// --- the model switcher --------------------------------------------------------------------

async function loadModels() {
  const res = await fetch("/v1/models", { headers: { Accept: "application/json" } });
  if (!res.ok) throw new Error(`GET /v1/models: ${res.status}`);
  const list = await res.json();
  const rows = [...list.models].reverse().map((m) => {
    const button = h("button", {
      type: "button",
      className: "activate",
      text: m.active ? "Active" : "Activate",
      dataset: { version: m.version },
    });
    button.disabled = m.active;
    button.addEventListener("click", () => void activate(m.version));
    return h(
      "li",
      {
        dataset: {
          version: m.version,
          active: String(m.active),
          fresh: String(m.version === loop.trainedVersion),
        },
      },
      h("span", { className: "model-version", text: m.version.slice(0, 8) }),
      h("span", {
        className: "model-accuracy",
        text: m.accuracy ? `OA ${fmt(m.accuracy.oa)} · κ ${fmt(m.accuracy.kappa)}` : "not assessed",
      }),
      h("span", {
        className: "model-classes",
        text: `${m.classes.length} classes${m.labelSet ? ` · labels ${m.labelSet}` : ""}`,
        title: m.classes.map((c) => c.name).join(", "),
      }),
      button,
    );
  });
  $("model-list").replaceChildren(...rows);
}

async function activate(version) {
  const c = map.getCenter();
  const b = map.getBounds();
  const lon = (x) => Math.max(-180, Math.min(180, x));
  const lat = (y) => Math.max(-90, Math.min(90, y));
  const bbox = [lon(b.getWest()), lat(b.getSouth()), lon(b.getEast()), lat(b.getNorth())];
  try {
    // The viewport as `bbox`: the run publishes an interim view as soon as the visible tiles carry
    // the new model, before it reclassifies the rest.
    const answer = await operatorCall("POST", `/v1/models/${version}/activate`, {
      around: { lon: lon(c.lng), lat: lat(c.lat) },
      ...(bbox[0] < bbox[2] && bbox[1] < bbox[3] ? { bbox } : {}),
    });
    loop.activatedAt = performance.now();
    document.body.dataset.reclassifying = "true";
    say(
      "train-status",
      answer.batchRun?.runId
        ? `Model ${version.slice(0, 8)} active; reclassifying around the view…`
        : `Model ${version.slice(0, 8)} active${answer.batchRun?.skipped ? `; ${answer.batchRun.skipped}` : ""}.`,
    );
    await loadModels();
  } catch (err) {
    say("train-status", `Could not activate ${version.slice(0, 8)}: ${err.message}`, "error");
  }
}

function onBatchSwitch() {
  if (loop.activatedAt === null) return;
  const s = (performance.now() - loop.activatedAt) / 1000;
  loop.activatedAt = null;
  delete document.body.dataset.reclassifying;
  say(
    "train-status",
    `The map shows the new model (batch view switched ${s.toFixed(1)} s after activation).`,
  );
}

// --- start ---------------------------------------------------------------------------------

function listen() {
  const es = new EventSource("/v1/events");
  es.addEventListener(
    "labels-change",
    () => void loadLabels().catch((err) => reportError("Could not load labels", err)),
  );
  es.addEventListener("train-job", (e) => onTrainJob(JSON.parse(e.data)));
  es.addEventListener("batch-switch", onBatchSwitch);
}

/** Builds the loop's controls and starts following labels, jobs and models. */
export async function startLoop() {
  const tokenInput = $("operator-token");
  tokenInput.value = token();
  tokenInput.addEventListener("change", () => sessionStorage.setItem(TOKEN_KEY, tokenInput.value.trim()));
  $("label-form").addEventListener("submit", (e) => void saveLabel(e));
  $("label-cancel").addEventListener("click", dropLabel);
  $("retrain").addEventListener("click", () => void retrain());
  listen();
  try {
    await loadGeoman();
    await Promise.all([loadLabels(), loadModels()]);
    document.body.dataset.loop = "ready";
  } catch (err) {
    reportError("Could not start labelling", err);
  }
}
