// The one way the pages talk to the API: same-origin fetches that carry the sign-in cookie, errors in the API's
// own shape, and a sign-in whenever the API answers 401.

import { signIn } from "./signin.js";

/** An error answer: `{"error": {"code", "message", "details"}}`, or what stood in for it. */
export class ApiError extends Error {
  constructor(status, error) {
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || "http_error";
    this.details = error.details || null;
  }
}

async function errorOf(response) {
  try {
    const body = await response.json();
    if (body && body.error) return new ApiError(response.status, body.error);
  } catch {
    // not JSON: a proxy's page, say; the status is all there is to tell
  }
  return new ApiError(response.status, { message: `${response.status} ${response.statusText}` });
}

/**
 * `method path` with an optional JSON `body`; the parsed JSON (text for text/plain, null for 204).
 * A 401 asks the user to sign in, then tries once more.
 */
export async function api(path, { method = "GET", body, signedIn = false } = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, { code: "unreachable", message: "the service cannot be reached; is it running?" });
  }
  if (response.status === 401 && !signedIn) {
    await signIn();
    return api(path, { method, body, signedIn: true });
  }
  if (!response.ok) throw await errorOf(response);
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : response.text();
}

/** The job id or sweep id in a page's own path: /ui/jobs/7 → "7". */
export function pathId() {
  return decodeURIComponent(location.pathname.replace(/\/+$/, "").split("/").pop());
}
