// app.js: the dashboard's pages (issue 18). Hash routes:
//   #/                      models
//   #/model/{id}            versions, live training, learning curves, tasks, accuracy matrix
//   #/parts/{id}[/{block}]  the basis vectors as a grid, with norms, usage and provenance
//   #/forget/{id}           forget with a dry-run preview on the grid, confirmation, audit list
//   #/explain/{id}          draw or upload an input, see the prediction and its top parts
//   #/npeff/{id}            NPEFF analyses, components, perturbations
import { api, listAll, imageURL, releaseImages, followJob, hasRoute, getKey, setKey, clearKey, ApiError } from "./api.js";
import { lineChart, barChart } from "./charts.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const statusBox = document.getElementById("status");
const errorBox = document.getElementById("error");

// ---------------------------------------------------------------- helpers

/** `h("tag.class", {attr}, children…)`: a DOM element. Attributes starting with "on" are listeners. */
function h(spec, attrs, ...children) {
  const [tag, ...classes] = spec.split(".");
  const node = document.createElement(tag);
  if (classes.length) node.className = classes.join(" ");
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) if (c !== null && c !== undefined && c !== false) node.append(c instanceof Node ? c : String(c));
  return node;
}

function fmt(v, digits = 3) {
  if (v === null || v === undefined || !Number.isFinite(v)) return "–";
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(2);
  return (+v.toPrecision(digits)).toString();
}
const pct = (v) => (v === null || v === undefined || !Number.isFinite(v) ? "–" : (v * 100).toFixed(1) + " %");
const when = (t) => (t ? new Date(t).toLocaleString() : "–");
const short = (id) => (id ? String(id).slice(0, 8) : "–");

/** Column lists as ranges: [0,1,2,5] → "0–2, 5". */
function ranges(cols) {
  const s = [...new Set(cols)].sort((a, b) => a - b), out = [];
  for (let i = 0; i < s.length; i++) {
    let j = i;
    while (j + 1 < s.length && s[j + 1] === s[j] + 1) j++;
    out.push(i === j ? `${s[i]}` : `${s[i]}–${s[j]}`);
    i = j;
  }
  return out.join(", ") || "none";
}

function table(caption, headings, rows, cls) {
  return h("div.table-wrap", { tabindex: 0, role: "region", "aria-label": caption },
    h(`table${cls ? "." + cls : ""}`, {},
      h("caption", { text: caption }),
      h("thead", {}, h("tr", {}, headings.map((t) => h("th", { scope: "col", text: t })))),
      h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c, i) => (i === 0 ? h("th", { scope: "row" }, c) : h("td", {}, c))))))));
}

function say(text) { statusBox.textContent = text; }
function showError(e) {
  errorBox.hidden = false;
  errorBox.textContent = e instanceof ApiError ? `${e.message} (${e.status} ${e.code})` : String(e && e.message ? e.message : e);
}
function clearError() { errorBox.hidden = true; errorBox.textContent = ""; }

// Work a page started (event streams, timers) is stopped when the page changes.
let cleanups = [];
function onLeave(fn) { cleanups.push(fn); }
function every(ms, fn) { const t = setInterval(fn, ms); onLeave(() => clearInterval(t)); }
let generation = 0;

function section(title, id, ...children) {
  return h("section.card", { "aria-labelledby": id }, h("h2", { id, text: title }), ...children);
}

function select(label, id, options, value) {
  const s = h("select", { id, name: id }, options.map(([v, t]) => h("option", { value: v, selected: String(v) === String(value) }, t)));
  return [h("label", { for: id, text: label }), s];
}

// ---------------------------------------------------------------- key

function keyPage() {
  nav.replaceChildren();
  const input = h("input", { id: "api-key", name: "api-key", type: "password", autocomplete: "off", required: true,
    spellcheck: "false", "aria-describedby": "key-help" });
  const form = h("form.card", { id: "key-form", onsubmit: (ev) => {
    ev.preventDefault();
    if (!input.value.trim()) return;
    setKey(input.value);
    route();
  } },
  h("h1", { tabindex: -1, text: "Sign in with an API key" }),
  h("p", { id: "key-help", text: "The key stays in this browser tab's session storage and is sent only as an Authorization header to this server." }),
  h("label", { for: "api-key", text: "API key" }), input,
  h("button", { type: "submit", text: "Use this key" }));
  main.replaceChildren(form);
  return form.querySelector("h1");
}

function sessionBar() {
  const box = document.getElementById("session");
  box.replaceChildren(getKey() ? h("button.link", { type: "button", id: "sign-out", onclick: () => { clearKey(); location.hash = "#/"; route(); } }, "Forget key") : "");
}

function modelNav(id, current) {
  const pages = [["model", "Model"], ["parts", "Parts"], ["forget", "Forget"], ["explain", "Explain"], ["npeff", "NPEFF"]];
  nav.replaceChildren(h("ul", {}, h("li", {}, h("a", { href: "#/", "aria-current": current === "models" ? "page" : null, text: "Models" })),
    id ? pages.map(([p, t]) => h("li", {}, h("a", { href: `#/${p}/${encodeURIComponent(id)}`, "aria-current": current === p ? "page" : null, text: t }))) : []));
}

// ---------------------------------------------------------------- 1. models

function sizeOf(m) {
  if (m.kind === "mlp") return `hidden ${m.basis} · d ${m.input_dim} → ${m.output_dim}`;
  return `K ${m.basis} · d ${m.input_dim} → ${m.output_dim} classes · N ${m.iterations}`;
}

function jobText(j) {
  const p = j.progress;
  if (p && p.epochs) return `${j.kind} ${j.state}, epoch ${p.epoch}/${p.epochs}`;
  if (p && p.phase) return `${j.kind} ${j.state}, ${p.phase}`;
  return `${j.kind} ${j.state}`;
}

async function modelsPage(gen) {
  modelNav(null, "models");
  const heading = h("h1", { tabindex: -1, text: "Models" });
  const body = h("div", {});
  main.replaceChildren(heading, body);
  async function load() {
    const [models, running, queued] = await Promise.all([listAll("/v1/models"), listAll("/v1/jobs?state=running"), listAll("/v1/jobs?state=queued")]);
    if (gen !== generation) return;
    const jobs = {};
    for (const j of [...running, ...queued]) (jobs[j.model_id] = jobs[j.model_id] || []).push(j);
    if (!models.length) {
      body.replaceChildren(h("p", { text: "No models yet. Create one with POST /v1/models (see the README's quick start)." }));
      return;
    }
    body.replaceChildren(table(`${models.length} model${models.length === 1 ? "" : "s"}`, ["Name", "Kind", "Size", "Latest version", "Running jobs"],
      models.map((m) => [h("a", { href: `#/model/${encodeURIComponent(m.id)}`, "data-model": m.id, text: m.name }), m.kind, sizeOf(m), String(m.version),
        (jobs[m.id] || []).map(jobText).join("; ") || "none"]), "models"));
    say(`Models loaded at ${new Date().toLocaleTimeString()}`);
  }
  await load();
  every(5000, () => load().catch(showError));
  return heading;
}

// ---------------------------------------------------------------- 2. model

function versionMetrics(m) {
  const keys = [["train_accuracy", "train acc"], ["validation_accuracy", "val acc"], ["test_accuracy", "test acc"], ["final_loss", "loss"], ["epochs_run", "epochs"]];
  const parts = keys.filter(([k]) => m && m[k] !== undefined && m[k] !== null).map(([k, t]) => `${t} ${k.endsWith("accuracy") ? pct(m[k]) : fmt(m[k])}`);
  if (m && m.forget) parts.push("forget");
  if (m && m.imported_from) parts.push(`imported from ${m.imported_from}`);
  return parts.join(" · ") || "–";
}

function curveSeries(history) {
  return {
    loss: [
      { name: "train loss", cls: "s0", points: history.map((e) => [e.epoch, e.train_loss]) },
      { name: "validation loss", cls: "s1", points: history.filter((e) => e.validation_loss !== null && e.validation_loss !== undefined).map((e) => [e.epoch, e.validation_loss]) },
    ],
    accuracy: [
      { name: "train accuracy", cls: "s2", points: history.map((e) => [e.epoch, e.train_accuracy]) },
      { name: "validation accuracy", cls: "s3", points: history.filter((e) => e.validation_accuracy !== null && e.validation_accuracy !== undefined).map((e) => [e.epoch, e.validation_accuracy]) },
    ],
  };
}

/** A running job's live panel: curves that grow with every progress event from the event stream. */
function livePanel(job, onDone) {
  const loss = [], acc = [], vloss = new Map(), vacc = new Map();
  const status = h("p.live-status", { "aria-live": "polite", text: jobText(job) });
  const lossChart = lineChart({ title: `Loss, job ${short(job.id)} (live)`, xLabel: "epoch", yLabel: "loss", series: [] });
  const accChart = lineChart({ title: `Accuracy, job ${short(job.id)} (live)`, xLabel: "epoch", yLabel: "accuracy", series: [], yRange: [0, 1] });
  lossChart.classList.add("live-chart"); accChart.classList.add("live-chart");
  lossChart.dataset.job = job.id; accChart.dataset.job = job.id;
  const redraw = () => {
    lossChart.update([{ name: "train loss (running)", cls: "s0", points: loss }, { name: "validation loss", cls: "s1", points: [...vloss] }]);
    accChart.update([{ name: "train accuracy (running)", cls: "s2", points: acc }, { name: "validation accuracy", cls: "s3", points: [...vacc] }]);
  };
  redraw();
  const stop = followJob(job.id, (event, j) => {
    status.textContent = jobText(j);
    const p = j.progress;
    if (p && p.epochs && Number.isFinite(p.loss) && p.batches) {
      const x = Math.max(0, p.epoch - 1) + p.batch / p.batches;
      const last = loss[loss.length - 1];
      if (!last || last[0] !== x) { loss.push([x, p.loss]); acc.push([x, p.accuracy]); }
      if (p.epoch > 1 && p.validation_loss !== null && p.validation_loss !== undefined) vloss.set(p.epoch - 1, p.validation_loss);
      if (p.epoch > 1 && p.validation_accuracy !== null && p.validation_accuracy !== undefined) vacc.set(p.epoch - 1, p.validation_accuracy);
      redraw();
    }
  }, (j) => { status.textContent = j ? `${j.kind} ${j.state}` : "ended"; if (onDone) onDone(j); });
  onLeave(stop);
  return h("div.live", { "data-job": job.id }, h("h3", { text: `${job.kind} job ${short(job.id)}` }), status, h("div.charts", {}, lossChart, accChart));
}

async function accuracyMatrix(id) {
  const none = h("p.none", { id: "accuracy-matrix-none", text: "No evaluation sets recorded." });
  if (!(await hasRoute("/v1/models/{id}/tasks/metrics"))) return none;
  let r;
  try { r = await api(`/v1/models/${encodeURIComponent(id)}/tasks/metrics`); } catch (e) {
    if (e instanceof ApiError && (e.status === 404 || e.status === 409)) return none;
    throw e;
  }
  const R = r.accuracy_matrix || [];
  if (!R.length) return none;
  const names = (r.tasks || []).map((t, i) => (typeof t === "string" ? t : t && (t.name || (t.task !== undefined ? `task ${t.task}` : null))) || `task ${i + 1}`);
  const rows = R.map((row, i) => [`after ${names[i] || "task " + (i + 1)}`, ...row.map((v) => pct(v))]);
  return h("div", { id: "accuracy-matrix" },
    table("Accuracy on each task's evaluation set (rows: after training task i; columns: task j)", ["", ...R[0].map((_, j) => names[j] || `task ${j + 1}`)], rows, "matrix"),
    h("p", { text: `Average accuracy ${pct(r.average_accuracy)} · backward transfer ${fmt(r.backward_transfer)} · forgetting ${(r.forgetting || []).map((v) => fmt(v)).join(", ") || "–"}` }));
}

async function modelPage(gen, id) {
  modelNav(id, "model");
  const enc = encodeURIComponent(id);
  const [m, versions, jobs, tasks] = await Promise.all([api(`/v1/models/${enc}`), listAll(`/v1/models/${enc}/versions`),
    listAll(`/v1/jobs?model_id=${enc}`), listAll(`/v1/models/${enc}/tasks`)]);
  if (gen !== generation) return null;
  const heading = h("h1", { tabindex: -1, text: `Model ${m.name}` });
  const facts = h("dl.facts", {}, [["Id", m.id], ["Kind", m.kind], ["Size", sizeOf(m)], ["Loss", m.loss], ["Latest version", String(m.version)], ["Created", when(m.created_at)]]
    .map(([k, v]) => [h("dt", { text: k }), h("dd", { text: v })]));

  const live = h("div", { id: "live" });
  const training = jobs.filter((j) => j.kind === "train" || j.kind === "task");
  const active = training.filter((j) => j.state === "running" || j.state === "queued");
  const followed = new Set();
  const addLive = (j) => {
    if (followed.has(j.id)) return;
    followed.add(j.id);
    live.append(livePanel(j, () => setTimeout(() => { if (gen === generation) route(); }, 1500)));
  };
  active.forEach(addLive);
  if (!active.length) live.append(h("p.none", { text: "No training job is running." }));
  every(3000, async () => {
    // Only the states it shows: a model's finished jobs (with their results) can be many and large.
    const now = (await Promise.all(["running", "queued"].map((st) =>
      listAll(`/v1/jobs?model_id=${enc}&state=${st}`).catch(() => [])))).flat();
    if (gen !== generation) return;
    const fresh = now.filter((j) => (j.kind === "train" || j.kind === "task") && (j.state === "running" || j.state === "queued") && !followed.has(j.id));
    if (fresh.length) { live.querySelector(".none")?.remove(); fresh.forEach(addLive); }
  });

  const finished = training.filter((j) => j.state === "succeeded").reverse();
  const curves = h("div", { id: "curves" });
  async function showCurve(jobID) {
    const r = await api(`/v1/jobs/${encodeURIComponent(jobID)}/metrics`);
    const s = curveSeries(r.history || []);
    curves.replaceChildren(h("div.charts", {},
      lineChart({ title: `Loss by epoch, job ${short(jobID)}`, xLabel: "epoch", yLabel: "loss", series: s.loss }),
      lineChart({ title: `Accuracy by epoch, job ${short(jobID)}`, xLabel: "epoch", yLabel: "accuracy", series: s.accuracy, yRange: [0, 1] })),
    h("p", { text: `Best epoch ${r.best_epoch ?? "–"}${r.stopped_early ? " (stopped early)" : ""}; wrote version ${r.model_version ?? "–"}.` }));
  }
  let curvePicker = h("p.none", { text: "No finished training job yet." });
  if (finished.length) {
    const [label, sel] = select("Learning curve of", "curve-job", finished.map((j) => [j.id, `${j.kind} job ${short(j.id)} (${when(j.finished_at)})`]), finished[0].id);
    sel.addEventListener("change", () => showCurve(sel.value).catch(showError));
    curvePicker = h("div.field", {}, label, sel);
    await showCurve(finished[0].id);
  }

  const versionRows = versions.map((v) => [String(v.version), v.reason, v.parent_version === null ? "–" : String(v.parent_version), when(v.created_at), versionMetrics(v.metrics)]);
  const taskRows = tasks.map((t) => [String(t.task), t.name, String(t.model_version), t.columns ? `[${t.columns[0]}, ${t.columns[1]})` : "–",
    String(t.grew_by), versionMetrics(t.metrics)]);
  const matrix = await accuracyMatrix(id);
  if (gen !== generation) return null;
  main.replaceChildren(heading, facts,
    section("Live training", "h-live", live),
    section("Learning curves", "h-curves", curvePicker, curves),
    section("Versions", "h-versions", table(`${versions.length} version${versions.length === 1 ? "" : "s"}`, ["Version", "Reason", "Parent", "Created", "Metrics"], versionRows, "versions")),
    section("Tasks", "h-tasks", tasks.length ? table(`${tasks.length} task${tasks.length === 1 ? "" : "s"}`, ["Task", "Name", "Version", "Columns", "Grew by", "Metrics"], taskRows, "tasks")
      : h("p.none", { text: "No continual-learning tasks yet." })),
    section("Continual-learning accuracy matrix", "h-matrix", matrix));
  return heading;
}

// ---------------------------------------------------------------- 3. parts (also used by the forget page)

/** Which ledger batches and tasks trained each column of `block`, and which forgets reset it. */
async function provenance(id, block) {
  const enc = encodeURIComponent(id);
  const [ledger, tasks, forgets] = await Promise.all([listAll(`/v1/models/${enc}/ledger`), listAll(`/v1/models/${enc}/tasks`), listAll(`/v1/models/${enc}/forgets`)]);
  const byColumn = new Map();
  for (const e of ledger) {
    const w = e.windows && e.windows[block];
    if (!w) continue;
    for (let k = w[0]; k < w[1]; k++) {
      let p = byColumn.get(k);
      if (!p) byColumn.set(k, (p = { batches: [], tasks: new Set() }));
      p.batches.push(e.id);
      p.tasks.add(e.task);
    }
  }
  const reset = new Map();
  for (const f of forgets) for (const k of f.columns_reset) reset.set(k, f);
  const taskNames = new Map(tasks.map((t) => [t.task, t.name]));
  return { ledger, tasks, forgets, byColumn, reset, taskNames };
}

/**
 * The parts grid: the server-rendered PNG of the block's basis vectors (GET …/components.png) with one
 * focusable button over each tile (arrow keys move between them) and a details panel for the one in focus.
 * `marks` maps a column to a class (`hl`: in a forget preview). Returns the element; `grid.mark(set)` re-marks.
 */
async function partsGrid(id, block, { version, detailsID = "part-details" } = {}) {
  const enc = encodeURIComponent(id);
  const vq = version !== undefined ? `&version=${version}` : "";
  const [list, prov] = await Promise.all([api(`/v1/models/${enc}/components?block=${block}${vq}`), provenance(id, block)]);
  const comps = list.components, K = comps.length;
  // Columns reset now: the version's `reset_columns` (a later task that retrains a column clears it), else the audits.
  const shown = await api(`/v1/models/${enc}/versions/${list.model_version}`).catch(() => null);
  const nowReset = shown && shown.metrics && Array.isArray(shown.metrics.reset_columns) ? new Set(shown.metrics.reset_columns) : null;
  const isReset = (k) => (nowReset ? nowReset.has(k) : prov.reset.has(k));
  const perRow = window.matchMedia("(max-width: 600px)").matches ? 10 : 20;
  const wrap = h("div.parts", {});
  const details = h("div.details", { id: detailsID, "aria-live": "polite" }, h("p", { text: "Focus or hover a tile to see its norms, usage and provenance." }));
  const tiles = [];
  const CHUNK = 500;
  for (let start = 0; start < K; start += CHUNK) {
    const end = Math.min(K, start + CHUNK) - 1;
    let img;
    try {
      img = await imageURL(`/v1/models/${enc}/components.png?block=${block}&columns=${start}-${end}&per_row=${perRow}${vq}`);
    } catch (e) {
      if (e instanceof ApiError && e.status === 422) {
        wrap.append(h("p.none", { text: `No image grid for this model: ${e.message}` }));
        img = null;
      } else throw e;
    }
    const n = end - start + 1, across = Math.min(perRow, n), rowsN = Math.ceil(n / across);
    const box = h("div.grid-box", { role: "group", "aria-label": `Basis vectors ${start}–${end} of block ${block}` });
    if (img) {
      const picture = h("img.grid-img", { src: img.url, alt: `Grid of basis vectors ${start} to ${end}, ${across} per row`, "data-columns": `${start}-${end}` });
      box.append(picture);
    } else box.classList.add("no-img");
    // Tile geometry from the PNG layout: tiles of w×h pixels with 1-pixel gaps (as the route documents).
    box.dataset.perRow = String(across);
    for (let t = 0; t < n; t++) {
      const k = start + t, c = comps[k];
      const b = h("button.tile", { type: "button", "data-k": k, tabindex: k === 0 ? 0 : -1 });
      b.dataset.col = String(t % across);
      b.dataset.row = String(Math.floor(t / across));
      tiles.push(b);
      box.append(b);
    }
    box.dataset.rows = String(rowsN);
    wrap.append(box);
  }
  // Position the buttons once each image's pixel size is known (percentages, so the grid scales).
  for (const box of wrap.querySelectorAll(".grid-box")) {
    const img = box.querySelector("img");
    const place = () => {
      const across = +box.dataset.perRow, rowsN = +box.dataset.rows;
      const W = img ? img.naturalWidth : across * 9 - 1, H = img ? img.naturalHeight : rowsN * 9 - 1;
      const tw = (W + 1) / across - 1, th = (H + 1) / rowsN - 1;
      for (const b of box.querySelectorAll(".tile")) {
        const c = +b.dataset.col, r = +b.dataset.row;
        b.style.left = `${(c * (tw + 1) / W) * 100}%`;
        b.style.top = `${(r * (th + 1) / H) * 100}%`;
        b.style.width = `${(tw / W) * 100}%`;
        b.style.height = `${(th / H) * 100}%`;
      }
      box.classList.add("placed");
    };
    if (!img) place(); else if (img.complete && img.naturalWidth) place(); else img.addEventListener("load", place, { once: true });
  }
  function label(k) {
    const c = comps[k], p = prov.byColumn.get(k);
    const extra = [];
    if (isReset(k)) extra.push("reset by a forget");
    if (tiles[k].classList.contains("hl")) extra.push("to be reset by this forget");
    return `Basis vector ${k}: W_x norm ${fmt(c.wx_norm)}, mean activation ${fmt(c.mean_activation)}, ` +
      `${p ? p.batches.length : 0} ledger batches${extra.length ? ", " + extra.join(", ") : ""}`;
  }
  function describe(k) {
    const c = comps[k], p = prov.byColumn.get(k), f = prov.reset.get(k);
    const taskList = p ? [...p.tasks].sort((a, b) => a - b).map((t) => `${t} (${prov.taskNames.get(t) || "?"})`).join(", ") : "";
    details.replaceChildren(h("h3", { text: `Basis vector ${k} (block ${block})` }),
      h("dl.facts", {},
        h("dt", { text: "‖W_x column‖" }), h("dd", { text: fmt(c.wx_norm) }),
        h("dt", { text: "‖W_y column‖" }), h("dd", { text: fmt(c.wy_norm) }),
        h("dt", { text: "Mean activation" }), h("dd", { text: fmt(c.mean_activation) }),
        h("dt", { text: "Trained by tasks" }), h("dd", { text: taskList || "none recorded (trained by /train, or never in a window)" }),
        h("dt", { text: "Ledger batches" }), h("dd", { text: p ? `${p.batches.length}: ${p.batches.slice(0, 4).map(short).join(", ")}${p.batches.length > 4 ? ", …" : ""}` : "0" }),
        h("dt", { text: "Forget" }), h("dd", { text: isReset(k) ? `reset${f ? ` at version ${f.version} (${when(f.created_at)})` : ""}` : f ? `reset at version ${f.version}, trained again since` : "not reset" }),
        tiles[k].classList.contains("hl") ? [h("dt", { text: "Preview" }), h("dd", { text: "this forget would reset it" })] : []));
  }
  function refresh() {
    for (const b of tiles) {
      const k = +b.dataset.k;
      b.classList.toggle("reset", isReset(k));
      b.setAttribute("aria-label", label(k));
    }
  }
  refresh();
  let focused = 0;
  const move = (k) => {
    if (k < 0 || k >= tiles.length) return;
    tiles[focused].tabIndex = -1;
    focused = k;
    tiles[k].tabIndex = 0;
    tiles[k].focus();
  };
  wrap.addEventListener("focusin", (ev) => { const b = ev.target.closest(".tile"); if (b) { focused = +b.dataset.k; describe(focused); } });
  wrap.addEventListener("mouseover", (ev) => { const b = ev.target.closest(".tile"); if (b) describe(+b.dataset.k); });
  wrap.addEventListener("click", (ev) => { const b = ev.target.closest(".tile"); if (b) { b.classList.toggle("pinned"); describe(+b.dataset.k); } });
  wrap.addEventListener("keydown", (ev) => {
    const b = ev.target.closest(".tile");
    if (!b) return;
    const k = +b.dataset.k, across = +b.parentElement.dataset.perRow;
    const to = { ArrowRight: k + 1, ArrowLeft: k - 1, ArrowDown: k + across, ArrowUp: k - across, Home: 0, End: tiles.length - 1 }[ev.key];
    if (to !== undefined) { ev.preventDefault(); move(Math.max(0, Math.min(tiles.length - 1, to))); }
  });
  const legend = h("ul.grid-legend", {}, h("li", {}, h("span.key.key-reset"), "reset by a forget"), h("li", {}, h("span.key.key-hl"), "in the forget preview"),
    h("li", { text: "Arrow keys move between tiles; Enter or Space pins one." }));
  const root = h("div.parts-root", { "data-k": K, "data-block": block, "data-model-version": list.model_version }, legend, wrap, details);
  root.mark = (cols) => {
    const set = new Set(cols);
    for (const b of tiles) b.classList.toggle("hl", set.has(+b.dataset.k));
    refresh();
  };
  root.provenance = prov;
  return root;
}

async function partsPage(gen, id, blockText) {
  modelNav(id, "parts");
  const enc = encodeURIComponent(id);
  const m = await api(`/v1/models/${enc}`);
  const block = Math.max(0, parseInt(blockText || "0", 10) || 0);
  const blocks = m.kind === "pfc2" ? 2 : m.kind === "pfc" ? 1 : 0;
  const heading = h("h1", { tabindex: -1, text: `Parts of ${m.name}` });
  if (!blocks) {
    main.replaceChildren(heading, h("p.none", { text: `A ${m.kind} model has no PFC basis vectors to show.` }));
    return heading;
  }
  const controls = h("div.field", {});
  if (blocks > 1) {
    const [label, sel] = select("Block", "block", [...Array(blocks).keys()].map((b) => [b, `block ${b}`]), block);
    sel.addEventListener("change", () => { location.hash = `#/parts/${enc}/${sel.value}`; });
    controls.append(label, sel);
  }
  const grid = await partsGrid(id, block);
  if (gen !== generation) return null;
  main.replaceChildren(heading, h("p", { text: `Version ${grid.dataset.modelVersion}: ${grid.dataset.k} basis vectors of block ${block}, each W_x column scaled to black–white on its own.` }),
    controls, grid);
  return heading;
}

// ---------------------------------------------------------------- 4. forget

async function forgetPage(gen, id) {
  modelNav(id, "forget");
  const enc = encodeURIComponent(id);
  const [m, datasets] = await Promise.all([api(`/v1/models/${enc}`), listAll("/v1/datasets")]);
  const heading = h("h1", { tabindex: -1, text: `Forget in ${m.name}` });
  if (m.kind !== "pfc" && m.kind !== "pfc2") {
    main.replaceChildren(heading, h("p.none", { text: "Forgetting needs a PFC model trained with tasks." }));
    return heading;
  }
  const grid = await partsGrid(id, 0, { detailsID: "forget-part-details" });
  if (gen !== generation) return null;
  const prov = grid.provenance;
  const dsOptions = datasets.map((d) => [d.id, `${d.name} (${d.examples} rows, ${short(d.id)})`]);
  const kind = h("fieldset.choices", {}, h("legend", { text: "What to forget" }),
    ...[["task", "A task"], ["batches", "Ledger batches"], ["dataset", "Everything from a dataset"]].map(([v, t], i) =>
      h("div.choice", {}, h("input", { type: "radio", name: "forget-kind", id: `kind-${v}`, value: v, checked: i === 0 }), h("label", { for: `kind-${v}`, text: t }))));
  const [taskLabel, taskSel] = select("Task", "forget-task", prov.tasks.map((t) => [t.task, `task ${t.task}: ${t.name} (columns ${t.columns ? `${t.columns[0]}–${t.columns[1] - 1}` : "–"})`]));
  const batchLabel = h("label", { for: "forget-batches", text: "Batches (select one or more)" });
  const batchSel = h("select", { id: "forget-batches", name: "forget-batches", multiple: true, size: 6 },
    prov.ledger.map((e) => h("option", { value: e.id }, `task ${e.task} · epoch ${e.epoch} · batch ${e.batch_index} · ${e.rows.length} rows · columns ${(e.windows[0] || []).join("–")} (${short(e.id)})`)));
  const [dsLabel, dsSel] = select("Dataset", "forget-dataset", dsOptions);
  // Accuracy before and after is measured on the dataset of the latest task by default (any dataset, or none, can be chosen).
  const lastTask = prov.tasks[prov.tasks.length - 1];
  const evalDefault = lastTask && datasets.some((d) => d.id === lastTask.dataset_id) ? lastTask.dataset_id : "";
  const [evalLabel, evalSel] = select("Measure accuracy on (optional)", "forget-evaluate", [["", "no dataset"], ...dsOptions], evalDefault);
  const preview = h("div.preview", { id: "forget-preview", "aria-live": "polite" });
  const confirmBox = h("div.confirm", { id: "forget-confirm", hidden: true });
  const audits = h("div", { id: "forget-audits" });

  function request(dry) {
    const k = main.querySelector('input[name="forget-kind"]:checked').value;
    const body = { dry_run: dry };
    if (k === "task") body.task = parseInt(taskSel.value, 10);
    if (k === "batches") body.batches = [...batchSel.selectedOptions].map((o) => o.value);
    if (k === "dataset") body.dataset_id = dsSel.value;
    if (evalSel.value) body.evaluate_on = evalSel.value;
    return body;
  }
  function result(r, dry) {
    return h("dl.facts", { "data-columns": r.columns_reset.join(",") },
      h("dt", { text: dry ? "Columns to reset" : "Columns reset" }), h("dd.cols", { text: `${r.columns_reset.length}: ${ranges(r.columns_reset)}` }),
      h("dt", { text: "Already reset" }), h("dd", { text: `${r.already_reset.length}: ${ranges(r.already_reset)}` }),
      h("dt", { text: "Selected batches" }), h("dd", { text: String(r.batches.length) }),
      h("dt", { text: "Other batches sharing these columns" }), h("dd", { text: `${r.collateral_batches.length}${r.collateral_batches.length ? ": " + r.collateral_batches.slice(0, 4).map(short).join(", ") + (r.collateral_batches.length > 4 ? ", …" : "") : ""}` }),
      h("dt", { text: "Accuracy before → after" }), h("dd", { text: `${pct(r.accuracy_before)} → ${pct(r.accuracy_after)}` }),
      dry ? [] : [h("dt", { text: "New version" }), h("dd", { text: r.version_created ? String(r.model_version) : "none (nothing new to reset)" })]);
  }
  /** POST the forget; a large one is queued as a forget job (202): follow it and answer with its result. */
  function forget(body) {
    return api(`/v1/models/${enc}/forget`, { method: "POST", body }).then((r) => {
      if (!(r && r.kind === "forget" && r.state)) return r;
      preview.replaceChildren(h("p", { text: "The measurements are large: running as a forget job…" }));
      return new Promise((resolve, reject) => {
        onLeave(followJob(r.id, (e, j) => {
          const p = j.progress;
          if (p && p.examples) preview.replaceChildren(h("p", { text: `Forget job ${j.state}: ${p.examples_done} of ${p.examples} rows measured` }));
        }, (j) => {
          if (j && j.state === "succeeded" && j.result) resolve(j.result);
          else reject(new Error(`the forget job ${j ? j.state : "ended"}${j && j.error ? ": " + j.error : ""}`));
        }));
      });
    });
  }
  async function doPreview() {
    clearError();
    const body = request(true);
    if (body.batches && !body.batches.length) { preview.replaceChildren(h("p", { text: "Select at least one batch." })); return; }
    preview.replaceChildren(h("p", { text: "Running the dry run…" }));
    const r = await forget(body);
    grid.mark(r.columns_reset);
    preview.replaceChildren(h("h3", { text: "Dry run: nothing was changed" }), result(r, true));
    confirmBox.hidden = false;
    confirmBox.replaceChildren(
      h("p", { text: r.columns_reset.length ? `Forgetting writes a new version with ${r.columns_reset.length} columns reset in every matrix, and an audit record.` : "Nothing new to reset." }),
      h("button.danger", { type: "button", id: "forget-confirm-button", disabled: !r.columns_reset.length, onclick: () => doForget(body).catch(showError) }, `Yes, forget (reset ${r.columns_reset.length} columns)`),
      h("button", { type: "button", id: "forget-cancel", onclick: () => { confirmBox.hidden = true; grid.mark([]); preview.replaceChildren(); } }, "Cancel"));
    say(`Dry run: ${r.columns_reset.length} columns would be reset`);
  }
  async function doForget(body) {
    const r = await forget(Object.assign({}, body, { dry_run: false }));
    confirmBox.hidden = true;
    say(`Forgot: version ${r.model_version}, ${r.columns_reset.length} columns reset`);
    await route();
    const box = document.getElementById("forget-preview");
    if (box) box.replaceChildren(h("h3", { text: "Forgotten" }), result(r, false));
  }
  const form = h("form.card", { id: "forget-form", onsubmit: (ev) => { ev.preventDefault(); doPreview().catch(showError); } },
    h("h2", { text: "Choose what to forget" }), kind,
    h("div.field", {}, taskLabel, taskSel), h("div.field", {}, batchLabel, batchSel), h("div.field", {}, dsLabel, dsSel), h("div.field", {}, evalLabel, evalSel),
    h("button", { type: "submit", id: "forget-preview-button", text: "Preview (dry run)" }));
  const records = prov.forgets.slice().reverse();
  audits.append(records.length ? table(`${records.length} forget${records.length === 1 ? "" : "s"}`, ["When", "Version", "Selector", "Columns reset", "Accuracy before → after"],
    records.map((f) => [when(f.created_at), String(f.version),
      f.request.task ? `task ${f.request.task}` : f.request.dataset_id ? `dataset ${short(f.request.dataset_id)}` : f.request.batches ? `${f.request.batches.length} batches` : "examples",
      `${f.columns_reset.length}: ${ranges(f.columns_reset)}`, `${pct(f.accuracy_before)} → ${pct(f.accuracy_after)}`]), "audits") : h("p.none", { text: "No forgets yet." }));
  main.replaceChildren(heading, h("div.forget-layout", {}, h("div", {}, form, preview, confirmBox), section("Parts grid", "h-forget-grid", grid)),
    section("Audit", "h-audit", audits));
  return heading;
}

// ---------------------------------------------------------------- 5. explain

async function explainPage(gen, id) {
  modelNav(id, "explain");
  const enc = encodeURIComponent(id);
  const m = await api(`/v1/models/${enc}`);
  const v = await api(`/v1/models/${enc}/versions/${m.version}`);
  if (gen !== generation) return null;
  const d = m.input_dim * (m.sequence_length || 1);
  const shape = Array.isArray(v.metrics && v.metrics.image_shape) && v.metrics.image_shape[0] * v.metrics.image_shape[1] === d ? v.metrics.image_shape : null;
  const heading = h("h1", { tabindex: -1, text: `Explain a prediction of ${m.name}` });
  let values = new Array(d).fill(0);
  const text = h("textarea", { id: "explain-input", name: "explain-input", rows: 4, "aria-describedby": "explain-help" });
  const sync = () => { text.value = values.map((x) => +x.toFixed(4)).join(", "); };
  const out = h("div", { id: "explain-result", "aria-live": "polite" });
  let canvas = null, cursor = 0, draw = () => {};
  if (shape) {
    const [H, W] = shape, cell = Math.max(4, Math.floor(240 / Math.max(H, W)));
    canvas = h("canvas.draw", { id: "explain-canvas", width: W * cell, height: H * cell, tabindex: 0, role: "img",
      "aria-label": `Drawing area, ${H} by ${W} pixels. Arrow keys move the cursor, Space or Enter paints, Delete erases.` });
    const ctx = canvas.getContext("2d");
    draw = () => {
      for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
        const g = Math.round(255 * (1 - Math.max(0, Math.min(1, values[y * W + x]))));
        ctx.fillStyle = `rgb(${g},${g},${g})`;
        ctx.fillRect(x * cell, y * cell, cell, cell);
      }
      if (document.activeElement === canvas) {
        ctx.strokeStyle = "#c0392b"; ctx.lineWidth = 2;
        ctx.strokeRect((cursor % W) * cell + 1, Math.floor(cursor / W) * cell + 1, cell - 2, cell - 2);
      }
    };
    const paint = (i, val) => {
      if (i < 0 || i >= d) return;
      values[i] = Math.max(values[i], val);
      const x = i % W, y = Math.floor(i / W);
      for (const [dx, dy] of [[1, 0], [-1, 0], [0, 1], [0, -1]]) {
        const xx = x + dx, yy = y + dy;
        if (xx >= 0 && xx < W && yy >= 0 && yy < H) values[yy * W + xx] = Math.max(values[yy * W + xx], val * 0.35);
      }
    };
    let down = false;
    const at = (ev) => {
      const r = canvas.getBoundingClientRect();
      const x = Math.floor(((ev.clientX - r.left) / r.width) * W), y = Math.floor(((ev.clientY - r.top) / r.height) * H);
      return x >= 0 && x < W && y >= 0 && y < H ? y * W + x : -1;
    };
    canvas.addEventListener("pointerdown", (ev) => { down = true; canvas.setPointerCapture(ev.pointerId); paint(at(ev), 1); draw(); sync(); });
    canvas.addEventListener("pointermove", (ev) => { if (down) { paint(at(ev), 1); draw(); sync(); } });
    canvas.addEventListener("pointerup", () => { down = false; });
    canvas.addEventListener("focus", draw);
    canvas.addEventListener("blur", draw);
    canvas.addEventListener("keydown", (ev) => {
      const moves = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: W, ArrowUp: -W };
      if (moves[ev.key] !== undefined) { cursor = Math.max(0, Math.min(d - 1, cursor + moves[ev.key])); ev.preventDefault(); }
      else if (ev.key === " " || ev.key === "Enter") { values[cursor] = 1; ev.preventDefault(); sync(); }
      else if (ev.key === "Delete" || ev.key === "Backspace") { values[cursor] = 0; ev.preventDefault(); sync(); }
      else return;
      draw();
    });
  }
  text.addEventListener("change", () => {
    const nums = text.value.split(/[\s,;]+/).filter(Boolean).map(Number);
    if (nums.length === d && nums.every(Number.isFinite)) { values = nums; draw(); }
    else showError(new Error(`The input needs ${d} numbers; got ${nums.length}.`));
  });
  const file = h("input", { type: "file", id: "explain-file", name: "explain-file", accept: ".csv,.txt,image/png,image/jpeg" });
  file.addEventListener("change", async () => {
    const f = file.files[0];
    if (!f) return;
    clearError();
    if (f.type.startsWith("image/") && shape) {
      const bitmap = await createImageBitmap(f);
      const off = document.createElement("canvas");
      off.width = shape[1]; off.height = shape[0];
      const c = off.getContext("2d");
      c.drawImage(bitmap, 0, 0, shape[1], shape[0]);
      const px = c.getImageData(0, 0, shape[1], shape[0]).data;
      values = [...Array(d).keys()].map((i) => 1 - (px[i * 4] + px[i * 4 + 1] + px[i * 4 + 2]) / 765); // dark ink on light paper
    } else {
      const line = (await f.text()).split(/\r?\n/).find((l) => /\d/.test(l) && !/[a-df-z]/i.test(l)) || "";
      let nums = line.split(/[\s,;]+/).filter(Boolean).map(Number);
      if (nums.length === d + 1) nums = nums.slice(1); // a dataset row: label first
      if (nums.length !== d || !nums.every(Number.isFinite)) { showError(new Error(`The file's first row has ${nums.length} numbers; the model takes ${d}.`)); return; }
      values = nums;
    }
    draw(); sync();
  });
  async function predict() {
    clearError();
    const r = await api(`/v1/models/${enc}/predict`, { method: "POST", body: { inputs: [values], top: 8 } });
    const cls = r.predictions[0], outputs = r.outputs[0], parts = r.explanations[0] || [];
    const rows = [];
    for (const e of parts) {
      let thumb = "–";
      if (shape) {
        try {
          const img = await imageURL(`/v1/models/${enc}/components/${e.block}/${e.component}.png?version=${r.model_version}`);
          thumb = h("img.thumb", { src: img.url, alt: `basis vector ${e.component}` });
        } catch (_) { thumb = "–"; }
      }
      rows.push([String(e.component), String(e.block), thumb, fmt(e.activation), fmt(e.contribution)]);
    }
    out.replaceChildren(h("p.prediction", { id: "explain-class" }, "Predicted class ", h("strong", { text: String(cls) }), ` (version ${r.model_version})`),
      barChart({ title: "Output per class", labels: outputs.map((_, i) => i), values: outputs, highlight: cls }),
      parts.length ? table("Top parts (contribution h_k · W_y[class, k])", ["Basis vector", "Block", "Image", "Activation", "Contribution"], rows, "parts-table")
        : h("p.none", { text: "This kind of model has no parts to explain with." }));
    say(`Predicted class ${cls}`);
  }
  const controls = h("div.explain-controls", {},
    shape ? h("div.field", {}, h("span.label", { id: "canvas-label", text: "Draw the input" }), canvas,
      h("button", { type: "button", id: "explain-clear", onclick: () => { values = new Array(d).fill(0); draw(); sync(); } }, "Clear")) : null,
    h("div.field", {}, h("label", { for: "explain-file", text: "Or upload an image or a CSV row" }), file),
    h("div.field", {}, h("label", { for: "explain-input", text: `Input values (${d} numbers)` }), text,
      h("p.help", { id: "explain-help", text: "Edit the numbers and leave the field to update the drawing." })),
    h("button", { type: "button", id: "explain-predict", onclick: () => predict().catch(showError) }, "Predict and explain"));
  draw(); sync();
  main.replaceChildren(heading, h("div.explain-layout", {}, section("Input", "h-input", controls), section("Prediction", "h-prediction", out)));
  return heading;
}

// ---------------------------------------------------------------- 6. NPEFF

async function npeffPage(gen, id) {
  modelNav(id, "npeff");
  const enc = encodeURIComponent(id);
  const [m, analyses, datasets] = await Promise.all([api(`/v1/models/${enc}`), listAll(`/v1/models/${enc}/analyses`), listAll("/v1/datasets")]);
  if (gen !== generation) return null;
  const heading = h("h1", { tabindex: -1, text: `NPEFF analyses of ${m.name}` });
  const detail = h("div", { id: "npeff-detail" });
  const componentBox = h("div", { id: "npeff-component" });

  async function showComponent(a, j) {
    const c = await api(`/v1/analyses/${encodeURIComponent(a.id)}/components/${j}`);
    let grid = h("p.none", { text: "No example grid (the dataset has no image shape)." });
    try {
      const img = await imageURL(`/v1/analyses/${encodeURIComponent(a.id)}/components/${j}/examples.png?count=16`);
      grid = h("img.examples", { src: img.url, alt: `The 16 top examples of component ${j}`, id: "npeff-examples" });
    } catch (e) { if (!(e instanceof ApiError && e.status === 422)) throw e; }
    const perturbOut = h("div", { id: "npeff-perturb-result", "aria-live": "polite" });
    const mag = h("input", { type: "number", id: "perturb-magnitude", name: "perturb-magnitude", min: "0.001", max: "1000", step: "any", value: "0.1" });
    const form = h("form.inline", { id: "npeff-perturb-form", onsubmit: async (ev) => {
      ev.preventDefault();
      perturbOut.replaceChildren(h("p", { text: "Perturbing…" }));
      try {
        const r = await api(`/v1/analyses/${encodeURIComponent(a.id)}/components/${j}/perturb`, { method: "POST", body: { magnitude: parseFloat(mag.value) } });
        perturbOut.replaceChildren(h("dl.facts", { id: "npeff-kl" },
          h("dt", { text: "KL-ratio" }), h("dd", { id: "npeff-kl-ratio", text: fmt(r.kl_ratio) }),
          h("dt", { text: "PEF-norm ratio" }), h("dd", { text: fmt(r.pef_norm_ratio) }),
          h("dt", { text: "KL on top / random examples" }), h("dd", { text: `${fmt(r.top_kl)} / ${fmt(r.baseline_kl)}` }),
          h("dt", { text: "Accuracy on top examples" }), h("dd", { text: `${pct(r.original_top_accuracy)} → ${pct(r.top_accuracy)}` })));
      } catch (e) { perturbOut.replaceChildren(); showError(e); }
    } }, h("label", { for: "perturb-magnitude", text: "Perturbation ‖δ‖" }), mag, h("button", { type: "submit", id: "npeff-perturb", text: "Run perturbation" }));
    const shares = c.pfc_parts.shares.slice(0, 10);
    componentBox.replaceChildren(h("h3", { text: `Component ${j}` }),
      h("div.npeff-grid", {}, h("div", {}, grid),
        barChart({ title: "Labels of the top examples", labels: c.label_histogram.map((_, i) => i), values: c.label_histogram, highlight: c.top_label ?? -1, valueLabel: "examples" })),
      shares.length ? table(`Share on PFC columns, the ${shares.length} largest (unassigned ${pct(c.pfc_parts.unassigned)})`, ["Column", "Block", "Share"],
        shares.map((s) => [String(s.k), String(s.block), pct(s.share)]), "shares") : h("p.none", { text: "No PFC columns (not a PFC model)." }),
      form, perturbOut);
  }

  async function showAnalysis(aid) {
    componentBox.replaceChildren();
    const a = await api(`/v1/analyses/${encodeURIComponent(aid)}`);
    if (a.state !== "ready") {
      detail.replaceChildren(h("p", { text: `Analysis ${short(a.id)} is ${a.state}.` }));
      return;
    }
    const list = await api(`/v1/analyses/${encodeURIComponent(aid)}/components`);
    detail.replaceChildren(h("h3", { text: `Analysis ${short(a.id)}: ${a.method}, ${a.components} components over ${a.examples} examples` }),
      table("Components", ["Component", "Top label (share)", "Mean coefficient", "Top PFC column", "Show"],
        list.components.map((c) => [String(c.index), `${c.top_label ?? "–"} (${pct(c.top_label_share)})`, fmt(c.coefficient_mean),
          c.top_part ? `${c.top_part.k} (${pct(c.top_part.share)})` : "–",
          h("button.small", { type: "button", "data-component": c.index, onclick: () => showComponent(a, c.index).catch(showError) }, `Component ${c.index}`)]), "components"),
      componentBox);
  }

  const [dsLabel, dsSel] = select("Dataset", "npeff-dataset", datasets.map((d) => [d.id, `${d.name} (${d.examples} rows)`]));
  const [methodLabel, methodSel] = select("Method", "npeff-method", [["diagonal", "D-NPEFF (diagonal)"], ["low_rank", "LRM-NPEFF (low rank)"]], "diagonal");
  const comps = h("input", { type: "number", id: "npeff-components", name: "npeff-components", min: 1, max: 1000, value: 8 });
  const examples = h("input", { type: "number", id: "npeff-examples-count", name: "npeff-examples-count", min: 1, max: 20000, value: 300 });
  const created = h("p", { "aria-live": "polite" });
  const form = h("form.card", { id: "npeff-form", onsubmit: async (ev) => {
    ev.preventDefault();
    clearError();
    try {
      const r = await api(`/v1/models/${enc}/analyses`, { method: "POST", body: { dataset_id: dsSel.value, method: methodSel.value,
        components: parseInt(comps.value, 10), examples: parseInt(examples.value, 10), steps: 200 } });
      created.textContent = `Analysis ${short(r.id)} queued; this page refreshes when it is ready.`;
      const jobID = r.job_id;
      if (jobID) onLeave(followJob(jobID, (e, j) => { created.textContent = `Analysis job ${j.state}${j.progress && j.progress.phase ? ", " + j.progress.phase : ""}`; },
        () => setTimeout(() => { if (gen === generation) route(); }, 500)));
    } catch (e) { showError(e); }
  } }, h("h2", { text: "New analysis" }), h("div.field", {}, dsLabel, dsSel), h("div.field", {}, methodLabel, methodSel),
  h("div.field", {}, h("label", { for: "npeff-components", text: "Components" }), comps),
  h("div.field", {}, h("label", { for: "npeff-examples-count", text: "Examples" }), examples),
  h("button", { type: "submit", id: "npeff-create", text: "Queue analysis" }), created);

  const ready = analyses.filter((a) => a.state === "ready");
  const list = analyses.length ? table(`${analyses.length} ${analyses.length === 1 ? "analysis" : "analyses"}`, ["Analysis", "Method", "State", "Components", "Examples", "Created", "Open"],
    analyses.map((a) => [short(a.id), a.method, a.state, String(a.components ?? "–"), String(a.examples ?? "–"), when(a.created_at),
      h("button.small", { type: "button", "data-analysis": a.id, onclick: () => showAnalysis(a.id).catch(showError) }, `Open ${short(a.id)}`)]), "analyses")
    : h("p.none", { text: "No analyses yet." });
  main.replaceChildren(heading, h("div.npeff-layout", {}, section("Analyses", "h-analyses", list, detail), form));
  if (ready.length) await showAnalysis(ready[0].id);
  return heading;
}

// ---------------------------------------------------------------- router

async function route() {
  for (const fn of cleanups) fn();
  cleanups = [];
  releaseImages();
  clearError();
  say("");
  const gen = ++generation;
  sessionBar();
  if (!getKey()) { keyPage().focus(); return; }
  let parts = [];
  try { parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent); } catch (_) { parts = []; }
  const pages = { model: modelPage, parts: partsPage, forget: forgetPage, explain: explainPage, npeff: npeffPage };
  main.setAttribute("aria-busy", "true");
  try {
    const page = pages[parts[0]];
    const heading = page && parts[1] ? await page(gen, parts[1], parts[2]) : await modelsPage(gen);
    if (gen !== generation) return;
    document.title = `${heading ? heading.textContent : "pfc-server"} · pfc-server`;
    main.dataset.page = page && parts[1] ? parts[0] : "models";
    if (heading && document.activeElement && !main.contains(document.activeElement)) heading.focus();
  } catch (e) {
    if (gen !== generation) return;
    if (e instanceof ApiError && e.status === 401) { clearKey(); keyPage().focus(); showError(new Error("The server refused the key (401). Enter a valid API key.")); return; }
    main.replaceChildren(h("h1", { tabindex: -1, text: "Could not load this page" }));
    showError(e);
  } finally {
    if (gen === generation) { main.removeAttribute("aria-busy"); main.dataset.ready = String(gen); }
  }
}

window.addEventListener("hashchange", () => { route(); });
route();
