// Building the page from data. Text always goes in as text nodes, never as markup, so a job named
// `<img onerror=…>` shows those characters and runs nothing.

/** An element: `h("a", {href: "/ui/", class: "brand"}, "text", childNode, …)`. `on…` attributes add listeners. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key in el && typeof value !== "string") el[key] = value; // properties: checked, value, disabled…
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

/** Append children: nodes as they are, anything else as text; arrays flattened, null skipped. */
export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace an element's content. */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** Text with `code` spans (the API's descriptions use Markdown backticks) as <code> elements. */
export function prose(text) {
  return String(text ?? "")
    .split("`")
    .map((part, i) => (i % 2 ? h("code", {}, part) : part));
}

/** Show `message` in an alert paragraph, or hide it when there is none. */
export function showError(el, message) {
  el.hidden = !message;
  el.textContent = message || "";
}

/** The one function call per `delay` ms that a burst of calls asks for (events come in bursts). */
export function debounce(fn, delay = 250) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), delay);
  };
}
