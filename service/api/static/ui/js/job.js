// One job: its status and progress, live curves, pictures by epoch, the log, the spec and its files.

import { api, pathId } from "./api.js";
import { LineChart, PALETTE, align } from "./charts.js";
import { debounce, fill, h, showError } from "./dom.js";
import { follow } from "./events.js";
import { Downloads } from "./downloads.js";
import { FINISHED, bytes, duration, number, percent, progressText, when } from "./format.js";
import { LogView } from "./log.js";
import { Pictures } from "./pictures.js";
import { ensureSignedIn, mayChange } from "./signin.js";

const LOG_TAIL = 200;
const id = pathId();
const base = `/jobs/${encodeURIComponent(id)}`;
const $ = (name) => document.getElementById(name);
const state = {
  job: null,
  epochs: new Map(),
  steps: { points: [], steps_total: null },
  files: [],
  checkpoint: null, // what a resume or a continue goes on from, as GET …/artifacts lists it
};

const epochLabel = (v) => (Number.isInteger(v) ? String(v) : String(Math.round(v * 100) / 100));
const loss = new LineChart($("loss-chart"), {
  title: "Loss",
  x: { label: "epoch", format: epochLabel, fractions: true },
  y: { label: "loss (NLL)" },
  series: [
    { label: "train, per step", color: "#9fb7d4", width: 1, points: false },
    { label: "train, epoch mean", color: PALETTE[0] },
    { label: "test", color: PALETTE[1] },
  ],
});
const accuracy = new LineChart($("accuracy-chart"), {
  title: "Test accuracy",
  x: { label: "epoch", format: epochLabel },
  y: { label: "test accuracy (%)", range: [0, 100], format: (v) => `${Math.round(v * 10) / 10}` },
  series: [{ label: "test accuracy", color: PALETTE[4] }],
});
const downloads = new Downloads($("files"), id);
const pictures = new Pictures(id, $("picture-controls"), $("pictures"), $("weight-change"), {
  onShow: (shown) => downloads.setEpoch(shown),
});
const log = new LogView($("log"), $("follow-log"));

// ---------------------------------------------------------------- the job itself

function fact(term, ...value) {
  return [h("dt", {}, term), h("dd", {}, ...value)];
}

function renderJob() {
  const job = state.job;
  const title = job.name ? `Job ${job.id} · ${job.name}` : `Job ${job.id}`;
  $("job-title").textContent = title;
  document.title = `${title} · alexnet-jobs`;
  const p = job.progress;
  fill(
    $("job-summary"),
    fact(
      "Status",
      // Asked to stop, it still runs for a few seconds, until the worker's next heartbeat hears of it.
      job.cancel_requested && !FINISHED.has(job.status)
        ? h("span", { class: "badge status-cancelling" }, "cancelling…")
        : h("span", { class: `badge status-${job.status}` }, job.status),
    ),
    fact(
      "Progress",
      h("progress", { max: 1, value: p.fraction, "aria-label": "Progress" }),
      ` ${percent(p.fraction, 0)} · ${progressText(job)}`,
      p.steps_total ? ` · step ${p.steps_done}/${p.steps_total}` : "",
    ),
    fact("Owner", job.owner || "—"),
    fact("Device", job.device || "—"),
    fact("Created", when(job.created_at)),
    job.started_at ? fact("Started", when(job.started_at)) : [],
    job.finished_at ? fact("Finished", when(job.finished_at)) : [],
    job.started_at && job.finished_at
      ? fact("Took", duration((Date.parse(job.finished_at) - Date.parse(job.started_at)) / 1000))
      : [],
    fact("Attempts", String(job.attempts)),
    job.sweep_id ? fact("Sweep", h("a", { href: `/ui/sweeps/${job.sweep_id}` }, `sweep ${job.sweep_id}`)) : [],
    job.waiting_for ? fact("Waiting for", job.waiting_for) : [],
    job.error ? fact("Error", h("span", { class: "error-text" }, job.error)) : [],
    state.checkpoint && FINISHED.has(job.status) ? fact("Checkpoint", checkpointText(state.checkpoint)) : [],
  );
  // Offered only to whoever may use them (the job's owner, an admin); the API checks again.
  const allowed = mayChange(job);
  $("cancel").hidden = !allowed;
  $("rerun").hidden = !allowed;
  $("delete").hidden = !allowed || !FINISHED.has(job.status);
  $("cancel").disabled = FINISHED.has(job.status) || job.cancel_requested;
  // Resume a stopped job, continue a succeeded one: only from a checkpoint it kept.
  const stopped = job.status === "cancelled" || job.status === "failed";
  $("resume").hidden = !stopped;
  $("resume").disabled = !state.checkpoint;
  $("resume").title = state.checkpoint ? "" : "It stopped before its first epoch ended: there is no checkpoint.";
  $("continue-box").hidden = job.status !== "succeeded";
  $("continue").disabled = !state.checkpoint;
  fill(
    $("spec"),
    Object.entries(job.spec).map(([key, value]) => fact(key, value === null ? "—" : String(value))),
  );
}

function checkpointText(c) {
  const where = c.step ? `epoch ${c.epoch} and ${c.step} steps` : `epoch ${c.epoch}`;
  return `after ${where} · ${bytes(c.size)}`;
}

async function loadJob() {
  state.job = await api(base);
  renderJob();
}

// ---------------------------------------------------------------- curves

function renderCurves() {
  const epochs = [...state.epochs.values()].sort((a, b) => a.epoch - b.epoch);
  const { points, steps_total: stepsTotal } = state.steps;
  const perEpoch = stepsTotal ? stepsTotal / state.job.progress.epochs_total : null;
  // Steps on the epoch axis: step s of an epoch of n steps is at epoch s / n, so both lines share one axis.
  const steps = perEpoch ? points.map((p) => [p.step / perEpoch, p.train_loss]) : [];
  loss.update(
    align([steps, epochs.map((e) => [e.epoch, e.train_loss]), epochs.map((e) => [e.epoch, e.test_loss])]),
  );
  accuracy.update(align([epochs.map((e) => [e.epoch, e.test_accuracy * 100])]));
  // The newest numbers in words: what a glance at the charts tells, for a screen reader too.
  const last = epochs[epochs.length - 1];
  $("latest-epoch").textContent = last
    ? `Epoch ${last.epoch} of ${state.job.progress.epochs_total}: train loss ${number(last.train_loss)}, ` +
      `test loss ${number(last.test_loss)}, test accuracy ${percent(last.test_accuracy)}.`
    : FINISHED.has(state.job.status)
      ? `No epoch finished: the job ${state.job.status === "cancelled" ? "was cancelled" : state.job.status} before its first epoch ended.`
      : "No epoch has finished yet.";
}

async function loadMetrics() {
  const metrics = await api(`${base}/metrics`);
  state.epochs = new Map(metrics.epochs.map((e) => [e.epoch, e]));
  renderCurves();
}

async function loadSteps() {
  state.steps = await api(`${base}/metrics/steps`);
  renderCurves();
}

// ---------------------------------------------------------------- pictures, files and the log

async function loadFiles() {
  const listing = await api(`${base}/artifacts`);
  state.files = listing.artifacts;
  state.checkpoint = listing.checkpoint;
  renderJob();
  downloads.setFiles(state.files);
  await pictures.refresh(state.epochs.keys(), state.files);
}

async function loadLog() {
  try {
    const text = await api(`${base}/logs?tail=${LOG_TAIL}`);
    log.reset(String(text).split("\n").filter((line) => line !== ""));
  } catch {
    log.reset(null);
  }
}

// ---------------------------------------------------------------- actions

function say(text) {
  $("action-message").textContent = text;
}

$("cancel").addEventListener("click", async () => {
  try {
    state.job = await api(`${base}/cancel`, { method: "POST" });
    renderJob();
    say(state.job.status === "cancelled" ? "Cancelled." : "Cancelling…: it stops within seconds.");
  } catch (error) {
    say(error.message);
  }
});

$("delete").addEventListener("click", async () => {
  if (!confirm(`Delete job ${state.job.id} with its metrics and every file it wrote?`)) return;
  try {
    await api(base, { method: "DELETE" });
    location.assign("/ui/");
  } catch (error) {
    say(error.message);
  }
});

// Back to the queue as the same job: the page follows it from the start again.
async function requeue(path, body) {
  try {
    await api(`${base}/${path}`, { method: "POST", body });
    location.reload();
  } catch (error) {
    say(error.message);
  }
}

$("resume").addEventListener("click", () => requeue("resume"));
$("continue").addEventListener("click", () =>
  requeue("continue", { epochs: Number($("continue-epochs").value) }),
);

$("rerun").addEventListener("click", async () => {
  try {
    const job = await api(`${base}/rerun`, { method: "POST", body: {} });
    location.assign(`/ui/jobs/${job.id}`);
  } catch (error) {
    say(error.message);
  }
});

// ---------------------------------------------------------------- live

async function refreshAll() {
  await loadJob();
  await Promise.all([loadMetrics(), loadSteps(), loadLog()]);
  await loadFiles();
  return !FINISHED.has(state.job.status);
}

const jobSoon = debounce(() => loadJob().catch(() => {}), 200);
const stepsSoon = debounce(() => loadSteps().catch(() => {}), 300);
const filesSoon = debounce(() => loadFiles().catch(() => {}), 300);

const handlers = {
  status: jobSoon,
  progress: (data) => {
    // The stream replays the job's history first: an older report must not move the bar back.
    const seen = Date.parse(state.job.progress.updated_at || "") || 0;
    if ((Date.parse(data.progress.updated_at || "") || 0) < seen) return;
    state.job.progress = data.progress;
    renderJob();
  },
  epoch: (data) => {
    state.epochs.set(data.epoch, data);
    renderCurves();
    stepsSoon();
    filesSoon();
  },
  artifact: filesSoon,
  log: (data) => log.add(data.line),
  end: () => {
    jobSoon();
    filesSoon();
    stepsSoon();
  },
};

async function main() {
  await ensureSignedIn();
  try {
    await loadJob();
  } catch (error) {
    showError($("job-error"), error.message);
    return;
  }
  // The stream opens before the rest is read, so nothing that happens meanwhile is missed; it starts with the
  // job's history, and epochs are kept by number, so nothing shows twice either.
  follow(`${base}/events`, handlers, { poll: refreshAll, onMode: (mode) => mode === "polling" && log.detach() });
  await Promise.all([loadMetrics(), loadSteps(), loadLog()]);
  await loadFiles();
}

main().catch((error) => showError($("job-error"), error.message));
