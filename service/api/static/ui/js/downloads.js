// A job's downloads: the pictures of the epoch the slider shows (drawn by the API for any epoch), then every file
// the job published, as its latest epoch left them, and the kernel numbers of each epoch.

import { fill, h } from "./dom.js";
import { bytes } from "./format.js";

const STAGE_WORDS = { trained: "trained", diff: "change since initial", initial: "initial" };

/** The pictures (and the confusion counts) there are of `epoch`: [{name, url, what}], `name` to save them as. */
export function epochFiles(jobId, { epoch, tested, hasInitial }) {
  const base = `/jobs/${jobId}`;
  const files = [];
  for (const layer of ["conv1", "conv2"]) {
    for (const stage of ["trained", "diff"]) {
      files.push({
        name: `${layer}-${stage}-epoch${epoch}.png`,
        url: `${base}/kernels/${layer}/${stage}.png?epoch=${epoch}`,
        what: `${layer} kernels, ${STAGE_WORDS[stage]}`,
      });
    }
    if (hasInitial.has(layer)) {
      files.push({ name: `${layer}-initial.png`, url: `${base}/kernels/${layer}/initial.png`, what: `${layer} kernels, initial` });
    }
  }
  if (tested) {
    files.push(
      { name: `confusion-epoch${epoch}.png`, url: `${base}/confusion.png?epoch=${epoch}`, what: "confusion matrix" },
      { name: `confusion-epoch${epoch}.json`, url: `${base}/confusion?epoch=${epoch}`, what: "confusion counts (JSON)" },
      { name: `mistakes-epoch${epoch}.png`, url: `${base}/mistakes.png?epoch=${epoch}`, what: "misclassified test images" },
    );
  }
  return files;
}

function table(head, rows) {
  return h(
    "table",
    { class: "files" },
    h("thead", {}, h("tr", {}, head.map((text) => h("th", { scope: "col", class: text === "Size" ? "num" : null }, text)))),
    h("tbody", {}, rows),
  );
}

export class Downloads {
  constructor(slot, jobId) {
    this.slot = slot;
    this.jobId = jobId;
    this.files = [];
    this.shown = null; // what the pictures show: {epoch, tested, hasInitial}
  }

  /** The job's published files (GET /jobs/{id}/artifacts). */
  setFiles(files) {
    this.files = files;
    this.render();
  }

  /** The epoch the pictures show, or null before there is one. */
  setEpoch(shown) {
    this.shown = shown;
    this.render();
  }

  render() {
    const base = `/jobs/${encodeURIComponent(this.jobId)}`;
    const latest = this.files.filter((f) => !f.name.startsWith("history/"));
    const history = this.files.filter((f) => f.name.startsWith("history/"));
    const link = (file) =>
      h("tr", {}, h("td", {}, h("a", { href: file.url }, file.name)), h("td", { class: "num" }, bytes(file.size)));
    const shown = this.shown;
    const atEpoch = shown ? epochFiles(this.jobId, shown) : [];
    const heading = shown && (shown.epoch === 0 ? "At initialisation (epoch 0)" : `After epoch ${shown.epoch}`);
    fill(
      this.slot,
      h("p", {}, h("a", { href: `${base}/metrics?format=csv` }, "Metrics per epoch (CSV)")),
      atEpoch.length
        ? h(
            "section",
            { class: "epoch-files", "aria-label": "Files of the epoch the slider shows" },
            h("h3", {}, `${heading}, as the slider shows`),
            table(
              ["File", "What"],
              atEpoch.map((f) =>
                h("tr", {}, h("td", {}, h("a", { href: f.url, download: f.name }, f.name)), h("td", {}, f.what)),
              ),
            ),
          )
        : null,
      h("h3", {}, "Every file, as the latest epoch left it"),
      latest.length ? table(["File", "Size"], latest.map(link)) : h("p", { class: "muted" }, "No files yet."),
      history.length
        ? h(
            "details",
            {},
            h("summary", {}, `Kernel numbers per epoch (${history.length} file${history.length === 1 ? "" : "s"})`),
            table(["File", "Size"], history.map(link)),
          )
        : null,
    );
  }
}
