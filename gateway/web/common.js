// Shared by SiteControl (portal) and SiteTools (console): the API client, the session token,
// safe DOM building (text only, never HTML from data) and the live event stream.

const API = "/api/v1";

export class ApiError extends Error {
  constructor(status, body) {
    const message = (body && body.message) || `the server answered ${status}`;
    super(message);
    this.status = status;
    this.code = (body && body.error) || "error";
    this.detail = body ? body.detail : null;
  }

  // One line for the user: the message, and for invalid input the fields and their problems.
  describe() {
    let text = this.message;
    if (Array.isArray(this.detail) && this.detail.length) {
      const parts = this.detail
        .filter((d) => d && typeof d === "object" && "problem" in d)
        .map((d) => (d.field ? `${d.field}: ${d.problem}` : String(d.problem)));
      if (parts.length) text += ` (${parts.join("; ")})`;
    }
    return text;
  }
}

export class Session {
  constructor(name) {
    this.key = `sitedesk.${name}.token`;
    this.onExpired = () => {};
  }

  get token() {
    return sessionStorage.getItem(this.key);
  }

  set token(value) {
    if (value) sessionStorage.setItem(this.key, value);
    else sessionStorage.removeItem(this.key);
  }

  async login(email, password) {
    const form = new URLSearchParams({ username: email, password });
    const resp = await fetch(`${API}/auth/token`, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: form,
    });
    const body = await readJson(resp);
    if (!resp.ok) throw new ApiError(resp.status, body);
    this.token = body.access_token;
    return body;
  }

  // Revoke the token on the server (best effort: it expires anyway) and forget it here.
  async logout() {
    const token = this.token;
    this.token = null;
    if (!token) return;
    try {
      await fetch(`${API}/auth/logout`, {
        method: "POST",
        headers: { Authorization: `Bearer ${token}` },
      });
    } catch {
      // offline: the token still expires on its own
    }
  }

  // A request with the bearer token: the response when it is 2xx, else ApiError with the
  // API's error shape.
  async request(method, path, { json, headers = {}, accept = "application/json" } = {}) {
    const init = { method, headers: { Accept: accept, ...headers } };
    if (this.token) init.headers.Authorization = `Bearer ${this.token}`;
    if (json !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(json);
    }
    let resp;
    try {
      resp = await fetch(`${API}${path}`, init);
    } catch {
      throw new ApiError(0, { error: "network", message: "the server can not be reached" });
    }
    if (resp.status === 401) {
      this.token = null;
      this.onExpired();
    }
    if (!resp.ok) throw new ApiError(resp.status, await readJson(resp));
    return resp;
  }

  // A JSON request with the bearer token; throws ApiError with the API's error shape.
  async api(method, path, options = {}) {
    return readJson(await this.request(method, path, options));
  }

  // A download that needs the token (a link can not send it): the body as a Blob, to offer
  // with an object URL (see download()).
  async blob(path, accept = "*/*") {
    const resp = await this.request("GET", path, { accept });
    return resp.blob();
  }

  get(path) {
    return this.api("GET", path);
  }

  post(path, json, headers) {
    return this.api("POST", path, { json, headers });
  }

  put(path, json) {
    return this.api("PUT", path, { json });
  }
}

async function readJson(resp) {
  try {
    return await resp.json();
  } catch {
    return null;
  }
}

// el("li", {class: "x", dataset: {n: 1}}, "text", child) — strings become text nodes.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "text") node.textContent = String(value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// Offers a Blob as a file download under `filename` (an object URL, let go once it is taken).
export function download(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = el("a", { href: url, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

export function clear(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
  return node;
}

export function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
}

export function statusBadge(status) {
  const label = String(status).replaceAll("_", " ");
  return el("span", { class: `badge status-${String(status).replace(/[^a-z_]/g, "")}` }, label);
}

// Shows an error (or nothing) in a role="alert" box.
export function showError(box, err) {
  if (!err) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  box.textContent = err instanceof ApiError ? err.describe() : String(err.message || err);
  box.hidden = false;
}

// Runs a form's submit handler with its button disabled and its error box filled on failure.
export function onSubmit(form, errorBox, handler) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => (b.disabled = true));
    showError(errorBox, null);
    try {
      await handler(new FormData(form), event.submitter);
    } catch (err) {
      showError(errorBox, err);
    } finally {
      buttons.forEach((b) => (b.disabled = false));
    }
  });
}

// The live stream: an EventSource can not send an Authorization header, so read
// text/event-stream with fetch and a ReadableStream; reconnect with Last-Event-ID.
export class LiveStream {
  constructor(session, indicator, onEvent) {
    this.session = session;
    this.indicator = indicator;
    this.onEvent = onEvent;
    this.lastId = null;
    this.retryMs = 2000;
    this.controller = null;
    this.running = false;
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.loop();
  }

  stop() {
    this.running = false;
    if (this.controller) this.controller.abort();
    this.setState("off");
  }

  setState(state) {
    if (!this.indicator) return;
    this.indicator.dataset.state = state;
    this.indicator.textContent = { live: "live", connecting: "connecting…", off: "offline" }[state];
    this.indicator.title =
      state === "live" ? "Updates appear as they happen" : "Live updates are not connected";
  }

  async loop() {
    while (this.running) {
      this.setState("connecting");
      try {
        await this.readOnce();
      } catch (err) {
        if (!this.running) break;
      }
      if (!this.running || !this.session.token) break;
      this.setState("off");
      await new Promise((resolve) => setTimeout(resolve, this.retryMs));
    }
    this.setState("off");
  }

  async readOnce() {
    this.controller = new AbortController();
    const headers = { Accept: "text/event-stream", Authorization: `Bearer ${this.session.token}` };
    if (this.lastId !== null) headers["Last-Event-ID"] = String(this.lastId);
    const resp = await fetch(`${API}/events`, { headers, signal: this.controller.signal });
    if (resp.status === 401) {
      this.running = false;
      this.session.token = null;
      this.session.onExpired();
      return;
    }
    if (!resp.ok || !resp.body) throw new Error(`events: ${resp.status}`);
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n?/g, "\n");
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        this.handleBlock(block);
      }
    }
  }

  handleBlock(block) {
    const fields = { data: [] };
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) {
        if (line.startsWith(": connected")) this.setState("live");
        continue;
      }
      const colon = line.indexOf(":");
      const name = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (name === "data") fields.data.push(value);
      else if (name === "id") fields.id = value;
      else if (name === "retry" && /^\d+$/.test(value)) this.retryMs = Number(value);
    }
    if (fields.id && /^\d+$/.test(fields.id)) this.lastId = Number(fields.id);
    if (!fields.data.length) return;
    let event;
    try {
      event = JSON.parse(fields.data.join("\n"));
    } catch {
      return;
    }
    this.onEvent(event);
  }
}

// Calls fn at most once per `ms`, after the last of a burst of calls.
export function debounce(fn, ms = 150) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

// The hash route: "#/tickets/TT-000001" -> ["tickets", "TT-000001"].
export function route() {
  return location.hash
    .replace(/^#\/?/, "")
    .split("/")
    .filter(Boolean)
    .map((p) => decodeURIComponent(p));
}

export function ticketHref(number) {
  return `#/tickets/${encodeURIComponent(number)}`;
}

// What both pages share: the log-in form, the role check, log-out, the live stream and the
// hash routing. A page gives its `session`, `refuse(me)` (a message when this page is not
// for that user, else null), `enter(me)` (fill the page; its first load), `refresh()` (reload
// after a live event), `show()` (render the route), optional `leave()` and optional
// `onEvent(event)` (every live event as it comes, before the debounced refresh).
export function runPage({ session, refuse, enter, refresh, show, leave = () => {}, onEvent = null }) {
  const $ = (id) => document.getElementById(id);
  const page = { me: null, live: null };

  function showLogin(message) {
    if (page.live) page.live.stop();
    page.live = null;
    page.me = null;
    leave();
    $("app-view").hidden = true;
    $("logout").hidden = true;
    $("who").textContent = "";
    $("login-view").hidden = false;
    showError($("login-error"), message ? new Error(message) : null);
    $("login-email").focus();
  }

  async function start() {
    let me;
    try {
      me = await session.get("/me");
    } catch (err) {
      if (err.status !== 401) showLogin(err.describe ? err.describe() : String(err));
      return;
    }
    const refusal = refuse(me);
    if (refusal) {
      session.token = null;
      showLogin(refusal);
      return;
    }
    page.me = me;
    $("login-view").hidden = true;
    $("app-view").hidden = false;
    $("logout").hidden = false;
    $("who").textContent = me.name;
    const later = debounce(refresh, 100);
    page.live = new LiveStream(session, $("live"), (event) => {
      if (onEvent) onEvent(event);
      later(event);
    });
    page.live.start();
    await enter(me);
  }

  session.onExpired = () => showLogin("Your session has ended; please log in again.");
  onSubmit($("login-form"), $("login-error"), async (data) => {
    await session.login(String(data.get("email")), String(data.get("password")));
    $("login-form").reset();
    await start();
  });
  $("logout").addEventListener("click", async () => {
    await session.logout();
    location.hash = "#/";
    showLogin();
  });
  window.addEventListener("hashchange", () => {
    if (page.me) show();
  });
  if (session.token) start();
  else showLogin();
  return page;
}
