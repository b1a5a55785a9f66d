// The submit form, built from the API's own OpenAPI document: every JobSpec field with its description,
// default, bounds and choices, and the documented examples to start from. The API is the one validator (the
// form is `novalidate`): its 422 messages are shown beside the fields they name.

import { api, ApiError } from "./api.js";
import { append, fill, h, prose, showError } from "./dom.js";
import { duration } from "./format.js";

/** What POST /jobs expects the job to take, and its warning (a long job, no worker), as text to append. */
function estimateText(job) {
  const e = job.estimate;
  if (!e) return [];
  const time = e.seconds === null ? "" : ` It should train in about ${duration(e.seconds)} (from ${e.basis}).`;
  const warning = e.warning ? h("strong", { class: "estimate-warning" }, ` Note: ${e.warning}.`) : "";
  return [time, warning];
}

/** A property's schema with `$ref`s followed and a nullable `anyOf` unwrapped: {schema, nullable}. */
function describe(openapi, prop) {
  const resolve = (s) => (s && s.$ref ? openapi.components.schemas[s.$ref.split("/").pop()] : s);
  const variants = (prop.anyOf || [prop]).map(resolve);
  const value = variants.find((v) => v.type !== "null") || {};
  return { schema: { ...value, ...prop, anyOf: undefined }, nullable: variants.some((v) => v.type === "null") };
}

function sentenceCase(title) {
  const text = title.toLowerCase();
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function bounds(schema) {
  const parts = [];
  const big = (n) => n >= Number.MAX_SAFE_INTEGER; // a bound no one types: not worth reading
  if (schema.minimum !== undefined && schema.maximum !== undefined && !big(schema.maximum)) {
    parts.push(`${schema.minimum}–${schema.maximum}`);
  } else {
    if (schema.minimum !== undefined) parts.push(`≥ ${schema.minimum}`);
    if (schema.exclusiveMinimum !== undefined) parts.push(`> ${schema.exclusiveMinimum}`);
    if (schema.maximum !== undefined && !big(schema.maximum)) parts.push(`≤ ${schema.maximum}`);
  }
  if (schema.maxLength !== undefined) parts.push(`up to ${schema.maxLength} characters`);
  return parts.join(", ");
}

function control(name, schema, nullable, id, describedBy) {
  const common = { id, name, "aria-describedby": describedBy };
  if (schema.enum) {
    const options = schema.enum.map((v) => h("option", { value: String(v) }, String(v)));
    if (nullable) options.unshift(h("option", { value: "" }, "—"));
    return h("select", common, options);
  }
  if (schema.type === "integer" || schema.type === "number") {
    return h("input", {
      ...common,
      type: "number",
      inputmode: schema.type === "integer" ? "numeric" : "decimal",
      step: schema.type === "integer" ? "1" : "any",
      min: schema.minimum ?? schema.exclusiveMinimum,
      max: schema.maximum !== undefined && schema.maximum < Number.MAX_SAFE_INTEGER ? schema.maximum : undefined,
    });
  }
  return h("input", { ...common, type: "text", maxlength: schema.maxLength, autocomplete: "off" });
}

const valueKey = (value) => JSON.stringify(Object.entries(value || {}).sort());

/** The examples POST /jobs documents and the schema's own, each once: [{key, summary, value}]. */
function examples(openapi, spec) {
  const content = openapi.paths["/jobs"]?.post?.requestBody?.content?.["application/json"] || {};
  const found = Object.entries(content.examples || {}).map(([key, e]) => ({ key, summary: e.summary, value: e.value }));
  (spec.examples || []).forEach((value, i) => found.push({ key: `schema example ${i + 1}`, summary: "", value }));
  const seen = new Set();
  return found.filter((e) => !seen.has(valueKey(e.value)) && seen.add(valueKey(e.value)));
}

export function buildForm(form, openapi, { onCreated }) {
  const spec = openapi.components.schemas.JobSpec;
  const names = Object.keys(spec.properties).sort((a, b) => (a === "name" ? -1 : b === "name" ? 1 : 0));
  const fields = new Map();

  const rows = names.map((name) => {
    const { schema, nullable } = describe(openapi, spec.properties[name]);
    const id = `spec-${name}`;
    const hint = [bounds(schema), schema.default !== undefined ? `default ${schema.default}` : "optional"]
      .filter(Boolean)
      .join(" · ");
    const input = control(name, schema, nullable, id, `${id}-hint ${id}-error`);
    const error = h("p", { class: "field-error", id: `${id}-error`, hidden: true });
    fields.set(name, { input, error, schema, nullable });
    return h(
      "div",
      { class: "field" },
      h("label", { for: id }, sentenceCase(schema.title || name)),
      input,
      h("p", { class: "hint", id: `${id}-hint` }, prose(schema.description), schema.description ? " " : "", h("span", { class: "bounds" }, hint)),
      error,
    );
  });

  const reset = () => {
    for (const { input, schema } of fields.values()) input.value = schema.default ?? "";
  };
  // Each documented example once, "every default" among them; the form starts from the schema's own example, the
  // quick demo, which trains in minutes anywhere (the defaults are hours of CIFAR-10, which may not be there).
  const choices = examples(openapi, spec);
  const first = Math.max(0, choices.findIndex((e) => valueKey(e.value) === valueKey(spec.examples?.[0])));
  const exampleHint = h("p", { class: "hint", id: "example-hint" });
  const exampleSelect = h(
    "select",
    { id: "spec-example", "aria-describedby": "example-hint" },
    choices.map((e, i) => h("option", { value: String(i) }, e.key)),
  );
  const startFrom = () => {
    reset();
    const chosen = choices[Number(exampleSelect.value)];
    exampleHint.textContent = chosen ? chosen.summary : "";
    for (const [name, value] of Object.entries(chosen?.value || {})) {
      if (fields.has(name)) fields.get(name).input.value = value ?? "";
    }
  };
  exampleSelect.addEventListener("change", startFrom);

  const formError = h("div", { class: "error", role: "alert", hidden: true });
  const message = h("p", { role: "status", class: "ok" });
  const submit = h("button", { type: "submit", class: "primary" }, "Queue job");
  const again = h("button", { type: "button", title: "Every field as the chosen starting point has it" }, "Reset");
  again.addEventListener("click", () => {
    startFrom();
    clearErrors();
  });

  function clearErrors() {
    showError(formError, "");
    for (const { input, error } of fields.values()) {
      input.removeAttribute("aria-invalid");
      showError(error, "");
    }
  }

  function body() {
    const out = {};
    const local = [];
    for (const [name, { input, schema }] of fields) {
      const raw = input.value.trim();
      if (input.validity && input.validity.badInput) local.push([name, "Enter a number"]);
      if (raw === "") continue; // left empty: the API's default
      out[name] = schema.type === "integer" || schema.type === "number" ? Number(raw) : raw;
    }
    return { out, local };
  }

  function showFieldErrors(problems) {
    const loose = [];
    let first = null;
    for (const [name, text] of problems) {
      const field = fields.get(name);
      if (!field) {
        loose.push(text);
        continue;
      }
      field.input.setAttribute("aria-invalid", "true");
      field.error.hidden = false;
      field.error.textContent = field.error.textContent ? `${field.error.textContent}; ${text}` : text;
      first = first || field.input;
    }
    if (loose.length) {
      formError.hidden = false;
      append(formError, [h("ul", {}, loose.map((t) => h("li", {}, t)))]);
    }
    if (first) first.focus();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors();
    message.textContent = "";
    const { out, local } = body();
    if (local.length) return showFieldErrors(local);
    submit.disabled = true;
    try {
      const job = await api("/jobs", { method: "POST", body: out });
      fill(message, "Queued ", h("a", { href: `/ui/jobs/${job.id}` }, `job ${job.id}`), ".", ...estimateText(job));
      onCreated(job);
    } catch (error) {
      if (error instanceof ApiError && error.details) {
        showError(formError, error.message);
        showFieldErrors(
          error.details.map((d) => [(d.loc || []).find((part) => fields.has(part)), d.msg || error.message]),
        );
      } else {
        showError(formError, error.message);
      }
    } finally {
      submit.disabled = false;
    }
  });

  exampleSelect.value = String(first);
  startFrom();
  fill(
    form,
    h("div", { class: "field" }, h("label", { for: "spec-example" }, "Start from"), exampleSelect, exampleHint),
    formError,
    h("div", { class: "fields" }, rows),
    h("div", { class: "actions" }, submit, again),
    message,
  );
}
