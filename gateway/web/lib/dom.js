// Safe DOM building (text only, never HTML from data) and the small helpers every view uses.
import { ApiError } from "./api.js";

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

// Calls fn at most once per `ms`, after the last of a burst of calls.
export function debounce(fn, ms = 150) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}


// Live SLA countdowns and waiting times: one ticker for the whole page (not a request, not a
// timer per element) rewrites every element made by countdown() or since() once a second.
function span(ms) {
  const minutes = Math.floor(Math.abs(ms) / 60000);
  if (minutes < 1) return `${Math.floor(Math.abs(ms) / 1000)} s`;
  if (minutes < 120) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ${String(minutes % 60).padStart(2, "0")} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

function tick(node, now) {
  if (node.dataset.due) {
    const left = Date.parse(node.dataset.due) - now;
    node.textContent = left >= 0 ? `${node.dataset.label} in ${span(left)}`
      : `${node.dataset.label} overdue by ${span(left)}`;
    node.classList.toggle("overdue", left < 0);
    node.classList.toggle("soon", left >= 0 && left < 15 * 60000);
  } else if (node.dataset.since) {
    node.textContent = `${node.dataset.label} ${span(now - Date.parse(node.dataset.since))}`;
  }
}

let ticker = null;
function startTicker() {
  if (ticker !== null) return;
  ticker = setInterval(() => {
    const now = Date.now();
    document.querySelectorAll("[data-due], [data-since]").forEach((n) => tick(n, now));
  }, 1000);
}

// "first response in 12 min" / "... overdue by 3 min", kept current by the page's ticker.
export function countdown(iso, label) {
  const node = el("span", { class: "countdown", dataset: { due: iso, label }, title: when(iso) });
  tick(node, Date.now());
  startTicker();
  return node;
}

// "waiting 5 min", kept current by the page's ticker.
export function since(iso, label) {
  const node = el("span", { class: "since", dataset: { since: iso, label }, title: when(iso) });
  tick(node, Date.now());
  startTicker();
  return node;
}
