// api.js: the dashboard's only way to the server. Every call goes to this origin's REST API with the
// API key from session storage in an Authorization header (never in a URL). Event streams are read
// with fetch() and a stream reader, because EventSource cannot send that header.

const KEY = "pfc.apiKey";

export function getKey() { return sessionStorage.getItem(KEY) || ""; }
export function setKey(key) { sessionStorage.setItem(KEY, key.trim()); }
export function clearKey() { sessionStorage.removeItem(KEY); }

/** An answer of the API that was not 2xx: `status`, the error `code` and its `message`. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function headers(extra) {
  const h = { Authorization: "Bearer " + getKey() };
  return Object.assign(h, extra || {});
}

async function failure(response) {
  let code = "http_" + response.status, message = response.statusText || ("HTTP " + response.status);
  try {
    const body = await response.json();
    if (body && body.error) { code = body.error.code; message = body.error.message; }
  } catch (_) { /* not JSON */ }
  return new ApiError(response.status, code, message);
}

/** A JSON call: `api("/v1/models")`, `api(path, { method: "POST", body: {...} })`. */
export async function api(path, options = {}) {
  const init = { method: options.method || "GET", headers: headers(), cache: "no-store", credentials: "omit", signal: options.signal };
  if (options.body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body);
  }
  const response = await fetch(path, init);
  if (!response.ok) throw await failure(response);
  if (response.status === 204) return null;
  return response.json();
}

/** Every item of a paged list (`limit=1000` pages), at most `maxPages` pages. */
export async function listAll(path, maxPages = 20) {
  const items = [];
  let offset = 0;
  for (let page = 0; page < maxPages && offset !== null && offset !== undefined; page++) {
    const sep = path.includes("?") ? "&" : "?";
    const body = await api(`${path}${sep}limit=1000&offset=${offset}`);
    items.push(...body.items);
    offset = body.next_offset;
  }
  return items;
}

const objectURLs = new Set();

/** A PNG (or other binary) fetched with the key, as a `blob:` URL an <img> can show. */
export async function imageURL(path, signal) {
  const response = await fetch(path, { headers: headers(), cache: "no-store", credentials: "omit", signal });
  if (!response.ok) throw await failure(response);
  const url = URL.createObjectURL(await response.blob());
  objectURLs.add(url);
  return { url, headers: response.headers };
}

/** Frees the blob URLs of the previous page. */
export function releaseImages() {
  for (const url of objectURLs) URL.revokeObjectURL(url);
  objectURLs.clear();
}

/** Whether the served contract has `path` (so a route another release adds is only called when it exists). */
let contract = null;
export async function hasRoute(path) {
  if (contract === null) {
    try {
      const r = await fetch("/openapi.yaml", { cache: "no-store", credentials: "omit" });
      contract = r.ok ? await r.text() : "";
    } catch (_) { contract = ""; }
  }
  return contract.includes("\n  " + path + ":");
}

/**
 * Follows `GET /v1/jobs/{id}/events` (Server-Sent Events) and calls `onEvent(name, job, id)` for each
 * event, reconnecting with `Last-Event-ID` when the stream drops before its `end` event. Returns a
 * function that stops following. `onEnd(job)` runs once after the `end` event.
 */
export function followJob(jobID, onEvent, onEnd) {
  const controller = new AbortController();
  let lastID = null, ended = false, failures = 0;

  async function once() {
    const h = headers({ Accept: "text/event-stream" });
    if (lastID !== null) h["Last-Event-ID"] = lastID;
    const response = await fetch(`/v1/jobs/${encodeURIComponent(jobID)}/events`, {
      headers: h, cache: "no-store", credentials: "omit", signal: controller.signal,
    });
    if (!response.ok) throw await failure(response);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "", name = "", data = [], id = null;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buffer.search(/\r\n|\r|\n/)) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + (buffer[nl] === "\r" && buffer[nl + 1] === "\n" ? 2 : 1));
        if (line === "") {
          if (data.length) {
            if (id !== null) lastID = id;
            let job = null;
            try { job = JSON.parse(data.join("\n")); } catch (_) { job = null; }
            const event = name || "message";
            if (job) onEvent(event, job, id);
            if (event === "end") { ended = true; if (onEnd) onEnd(job); return; }
          }
          name = ""; data = []; id = null;
          continue;
        }
        if (line.startsWith(":")) continue; // heartbeat comment
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? "" : line.slice(colon + 1);
        if (val.startsWith(" ")) val = val.slice(1);
        if (field === "event") name = val;
        else if (field === "data") data.push(val);
        else if (field === "id") id = val;
      }
    }
  }

  (async () => {
    while (!ended && !controller.signal.aborted) {
      try {
        await once();
        failures = 0;
      } catch (e) {
        if (controller.signal.aborted) return;
        if (e instanceof ApiError && e.status < 500 && e.status !== 429) return; // gone or not ours: stop
        failures++;
      }
      if (ended || controller.signal.aborted) return;
      await new Promise((resolve) => setTimeout(resolve, Math.min(10000, 500 * 2 ** Math.min(failures, 5))));
    }
  })();
  return () => controller.abort();
}
