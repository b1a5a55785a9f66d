// The compare page: /ui/compare?ids=1,2,3, live while any of the jobs runs.

import { api } from "./api.js";
import { debounce, showError } from "./dom.js";
import { follow } from "./events.js";
import { Comparison, onJobChanges } from "./comparechart.js";
import { FINISHED } from "./format.js";
import { ensureSignedIn } from "./signin.js";

const $ = (id) => document.getElementById(id);
const ids = new URLSearchParams(location.search).get("ids") || "";
const view = new Comparison($("comparison"));
let current = new Set();

async function load() {
  const comparison = await api(`/compare?ids=${encodeURIComponent(ids)}`);
  current = new Set(comparison.jobs.map((j) => j.id));
  $("compare-title").textContent = `Compare jobs ${[...current].join(", ")}`;
  view.update(comparison);
  showError($("compare-error"), "");
  return comparison.jobs.some((j) => !FINISHED.has(j.status));
}

async function main() {
  await ensureSignedIn();
  if (!ids) {
    showError($("compare-error"), "Choose jobs to compare on the jobs page (or add ?ids=1,2 to the address).");
    return;
  }
  try {
    if (!(await load())) return; // every job has finished: nothing will change
  } catch (error) {
    showError($("compare-error"), error.message);
    return;
  }
  const reload = debounce(() => load().catch((error) => showError($("compare-error"), error.message)), 300);
  follow("/events", onJobChanges(() => current, reload), { poll: load });
}

main().catch((error) => showError($("compare-error"), error.message));
