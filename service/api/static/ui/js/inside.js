// "Look inside": pick a test image (by number, at random, of a class, or one the network got wrong) or drop your own
// picture; see the prediction, where the network looked (Grad-CAM) and its activations layer by layer; click a
// feature map to see the test images that drive that filter hardest. Every picture opens at full size.

import { ApiError, api, pathId } from "./api.js";
import { fill, h } from "./dom.js";
import { ensureSignedIn } from "./signin.js";

const POLL_MS = 1000;

function full(src, alt, caption) {
  // A link around the picture: it opens at full size, by mouse or keyboard.
  return h(
    "figure",
    {},
    h("a", { href: src, target: "_blank", rel: "noopener", title: "Open at full size" }, h("img", { src, alt, decoding: "async" })),
    h("figcaption", {}, caption),
  );
}

function bars(predictions) {
  return h(
    "ol",
    { class: "bars", "aria-label": "Top-5 prediction" },
    predictions.map((p) => {
      const fill_ = h("div", { class: "fill" });
      fill_.style.width = `${(p.probability * 100).toFixed(1)}%`; // CSSOM, which the CSP allows
      return h(
        "li",
        {},
        h("span", { class: "name", title: p.class }, p.class),
        h("div", { class: "track", role: "presentation" }, fill_),
        h("span", { class: "num" }, `${(p.probability * 100).toFixed(1)} %`),
      );
    }),
  );
}

async function upload(path, file, fields = {}) {
  // Multipart, as `curl -F image=@…` sends it; the answer as JSON, or as a blob for a picture.
  const body = new FormData();
  body.append("image", file);
  for (const [k, v] of Object.entries(fields)) if (v !== null && v !== undefined && v !== "") body.append(k, v);
  const response = await fetch(path, { method: "POST", body, credentials: "same-origin" });
  if (!response.ok) {
    let error = { message: `${response.status} ${response.statusText}` };
    try {
      error = (await response.json()).error || error;
    } catch {
      // not JSON
    }
    throw new ApiError(response.status, error);
  }
  return path.endsWith(".png") ? URL.createObjectURL(await response.blob()) : response.json();
}

export class Inside {
  constructor(jobId, root) {
    this.base = `/jobs/${encodeURIComponent(jobId)}`;
    this.root = root;
    this.images = null; // GET /test-images
    this.chosen = null; // {index} or {file}
    this.asked = ""; // the class Grad-CAM explains; "" = the predicted one
    this.urls = []; // object URLs of pictures of an upload, released when replaced
    this.number = h("input", { type: "number", id: "inside-index", min: 0, step: 1, value: 0 });
    this.classPick = h("select", { id: "inside-class" }, h("option", { value: "" }, "any class"));
    this.file = h("input", { type: "file", id: "inside-file", accept: "image/png,image/jpeg" });
    this.status = h("p", { role: "status", class: "muted" });
    this.mistakes = h("div", { class: "mistakes" });
    this.result = h("div", { class: "inside-result" });
    this.filter = h("div", { class: "inside-filter", id: "inside-filter" });
    const show = h("button", { type: "button", onclick: () => this.pickIndex(Number(this.number.value)) }, "Show");
    const random = h("button", { type: "button", id: "inside-random", onclick: () => this.pickRandom() }, "Random test image");
    this.number.addEventListener("keydown", (e) => e.key === "Enter" && this.pickIndex(Number(this.number.value)));
    this.file.addEventListener("change", () => this.file.files[0] && this.pickFile(this.file.files[0]));
    const drop = h(
      "div",
      { class: "drop group" },
      h("label", { for: "inside-file" }, "Your own picture (PNG or JPEG), or drop one here:"),
      this.file,
    );
    for (const kind of ["dragenter", "dragover"]) drop.addEventListener(kind, (e) => (e.preventDefault(), drop.classList.add("over")));
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (e) => {
      e.preventDefault();
      drop.classList.remove("over");
      const file = e.dataTransfer.files[0];
      if (file) this.pickFile(file);
    });
    fill(
      root,
      h(
        "div",
        { class: "inside-pick" },
        h("span", { class: "group" }, h("label", { for: "inside-index" }, "Test image"), this.number, show),
        h("span", { class: "group" }, random, h("label", { for: "inside-class", class: "visually-hidden" }, "of class"), this.classPick),
        drop,
      ),
      this.mistakes,
      this.status,
      this.result,
      this.filter,
    );
  }

  /** Read the job's test images (count, classes, mistakes); call when the job has weights to look at. */
  async refresh() {
    try {
      this.images = await api(`${this.base}/test-images`);
    } catch (error) {
      this.say(error.message);
      return;
    }
    this.number.max = this.images.count - 1;
    fill(
      this.classPick,
      h("option", { value: "" }, "any class"),
      this.images.classes.map((name, k) => h("option", { value: String(k) }, name)),
    );
    const wrong = this.images.mistakes;
    fill(
      this.mistakes,
      wrong.length
        ? h(
            "details",
            {},
            h("summary", {}, `Test images epoch ${this.images.epoch} got wrong (${wrong.length} shown)`),
            h(
              "ul",
              {},
              wrong.map((m) =>
                h("li", {}, h("button", { type: "button", class: "link", onclick: () => this.pickIndex(m.test_index) }, `#${m.test_index}: ${m.true} → ${m.predicted}`)),
              ),
            ),
          )
        : null,
    );
    if (this.chosen === null) this.pickIndex(wrong.length ? wrong[0].test_index : 0);
  }

  say(text) {
    this.status.textContent = text;
  }

  pickRandom() {
    if (!this.images) return;
    const wanted = this.classPick.value;
    const pool = [...this.images.labels.keys()].filter((k) => wanted === "" || this.images.labels[k] === Number(wanted));
    if (pool.length) this.pickIndex(pool[Math.floor(Math.random() * pool.length)]);
  }

  pickIndex(index) {
    if (!Number.isInteger(index) || index < 0 || (this.images && index >= this.images.count)) {
      this.say(`Pick a test image from 0 to ${this.images ? this.images.count - 1 : "…"}.`);
      return;
    }
    this.number.value = String(index);
    this.chosen = { index };
    this.asked = "";
    this.show();
  }

  pickFile(file) {
    this.chosen = { file };
    this.asked = "";
    this.show();
  }

  async show() {
    const chosen = this.chosen;
    const what = chosen.file ? `your picture ${chosen.file.name}` : `test image ${chosen.index}`;
    this.say(`Looking inside the network at ${what}…`);
    fill(this.filter);
    this.urls.forEach((u) => URL.revokeObjectURL(u));
    this.urls = [];
    try {
      const klass = this.asked;
      let explained, activations, explainSrc, activationsSrc;
      if (chosen.file) {
        explained = await upload(`${this.base}/explain`, chosen.file, { class: klass });
        activations = await upload(`${this.base}/activations`, chosen.file);
        explainSrc = await upload(`${this.base}/explain.png`, chosen.file, { class: klass });
        activationsSrc = await upload(`${this.base}/activations.png`, chosen.file);
        this.urls.push(explainSrc, activationsSrc);
      } else {
        const query = `image=${chosen.index}${klass ? `&class=${encodeURIComponent(klass)}` : ""}`;
        explained = await api(`${this.base}/explain?${query}`);
        activations = await api(`${this.base}/activations?image=${chosen.index}`);
        explainSrc = `${this.base}/explain.png?${query}`;
        activationsSrc = `${this.base}/activations.png?image=${chosen.index}`;
      }
      if (chosen !== this.chosen) return; // another image was picked meanwhile
      this.render(explained, activations, explainSrc, activationsSrc, what);
      if (!this.images) this.refresh(); // the job had no weights when the page opened: the lists come now
    } catch (error) {
      if (chosen === this.chosen) this.say(error.message);
    }
  }

  render(explained, activations, explainSrc, activationsSrc, what) {
    const truth = explained.label ? ` (true class: ${explained.label})` : "";
    this.say(`${what}${truth}: ${explained.used.source === "weights" ? "trained weights" : "a checkpoint"}, epoch ${explained.used.epoch}.`);
    const explainFor = h("select", { id: "inside-explain-class" }, h("option", { value: "" }, "the predicted class"));
    for (const p of explained.predictions) explainFor.append(h("option", { value: p.class, selected: p.class === this.asked }, p.class));
    explainFor.addEventListener("change", () => {
      this.asked = explainFor.value;
      this.show();
    });
    const tiles = h("div", { class: "tiles" }, h("img", { src: activationsSrc, alt: `activations of ${what}, layer by layer`, decoding: "async" }));
    for (const layer of activations.layers) {
      for (const tile of layer.shown) {
        const [left, top, right, bottom] = tile.box;
        const button = h("button", {
          type: "button",
          class: "tile",
          "aria-label": `${layer.layer} channel ${tile.channel}: its strongest test images`,
          title: `${layer.layer} channel ${tile.channel} (mean ${tile.mean.toFixed(3)}): its strongest test images`,
          onclick: () => this.showFilter(layer.layer, tile.channel),
        });
        Object.assign(button.style, {
          left: `${left * 100}%`,
          top: `${top * 100}%`,
          width: `${(right - left) * 100}%`,
          height: `${(bottom - top) * 100}%`,
        });
        tiles.append(button);
      }
    }
    fill(
      this.result,
      h(
        "div",
        { class: "inside-top" },
        h("div", {}, h("h3", {}, "Prediction"), bars(explained.predictions), h("p", {}, h("label", { for: "inside-explain-class" }, "Grad-CAM for "), explainFor)),
        full(explainSrc, `where the network looked in ${what} for ${explained.class_name}`, `Where it looked for “${explained.class_name}”: Grad-CAM at conv5, and gradient saliency`),
      ),
      h(
        "figure",
        {},
        tiles,
        h("figcaption", {}, "Activations per layer: click a feature map (or Tab to it and press Enter) for the test images that drive that filter hardest. ", h("a", { href: activationsSrc, target: "_blank", rel: "noopener" }, "Open at full size")),
      ),
    );
  }

  async showFilter(layer, channel) {
    const heading = h("h3", { tabindex: -1 }, `${layer}, channel ${channel}`);
    fill(this.filter, heading, h("p", { role: "status" }, "Finding the test images that drive it hardest…"));
    heading.focus();
    let found;
    for (;;) {
      const response = await fetch(`${this.base}/filters/${layer}/${channel}?wait=5`, { credentials: "same-origin" });
      const body = await response.json();
      if (response.status === 202) {
        const progress = h("progress", { max: body.total, value: body.done, "aria-label": "Test images looked at" });
        fill(this.filter, heading, h("p", { role: "status" }, progress, ` ${body.done} of ${body.total} test images looked at…`));
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
        continue;
      }
      if (!response.ok) {
        fill(this.filter, heading, h("p", { class: "error" }, body.error?.message || `HTTP ${response.status}`));
        return;
      }
      found = body;
      break;
    }
    const src = `${this.base}/filters/${layer}/${channel}.png`;
    fill(
      this.filter,
      heading,
      full(src, `the test images that drive ${layer} channel ${channel} hardest`, `The ${found.images.length} of ${found.images_looked_at} test images that drive ${layer} channel ${channel} hardest`),
      h("p", {}, "Look inside one of them:"),
      h(
        "ul",
        {},
        found.images.map((im) => h("li", {}, h("button", { type: "button", class: "link", onclick: () => this.pickIndex(im.test_index) }, `#${im.test_index} (${im.label}, ${im.activation.toFixed(3)})`))),
      ),
      h("p", {}, h("a", { href: `${this.base}/filters/${layer}.png`, target: "_blank", rel: "noopener" }, `All of ${layer}: the first 32 channels' strongest images`)),
    );
  }
}

// The job page's section, started on its own: the page's other scripts know nothing of it.
const section = document.getElementById("inside");
if (section) {
  const inside = new Inside(pathId(), section.querySelector("#inside-body"));
  // Only a job with weights to look at (a finished epoch's checkpoint, or weights.pt) is asked for its test images:
  // before that the answer is a 409 the browser would log. Picking an image later asks again.
  ensureSignedIn()
    .then(() => api(`/jobs/${encodeURIComponent(pathId())}`))
    .then((job) => (job.status === "succeeded" || job.progress.epochs_completed > 0 ? inside.refresh() : inside.say("Nothing to look inside yet: the job has no trained weights.")))
    .catch((error) => inside.say(error.message));
}
