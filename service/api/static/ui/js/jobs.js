// The jobs page: the list (paged, filtered, live through GET /events) and the submit form.

import { api } from "./api.js";
import { debounce, fill, h, showError } from "./dom.js";
import { follow } from "./events.js";
import { FINISHED, percent, progressText, when } from "./format.js";
import { ensureSignedIn, mayWrite } from "./signin.js";
import { buildForm } from "./submit.js";

// One page: also the most jobs GET /compare takes at once, which gives the page's best accuracies in one call.
const PAGE = 20;
const state = { offset: 0, status: "", total: 0, jobs: new Map(), rows: new Map(), best: new Map() };
const selected = new Set();

const $ = (id) => document.getElementById(id);
const tbody = $("jobs-table").querySelector("tbody");

function statusCell(job) {
  return [
    h("span", { class: `badge status-${job.status}` }, job.status),
    job.cancel_requested && !FINISHED.has(job.status) ? h("span", { class: "note" }, "cancelling…") : null,
    job.waiting_for ? h("span", { class: "note" }, job.waiting_for) : null,
    job.error ? h("span", { class: "note error-text", title: job.error }, job.error) : null,
  ];
}

function progressCell(job) {
  return [
    h("progress", { max: 1, value: job.progress.fraction, "aria-label": `Job ${job.id} progress` }),
    h("span", {}, progressText(job)),
  ];
}

/** A new row for `job`; its changing cells are kept to be refilled in place (see `render`). */
function row(job) {
  const box = h("input", { type: "checkbox", "aria-label": `Select job ${job.id}`, checked: selected.has(job.id) });
  box.addEventListener("change", () => {
    if (box.checked) selected.add(job.id);
    else selected.delete(job.id);
    renderCompareLink();
  });
  const link = `/ui/jobs/${job.id}`;
  const cells = {
    status: h("td", {}),
    progress: h("td", { class: "progress" }),
    best: h("td", { class: "num" }),
    device: h("td", {}),
  };
  const tr = h(
    "tr",
    { "data-job": job.id },
    h("td", {}, box),
    h("td", {}, h("a", { href: link }, String(job.id))),
    h(
      "td",
      { class: "name" },
      h("a", { href: link }, job.name || `job ${job.id}`),
      job.sweep_id
        ? h("span", { class: "note" }, "in ", h("a", { href: `/ui/sweeps/${job.sweep_id}` }, `sweep ${job.sweep_id}`))
        : null,
    ),
    h("td", { class: "owner" }, job.owner || "—"),
    cells.status,
    cells.progress,
    cells.best,
    cells.device,
    h("td", {}, h("time", { datetime: job.created_at }, when(job.created_at))),
  );
  return { tr, cells };
}

/** Show `job`'s current state. Only the cells that change are refilled: a row replaced every heartbeat would take
 * the keyboard focus away from its checkbox and links. */
function render(job) {
  let shown = state.rows.get(job.id);
  if (!shown) {
    shown = row(job);
    state.rows.set(job.id, shown);
  }
  fill(shown.cells.status, statusCell(job));
  fill(shown.cells.progress, progressCell(job));
  fill(shown.cells.best, percent(state.best.get(job.id)));
  fill(shown.cells.device, job.device || "—");
  return shown.tr;
}

function renderCompareLink() {
  const link = $("compare-link");
  link.textContent = selected.size ? `Compare selected (${selected.size})` : "Compare selected";
  if (selected.size >= 2 && selected.size <= PAGE) {
    link.href = `/ui/compare?ids=${[...selected].sort((a, b) => a - b).join(",")}`;
    link.classList.remove("disabled");
    link.removeAttribute("aria-disabled");
  } else {
    link.removeAttribute("href");
    link.classList.add("disabled");
    link.setAttribute("aria-disabled", "true");
  }
}

async function loadBest() {
  const ids = [...state.jobs.keys()];
  if (!ids.length) return;
  try {
    const comparison = await api(`/compare?ids=${ids.join(",")}`);
    for (const job of comparison.jobs) {
      const accuracies = job.epochs.map((e) => e.test_accuracy);
      if (accuracies.length) state.best.set(job.id, Math.max(...accuracies));
    }
  } catch {
    return; // a job deleted meanwhile: the next load has the right ids
  }
  for (const job of state.jobs.values()) render(job);
}

async function load() {
  const query = new URLSearchParams({ limit: PAGE, offset: state.offset });
  if (state.status) query.set("status", state.status);
  let page;
  try {
    page = await api(`/jobs?${query}`);
    showError($("jobs-error"), "");
  } catch (error) {
    showError($("jobs-error"), `Could not load the jobs: ${error.message}`);
    return true;
  }
  state.total = page.total;
  const sameRows = page.items.map((j) => j.id).join() === [...state.jobs.keys()].join() && page.items.length;
  state.jobs = new Map(page.items.map((job) => [job.id, job]));
  for (const id of state.rows.keys()) if (!state.jobs.has(id)) state.rows.delete(id);
  if (sameRows) {
    page.items.forEach(render); // the same jobs in the same order: refilled in place, the focus stays
  } else {
    const empty = h("tr", {}, h("td", { colspan: 9, class: "empty" }, "No jobs yet."));
    fill(tbody, page.items.length ? page.items.map(render) : empty);
  }
  const last = Math.min(state.offset + page.items.length, page.total);
  $("page-info").textContent = page.total ? `${state.offset + 1}–${last} of ${page.total}` : "";
  $("prev-page").disabled = state.offset === 0;
  $("next-page").disabled = state.offset + PAGE >= page.total;
  const url = new URLSearchParams();
  if (state.status) url.set("status", state.status);
  if (state.offset) url.set("offset", state.offset);
  history.replaceState(null, "", url.size ? `?${url}` : location.pathname);
  await loadBest();
  return true;
}

const reloadSoon = debounce(load, 300);
const bestSoon = debounce(loadBest, 500);

function onStatus(data) {
  const job = state.jobs.get(data.job_id);
  if (!job) {
    // A job this page does not show: a new one belongs at the top of the first page.
    if (state.offset === 0 && (!state.status || state.status === data.status)) reloadSoon();
    return;
  }
  Object.assign(job, { status: data.status, error: data.error, waiting_for: data.waiting_for });
  render(job);
  if (state.status && state.status !== data.status) reloadSoon();
  bestSoon();
}

function onProgress(data) {
  const job = state.jobs.get(data.job_id);
  if (!job) return;
  const before = job.progress.epochs_completed;
  job.progress = data.progress;
  render(job);
  if (data.progress.epochs_completed !== before) bestSoon();
}

async function main() {
  const params = new URLSearchParams(location.search);
  state.status = params.get("status") || "";
  state.offset = Math.max(0, Number(params.get("offset")) || 0);
  await ensureSignedIn();

  const openapi = await api("/openapi.json");
  const filter = $("status-filter");
  for (const status of openapi.components.schemas.Status?.enum || []) filter.append(h("option", { value: status }, status));
  filter.value = state.status;
  filter.addEventListener("change", () => {
    state.status = filter.value;
    state.offset = 0;
    load();
  });
  $("prev-page").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - PAGE);
    load();
  });
  $("next-page").addEventListener("click", () => {
    state.offset += PAGE;
    load();
  });
  // A viewer only reads: no form to queue jobs with.
  $("submit-form").parentElement.hidden = !mayWrite();
  buildForm($("submit-form"), openapi, {
    onCreated: () => {
      // The new job is queued: show it, at the top of the first page, whatever the filter was.
      state.status = filter.value = "";
      state.offset = 0;
      load();
    },
  });
  renderCompareLink();
  await load();
  const live = $("live");
  follow("/events", { status: onStatus, progress: onProgress }, {
    poll: load,
    onMode: (mode) => (live.textContent = mode === "live" ? "● live" : "updated every 5 s"),
  });
}

main().catch((error) => showError($("jobs-error"), error.message));
