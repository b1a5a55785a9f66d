// Jobs side by side: one line per job of the chosen metric over the epochs, labelled by what sets the jobs
// apart (GET /compare's `label`), and a table of the same.

import { LineChart, align, lineStyle } from "./charts.js";
import { fill, h } from "./dom.js";
import { percent } from "./format.js";

const METRICS = {
  test_accuracy: { name: "Test accuracy", axis: "test accuracy (%)", scale: 100, range: [0, 100] },
  test_loss: { name: "Test loss", axis: "test loss (NLL)", scale: 1 },
  train_loss: { name: "Train loss", axis: "train loss (NLL, epoch mean)", scale: 1 },
};

const legendLabel = (job) => (job.label === `job ${job.id}` ? job.label : `${job.label} (job ${job.id})`);

export class Comparison {
  /** Draws into `container`; `update(comparison)` with GET /compare's answer (re)draws. */
  constructor(container) {
    this.container = container;
    this.metric = "test_accuracy";
    this.comparison = null;
    this.chart = null;
    this.chartKey = null;
    const select = h(
      "select",
      { id: "metric" },
      Object.entries(METRICS).map(([value, m]) => h("option", { value }, m.name)),
    );
    select.addEventListener("change", () => {
      this.metric = select.value;
      this.draw();
    });
    this.chartSlot = h("div", { class: "chart wide" });
    this.table = h("div", { class: "table-wrap" });
    fill(
      container,
      h("div", { class: "toolbar" }, h("label", { for: "metric" }, "Metric"), select),
      h("p", { class: "muted", id: "shared" }),
      this.chartSlot,
      this.table,
    );
  }

  update(comparison) {
    this.comparison = comparison;
    this.draw();
    this.renderTable();
  }

  draw() {
    const jobs = this.comparison.jobs;
    const metric = METRICS[this.metric];
    // A new chart when the lines or the metric change; otherwise new points go into the one drawn, keeping zoom.
    const key = JSON.stringify([this.metric, jobs.map((j) => [j.id, j.label])]);
    if (key !== this.chartKey) {
      this.chartKey = key;
      if (this.chart) this.chart.plot.destroy();
      this.chartSlot.replaceChildren();
      this.chart = new LineChart(this.chartSlot, {
        title: `${metric.name} per epoch`,
        x: { label: "epoch" },
        y: { label: metric.axis, range: metric.range },
        series: jobs.map((job, i) => ({ label: legendLabel(job), ...lineStyle(i) })),
      });
    }
    this.chart.update(align(jobs.map((job) => job.epochs.map((e) => [e.epoch, e[this.metric] * metric.scale]))));
    const differing = this.comparison.differing;
    this.container.querySelector("#shared").textContent = differing.length
      ? `The jobs differ in: ${differing.join(", ")}.`
      : "The jobs have the same spec.";
  }

  renderTable() {
    const last = (job) => job.epochs[job.epochs.length - 1];
    fill(
      this.table,
      h(
        "table",
        {},
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["Job", "Label", "Status", "Epochs", "Test accuracy", "Test loss"].map((t) =>
              h("th", { scope: "col", class: t.startsWith("Test") || t === "Epochs" ? "num" : null }, t),
            ),
          ),
        ),
        h(
          "tbody",
          {},
          this.comparison.jobs.map((job) =>
            h(
              "tr",
              {},
              h("td", {}, h("a", { href: `/ui/jobs/${job.id}` }, job.name ? `${job.id} · ${job.name}` : String(job.id))),
              h("td", {}, job.label),
              h("td", {}, h("span", { class: `badge status-${job.status}` }, job.status)),
              h("td", { class: "num" }, String(job.epochs.length)),
              h("td", { class: "num" }, last(job) ? percent(last(job).test_accuracy) : "—"),
              h("td", { class: "num" }, last(job) ? last(job).test_loss.toFixed(3) : "—"),
            ),
          ),
        ),
      ),
    );
  }
}

/** Follow the jobs of a comparison: `reload()` whenever one of `ids()` changes status or finishes an epoch. */
export function onJobChanges(ids, reload) {
  const epochs = new Map();
  return {
    status: (data) => ids().has(data.job_id) && reload(),
    progress: (data) => {
      if (!ids().has(data.job_id)) return;
      const done = data.progress.epochs_completed;
      if (epochs.get(data.job_id) !== done) {
        epochs.set(data.job_id, done);
        reload();
      }
    },
  };
}
