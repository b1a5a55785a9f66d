// Signing in when the service asks who you are: your token is posted once to /session, which answers with an
// HttpOnly cookie for this sign-in alone. It never goes into a URL, storage or a script-readable cookie.

import { h, showError } from "./dom.js";

let pending = null;
let sessionInfo = null;

async function readSession() {
  try {
    const response = await fetch("/session", { credentials: "same-origin", headers: { Accept: "application/json" } });
    return response.ok ? await response.json() : null;
  } catch {
    return null;
  }
}

function dialog() {
  const input = h("input", {
    id: "signin-token",
    type: "password",
    name: "token",
    autocomplete: "current-password",
    required: true,
  });
  const error = h("p", { class: "error", role: "alert", hidden: true });
  const submit = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h(
    "form",
    { class: "signin" },
    h("h2", { id: "signin-title" }, "Sign in"),
    h("p", {}, "This service needs your token (from whoever runs it), or the server's API_TOKEN."),
    h("label", { for: "signin-token" }, "Token"),
    input,
    error,
    submit,
  );
  const box = h("dialog", { "aria-labelledby": "signin-title" }, form);
  // Until signed in nothing on the page can load: Escape does not dismiss it.
  box.addEventListener("cancel", (event) => event.preventDefault());
  return { box, form, input, error, submit };
}

function ask() {
  return new Promise((resolve) => {
    const { box, form, input, error, submit } = dialog();
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      submit.disabled = true;
      showError(error, "");
      try {
        const response = await fetch("/session", {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": "application/json", Accept: "application/json" },
          body: JSON.stringify({ token: input.value }),
        });
        if (response.ok) {
          box.close();
          box.remove();
          sessionInfo = (await readSession()) || { signed_in: true, token_required: true };
          renderAccount();
          resolve();
          return;
        }
        showError(error, response.status === 401 ? "That token is not the right one." : `Sign-in failed (${response.status}).`);
      } catch {
        showError(error, "The service cannot be reached.");
      } finally {
        submit.disabled = false;
      }
      input.select();
    });
    document.body.append(box);
    box.showModal();
    input.focus();
  });
}

/** Show the sign-in form (once, however many requests were refused) and settle when the user has signed in. */
export function signIn() {
  if (!pending) pending = ask().finally(() => (pending = null));
  return pending;
}

/** Before the first request: sign in if the service needs it, so that the page never starts with refusals. */
export async function ensureSignedIn() {
  sessionInfo = await readSession();
  renderAccount();
  if (sessionInfo && sessionInfo.token_required && !sessionInfo.signed_in) await signIn();
}

/** Whether the one signed in may cancel, delete or rerun `job`: an admin any job, a member their own. */
export function mayChange(job) {
  if (!sessionInfo || !sessionInfo.role) return true; // an open service, or one that could not say: the API decides
  return sessionInfo.role === "admin" || (sessionInfo.role === "member" && job.owner === sessionInfo.name);
}

/** Whether the one signed in may submit at all (viewers only read). */
export function mayWrite() {
  return !sessionInfo || sessionInfo.role !== "viewer";
}

function renderAccount() {
  const slot = document.getElementById("account");
  if (!slot) return;
  slot.replaceChildren();
  if (!sessionInfo || !sessionInfo.token_required || !sessionInfo.signed_in) return;
  const who = h("span", { class: "who" }, "Signed in as ", h("strong", {}, sessionInfo.name || "?"));
  if (sessionInfo.role) who.append(` (${sessionInfo.role})`);
  slot.append(who, " ");
  const out = h("button", { type: "button", class: "link" }, "Sign out");
  out.addEventListener("click", async () => {
    await fetch("/session", { method: "DELETE", credentials: "same-origin" });
    sessionInfo = { ...sessionInfo, signed_in: false };
    renderAccount();
    await signIn();
    location.reload();
  });
  slot.append(out);
}
