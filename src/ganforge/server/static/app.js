// ganforge web page: everything goes through the JSON API (POST /v1/jobs, GET /v1/jobs/{id}, ...).
"use strict";
const $ = (id) => document.getElementById(id);
const state = { content: null, styles: [], models: null, urls: {} };

function setUrl(key, blob) {  // one object URL per slot, the old one released
  if (state.urls[key]) URL.revokeObjectURL(state.urls[key]);
  state.urls[key] = URL.createObjectURL(blob);
  return state.urls[key];
}

function text(el, value) { el.textContent = value; }

// -- API key: kept for this tab only (sessionStorage), sent as a bearer token ---------------------------
const KEY = "ganforge-api-key";
function api(url, opts = {}) {
  const key = sessionStorage.getItem(KEY);
  const headers = new Headers(opts.headers || {});
  if (key) headers.set("Authorization", "Bearer " + key);
  return fetch(url, { ...opts, headers, credentials: "same-origin" }).then((resp) => {
    if (resp.status === 401) $("key-row").hidden = false;
    return resp;
  });
}
$("api-key").value = sessionStorage.getItem(KEY) || "";
if ($("api-key").value) $("key-row").hidden = false;
$("api-key").addEventListener("change", () => {
  const key = $("api-key").value.trim();
  if (key) sessionStorage.setItem(KEY, key); else sessionStorage.removeItem(KEY);
  loadModels();
});
async function blobUrl(key, url) {  // an image the API serves, fetched with the key
  const resp = await api(url);
  if (!resp.ok) throw new Error(await errorMessage(resp));
  return setUrl(key, await resp.blob());
}

async function errorMessage(resp) {
  try { const body = await resp.json(); return body.error || JSON.stringify(body); }
  catch (e) { return resp.status + " " + resp.statusText; }
}

// -- tabs ---------------------------------------------------------------------------------------------
document.querySelectorAll("nav button[data-tab]").forEach((btn) => {
  btn.addEventListener("click", () => {
    document.querySelectorAll("nav button[data-tab]").forEach((b) => b.classList.toggle("active", b === btn));
    document.querySelectorAll(".panel").forEach((p) => { p.hidden = p.id !== "panel-" + btn.dataset.tab; });
    if (btn.dataset.tab === "runs") loadRuns();
  });
});

// -- uploads ------------------------------------------------------------------------------------------
function wireDrop(dropId, inputId, onFiles) {
  const drop = $(dropId), input = $(inputId);
  input.addEventListener("change", () => onFiles(Array.from(input.files)));
  ["dragenter", "dragover"].forEach((ev) => drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((ev) => drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.remove("over"); }));
  drop.addEventListener("drop", (e) => onFiles(Array.from(e.dataTransfer.files).filter((f) => f.type.startsWith("image/"))));
}

wireDrop("content-drop", "content-input", (files) => {
  if (!files.length) return;
  state.content = files[0];
  const img = $("content-preview");
  img.src = setUrl("content", files[0]);
  img.hidden = false;
});

wireDrop("style-drop", "style-input", (files) => {
  for (const f of files) state.styles.push({ file: f, weight: 1 });
  renderStyles();
});

function renderStyles() {
  const list = $("style-list");
  list.replaceChildren();
  state.styles.forEach((s, i) => {
    const row = document.createElement("div");
    row.className = "style-item";
    const img = document.createElement("img");
    img.src = setUrl("style" + i, s.file);
    img.alt = "style " + (i + 1);
    const label = document.createElement("label");
    label.textContent = state.styles.length > 1 ? "mix weight " : s.file.name;
    if (state.styles.length > 1) {
      const range = document.createElement("input");
      Object.assign(range, { type: "range", min: 0, max: 1, step: 0.05, value: s.weight });
      range.className = "style-weight";
      range.addEventListener("input", () => { s.weight = Number(range.value); });
      label.appendChild(range);
    }
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "×";
    remove.title = "remove";
    remove.addEventListener("click", () => { state.styles.splice(i, 1); renderStyles(); });
    row.append(img, label, remove);
    list.appendChild(row);
  });
}

$("alpha").addEventListener("input", () => text($("alpha-out"), Number($("alpha").value).toFixed(2)));
$("gen-truncation").addEventListener("input", () => text($("trunc-out"), Number($("gen-truncation").value).toFixed(2)));
$("method").addEventListener("change", () => { $("iterations-row").hidden = $("method").value !== "gatys"; });

// -- jobs ---------------------------------------------------------------------------------------------
async function runJob(form, prefix) {
  const btn = $(prefix + "-btn"), bar = $(prefix + "-progress"), stage = $(prefix + "-stage"), err = $(prefix + "-error");
  text(err, "");
  btn.disabled = true;
  bar.hidden = false;
  bar.value = 0;
  text(stage, "submitting…");
  try {
    let resp = await api("/v1/jobs", { method: "POST", body: form });
    if (!resp.ok) throw new Error(await errorMessage(resp));
    let job = await resp.json();
    while (!["done", "failed", "cancelled"].includes(job.status)) {
      await new Promise((r) => setTimeout(r, 250));
      resp = await api("/v1/jobs/" + job.id);
      if (!resp.ok) throw new Error(await errorMessage(resp));
      job = await resp.json();
      bar.value = job.progress;
      text(stage, job.stage + " " + Math.round(job.progress * 100) + "%");
    }
    if (job.status !== "done") throw new Error(job.error || job.status);
    resp = await api("/v1/jobs/" + job.id + "/result");
    if (!resp.ok) throw new Error(await errorMessage(resp));
    const name = (resp.headers.get("Content-Disposition") || "").match(/filename="([^"]+)"/);
    text(stage, "done");
    return { blob: await resp.blob(), filename: name ? name[1] : "result" };
  } catch (e) {
    text(err, e.message);
    text(stage, "");
    return null;
  } finally {
    btn.disabled = false;
    bar.hidden = true;
  }
}

$("stylize-btn").addEventListener("click", async () => {
  if (!state.content) { text($("stylize-error"), "Choose a content image first."); return; }
  if (!state.styles.length) { text($("stylize-error"), "Choose at least one style image."); return; }
  const form = new FormData();
  form.append("task", "stylize");
  form.append("content", state.content);
  state.styles.forEach((s) => form.append("style", s.file));
  if (state.styles.length > 1) {
    const weights = state.styles.map((s) => s.weight);
    if (weights.every((w) => w === 0)) { text($("stylize-error"), "Give at least one style a weight above 0."); return; }
    form.append("style_weights", weights.join(","));
  }
  form.append("alpha", $("alpha").value);
  form.append("preserve_color", $("preserve-color").checked ? "luminance" : "none");
  form.append("method", $("method").value);
  form.append("max_size", $("max-size").value);
  form.append("format", $("format").value);
  if ($("method").value === "gatys") form.append("iterations", $("iterations").value);
  const out = await runJob(form, "stylize");
  if (!out) return;
  const url = setUrl("result", out.blob);
  const img = $("result-img");
  img.onload = () => text($("result-info"), img.naturalWidth + "×" + img.naturalHeight + " px");
  img.src = url;
  img.hidden = false;
  const link = $("download-link");
  link.href = url;
  link.download = out.filename;
  link.hidden = false;
});

// -- generate -----------------------------------------------------------------------------------------
async function loadModels() {
  const resp = await api("/v1/models");
  if (!resp.ok) { text($("status"), await errorMessage(resp)); return; }
  state.models = await resp.json();
  const select = $("gen-run");
  select.replaceChildren();
  for (const run of state.models.runs) {
    const opt = document.createElement("option");
    opt.value = run.name;
    opt.textContent = run.name + " (" + run.resolution + "px" + (run.num_classes ? ", " + run.num_classes + " classes" : "") + ")";
    select.appendChild(opt);
  }
  $("gen-none").hidden = state.models.runs.length > 0;
  $("generate-btn").disabled = state.models.runs.length === 0;
  fillClasses();
  showEditBox();
  const ff = state.models.methods;
  for (const opt of $("method").options) {
    if (ff[opt.value] && !ff[opt.value].available) opt.textContent += " (weights missing)";
  }
  $("max-size").max = state.models.limits.max_size;
  text($("status"), state.models.runs.length + " run(s) served");
}

function fillClasses() {
  const run = (state.models ? state.models.runs : []).find((r) => r.name === $("gen-run").value);
  const select = $("gen-class");
  select.replaceChildren(new Option("any (random per sample)", ""));
  if (run && run.num_classes) {
    for (let i = 0; i < run.num_classes; i++) select.appendChild(new Option(run.class_names[i] || String(i), String(i)));
  }
  select.disabled = !(run && run.num_classes);
  $("gen-prompt-row").hidden = !(run && run.text);  // text-to-image runs take a prompt
}

$("gen-run").addEventListener("change", fillClasses);

// -- edit: direction sliders on the sample of this seed (POST /v1/edit) ---------------------------------
function showEditBox() {
  const run = (state.models ? state.models.runs : []).find((r) => r.name === $("gen-run").value);
  $("edit-box").hidden = !(run && run.w_space);
}

let editTimer = null;
async function editSample() {
  const body = { run: $("gen-run").value, seed: Number($("gen-seed").value), direction: $("edit-direction").value,
                 strength: Number($("edit-strength").value), truncation: Number($("gen-truncation").value) };
  if ($("gen-class").value !== "") body.class = Number($("gen-class").value);
  text($("generate-error"), "");
  const resp = await api("/v1/edit", { method: "POST", headers: { "Content-Type": "application/json" },
                                       body: JSON.stringify(body) });
  if (!resp.ok) { text($("generate-error"), await errorMessage(resp)); return; }
  const blob = await resp.blob();
  const img = $("gen-img");
  img.src = setUrl("gen", blob);
  img.hidden = false;
}

$("gen-run").addEventListener("change", showEditBox);
$("edit-direction").addEventListener("change", editSample);
$("edit-strength").addEventListener("input", () => {
  text($("edit-strength-out"), Number($("edit-strength").value).toFixed(2));
  clearTimeout(editTimer);
  editTimer = setTimeout(editSample, 150);  // one request per pause, not per pixel of the slide
});
$("gen-random").addEventListener("click", () => { $("gen-seed").value = Math.floor(Math.random() * 1e6); });

$("generate-btn").addEventListener("click", async () => {
  const form = new FormData();
  form.append("task", "generate");
  form.append("run", $("gen-run").value);
  form.append("n", $("gen-n").value);
  form.append("seed", $("gen-seed").value);
  if ($("gen-class").value !== "") form.append("class", $("gen-class").value);
  if (!$("gen-prompt-row").hidden) form.append("prompt", $("gen-prompt").value);
  form.append("truncation", $("gen-truncation").value);
  form.append("format", $("gen-format").value);
  const out = await runJob(form, "generate");
  if (!out) return;
  const url = setUrl("gen", out.blob);
  const img = $("gen-img");
  if (out.blob.type === "image/png") { img.src = url; img.hidden = false; } else { img.hidden = true; }
  const link = $("gen-download");
  link.href = url;
  link.download = out.filename;
  link.hidden = false;
});

// -- runs ---------------------------------------------------------------------------------------------
async function loadRuns() {
  const list = $("runs-list");
  const resp = await api("/v1/models");
  if (!resp.ok) { list.textContent = "Could not load runs: " + (await errorMessage(resp)); return; }
  const models = await resp.json();
  list.replaceChildren();
  if (!models.runs.length) { list.textContent = "No runs served: start the server with --runs DIR."; return; }
  for (const run of models.runs) {
    const card = document.createElement("div");
    card.className = "run-card";
    const h = document.createElement("h3");
    h.textContent = run.name + " — " + run.resolution + "px, " + (run.num_classes ? run.num_classes + " classes" : "unconditional") +
      (run.checkpoint ? ", " + run.checkpoint : "");
    const imgs = document.createElement("div");
    imgs.className = "imgs";
    const pictures = [];  // fetched (with the key) once the summary is shown
    for (const [key, label] of [["samples", "latest samples"], ["loss_curves", "loss curves"]]) {
      if (!run[key]) continue;
      const fig = document.createElement("figure");
      const img = document.createElement("img");
      img.hidden = true;  // shown once its picture is here
      pictures.push(() => blobUrl("run-" + run.name + "-" + key, run[key]).then((u) => { img.src = u; img.hidden = false; })
        .catch(() => { fig.hidden = true; }));
      if (key === "samples") img.className = "pixelated";
      img.alt = run.name + " " + label;
      const cap = document.createElement("figcaption");
      cap.textContent = label;
      fig.append(img, cap);
      imgs.appendChild(fig);
    }
    const pre = document.createElement("pre");
    pre.textContent = "loading summary…";
    card.append(h, imgs, pre);
    list.appendChild(card);
    api(run.summary).then((r) => r.json()).then((s) => {
      pre.textContent = JSON.stringify({ summary: s.summary, last_log: s.last_log }, null, 2);
    }).catch(() => { pre.textContent = "no summary"; }).finally(() => pictures.forEach((load) => load()));
  }
}

loadModels();
