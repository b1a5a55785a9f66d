// A sweep: its leaderboard, best first, and its jobs' curves side by side.

import { api, pathId } from "./api.js";
import { debounce, fill, h, showError } from "./dom.js";
import { follow } from "./events.js";
import { Comparison, onJobChanges } from "./comparechart.js";
import { percent } from "./format.js";
import { ensureSignedIn } from "./signin.js";

const $ = (name) => document.getElementById(name);
const id = pathId();
const view = new Comparison($("comparison"));
let current = new Set();

function leaderboard(sweep) {
  if (!sweep.leaderboard.length) return h("p", { class: "muted" }, "No job has finished an epoch yet.");
  const head = ["Rank", "Job", "Values", "Status", "Epoch", "Test accuracy", "Test loss"];
  const numeric = new Set(["Rank", "Epoch", "Test accuracy", "Test loss"]);
  return h(
    "table",
    {},
    h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col", class: numeric.has(t) ? "num" : null }, t)))),
    h(
      "tbody",
      {},
      sweep.leaderboard.map((entry) =>
        h(
          "tr",
          {},
          h("td", { class: "num" }, String(entry.rank)),
          h("td", {}, h("a", { href: `/ui/jobs/${entry.job_id}` }, `job ${entry.job_id}`)),
          h("td", {}, entry.label),
          h("td", {}, h("span", { class: `badge status-${entry.status}` }, entry.status)),
          h("td", { class: "num" }, String(entry.epoch)),
          h("td", { class: "num" }, percent(entry.test_accuracy)),
          h("td", { class: "num" }, entry.test_loss.toFixed(3)),
        ),
      ),
    ),
  );
}

async function load() {
  const sweep = await api(`/sweeps/${encodeURIComponent(id)}`);
  current = new Set(sweep.jobs.map((j) => j.id));
  const title = sweep.name ? `Sweep ${sweep.id} · ${sweep.name}` : `Sweep ${sweep.id}`;
  $("sweep-title").textContent = title;
  document.title = `${title} · alexnet-jobs`;
  const counts = Object.entries(sweep.counts)
    .filter(([, n]) => n)
    .map(([status, n]) => `${n} ${status}`)
    .join(", ");
  const grid = Object.entries(sweep.grid)
    .map(([field, values]) => `${field} ∈ {${values.join(", ")}}`)
    .join(" × ");
  fill($("sweep-summary"), `${sweep.jobs.length} jobs (${counts}) over ${grid || "no grid"}.`);
  fill($("leaderboard"), leaderboard(sweep));
  if (sweep.links.compare) view.update(await api(sweep.links.compare));
  showError($("sweep-error"), "");
  return !sweep.finished;
}

async function main() {
  await ensureSignedIn();
  try {
    if (!(await load())) return;
  } catch (error) {
    showError($("sweep-error"), error.message);
    return;
  }
  const reload = debounce(() => load().catch((error) => showError($("sweep-error"), error.message)), 300);
  follow("/events", onJobChanges(() => current, reload), { poll: load });
}

main().catch((error) => showError($("sweep-error"), error.message));
