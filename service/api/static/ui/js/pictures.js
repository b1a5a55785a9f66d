// A job's pictures at one epoch: conv1 and conv2 kernels (initial, trained or their difference), the confusion
// matrix and the test images it got wrong; and the weight change over all epochs. One slider picks the epoch.
// Only pictures the API has the numbers for are asked for, so that no image is a broken link. Every picture is a
// link to its PNG that opens it at full size (lightbox.js); the test images and the confusion matrix get a row
// each, where their labels and counts keep their own size.

import { api } from "./api.js";
import { fill, h } from "./dom.js";
import { pictureLink } from "./lightbox.js";

const STAGES = [
  ["trained", "trained"],
  ["diff", "change since initial"],
  ["initial", "initial"],
];

function figure(src, alt, caption, { wide = false } = {}) {
  const img = h("img", { src, alt, loading: "lazy", decoding: "async" });
  const link = pictureLink(src, alt, caption, img, h("span", { class: "visually-hidden" }, " (open at full size)"));
  const fig = h("figure", { class: wide ? "wide" : null }, link, h("figcaption", {}, caption));
  img.addEventListener("error", () => fill(fig, h("p", { class: "muted" }, `${alt}: could not be drawn.`)));
  return fig;
}

function placeholder(caption, text) {
  return h("figure", { class: "placeholder" }, h("p", { class: "muted" }, text), h("figcaption", {}, caption));
}

export class Pictures {
  /** `onShow({epoch, tested, hasInitial})` hears which epoch's pictures are shown, each time that changes. */
  constructor(jobId, controls, grid, weightSlot, { onShow = () => {} } = {}) {
    this.jobId = jobId;
    this.onShow = onShow;
    this.grid = grid;
    this.weightSlot = weightSlot;
    this.epochs = []; // epochs with kernel numbers (0: the initialisation)
    this.hasInitial = new Set();
    this.evaluated = new Set(); // epochs with a test evaluation (confusion, mistakes)
    this.stage = "trained";
    this.index = -1;

    this.slider = h("input", { type: "range", id: "epoch-slider", min: 0, max: 0, step: 1, value: 0, disabled: true });
    this.output = h("output", { for: "epoch-slider", id: "epoch-value" });
    this.slider.addEventListener("input", () => {
      this.index = Number(this.slider.value);
      this.render();
    });
    const radios = STAGES.map(([value, label]) => {
      const id = `stage-${value}`;
      const input = h("input", { type: "radio", name: "stage", id, value, checked: value === this.stage });
      input.addEventListener("change", () => {
        this.stage = value;
        this.render();
      });
      return h("span", { class: "choice" }, input, h("label", { for: id }, label));
    });
    fill(
      controls,
      h("label", { for: "epoch-slider" }, "Epoch"),
      this.slider,
      this.output,
      h("fieldset", { class: "stages" }, h("legend", {}, "Kernels shown"), radios),
    );
  }

  get epoch() {
    return this.epochs[this.index];
  }

  /** Read which epochs have pictures; `evaluated`: the epochs GET /metrics lists; `files`: the artifact list. */
  async refresh(evaluated, files) {
    const kernels = await api(`/jobs/${this.jobId}/kernels`);
    const atEnd = this.index === this.epochs.length - 1; // following the newest epoch: keep following it
    this.epochs = kernels.epochs;
    this.hasInitial = new Set(kernels.kernels.filter((k) => k.stage === "initial").map((k) => k.layer));
    this.evaluated = new Set(evaluated);
    if (atEnd || this.index >= this.epochs.length) this.index = this.epochs.length - 1;
    this.slider.max = Math.max(0, this.epochs.length - 1);
    this.slider.value = Math.max(0, this.index);
    this.slider.disabled = this.epochs.length < 2;
    this.render();
    this.renderWeights(files.find((f) => f.name === "weight-change.png"));
  }

  kernelPicture(layer) {
    const caption = `${layer} kernels`;
    if (this.stage === "initial") {
      if (!this.hasInitial.has(layer)) return placeholder(caption, "Drawn once training starts.");
      return figure(`/jobs/${this.jobId}/kernels/${layer}/initial.png`, `${layer} kernels before training`, `${caption}, before training`);
    }
    const epoch = this.epoch;
    const what = this.stage === "diff" ? "change since initial" : "trained";
    const when = epoch === 0 ? "at initialisation (epoch 0)" : `after epoch ${epoch}`;
    return figure(
      `/jobs/${this.jobId}/kernels/${layer}/${this.stage}.png?epoch=${epoch}`,
      `${layer} kernels, ${what}, ${when}`,
      `${caption}, ${what}, ${when}`,
    );
  }

  render() {
    const epoch = this.epoch;
    if (epoch === undefined) {
      this.shown = null;
      this.output.textContent = "—";
      fill(this.grid, h("p", { class: "muted" }, "Pictures appear once training starts."));
      this.onShow(null);
      return;
    }
    this.output.textContent = epoch === 0 ? "0 (before training)" : `${epoch} of ${this.epochs[this.epochs.length - 1]}`;
    this.slider.setAttribute("aria-valuetext", `epoch ${epoch}`);
    const tested = this.evaluated.has(epoch);
    // Redrawn only when what is shown changes: a refresh after each event must not reload every picture.
    const key = JSON.stringify([epoch, this.stage, tested, [...this.hasInitial]]);
    if (key === this.shown) return;
    this.shown = key;
    const none = epoch === 0 ? "Epoch 0 is before training: nothing was tested yet." : "Not evaluated yet.";
    fill(
      this.grid,
      this.kernelPicture("conv1"),
      this.kernelPicture("conv2"),
      tested
        ? figure(`/jobs/${this.jobId}/confusion.png?epoch=${epoch}`, `confusion matrix after epoch ${epoch}`, `Confusion matrix, epoch ${epoch}`, { wide: true })
        : placeholder("Confusion matrix", none),
      tested
        ? figure(`/jobs/${this.jobId}/mistakes.png?epoch=${epoch}`, `misclassified test images after epoch ${epoch}`, `Mistakes (true → predicted), epoch ${epoch}`, { wide: true })
        : placeholder("Mistakes", none),
    );
    this.onShow({ epoch, tested, hasInitial: this.hasInitial });
  }

  renderWeights(file) {
    if (!file) {
      fill(this.weightSlot, h("p", { class: "muted" }, "Drawn after the first epoch."));
      return;
    }
    // The file is redrawn after each epoch under the same URL: its time in the query makes each version its own.
    const src = `/jobs/${this.jobId}/weight-change.png?v=${encodeURIComponent(file.updated_at)}`;
    if (this.weightSlot.querySelector("img")?.getAttribute("src") === src) return;
    fill(this.weightSlot, figure(src, "how far each layer's weights moved, per epoch", "Relative weight change per layer"));
  }
}
