// A picture at its full size. Each picture on a page is a link to its PNG, so it can be opened in a tab, saved or
// bookmarked; a plain click (or Enter on the focused link) shows it here instead, in a modal dialog at its own
// pixel size, scrolled where it is larger than the window. Escape, the Close button or a click beside the picture
// closes it, and the keyboard focus goes back to the link that opened it.

import { h } from "./dom.js";

let dialog = null;
let opener = null;

function build() {
  const image = h("img", { class: "lightbox-image", alt: "" });
  const title = h("p", { class: "lightbox-title", id: "lightbox-title" });
  const file = h("a", { class: "button", target: "_blank", rel: "noopener" }, "Open the PNG");
  const close = h("button", { type: "button", autofocus: true }, "Close");
  const box = h(
    "dialog",
    { class: "lightbox", "aria-labelledby": "lightbox-title" },
    h("div", { class: "lightbox-bar" }, title, file, close),
    h("div", { class: "lightbox-frame" }, image),
  );
  close.addEventListener("click", () => box.close());
  // A click on the backdrop lands on the dialog itself, not on anything inside it.
  box.addEventListener("click", (event) => event.target === box && box.close());
  box.addEventListener("close", () => {
    image.removeAttribute("src");
    opener?.focus();
    opener = null;
  });
  document.body.append(box);
  return { box, image, title, file };
}

/** Show `src` at full size, titled `caption`, with `alt` as its text; `from`: the element to refocus afterwards. */
export function showPicture(src, alt, caption, from) {
  dialog = dialog || build();
  opener = from || null;
  dialog.image.src = src;
  dialog.image.alt = alt;
  dialog.title.textContent = caption;
  dialog.file.href = src;
  dialog.box.showModal();
}

/** A link to the picture `src` holding `content`; a plain click opens the picture here rather than leaving. */
export function pictureLink(src, alt, caption, ...content) {
  const link = h("a", { href: src, class: "picture-link", title: "Open at full size" }, ...content);
  link.addEventListener("click", (event) => {
    // Ctrl-, Cmd-, Shift- and middle-clicks keep their usual meaning: a new tab or window.
    if (event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    showPicture(src, alt, caption, link);
  });
  return link;
}
