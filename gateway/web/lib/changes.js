// Changes from the pages: a form's values are first sent as a dry run, whose answer says in
// words what will be done on the server (and, for staff, the exact script); only "Confirm"
// requests the change. Then its progress — queued, applying, applied (with what was verified)
// or failed / rolled back (with the ticket support opened) — follows live from the stream,
// several changes at once, each on its own line.
import { ApiError } from "./api.js";
import { clear, el, showError, statusBadge } from "./dom.js";
import { ticketHref } from "./page.js";

const WORDS = {
  queued: "queued",
  applying: "applying on the server…",
  applied: "applied",
  failed: "failed",
  rolled_back: "rolled back",
};
const SETTLED = new Set(["applied", "failed", "rolled_back"]);
const RANK = { queued: 0, applying: 1, applied: 2, failed: 2, rolled_back: 2 };
const later = (a, b) => ((RANK[a] ?? -1) >= (RANK[b] ?? -1) ? a : b);

export class ChangeTracker {
  // `list` is the <ol> the lines go to, `card` what to unhide once there is one; `catalog` a
  // Map kind -> catalog entry (titles, verified_by).
  // `filter(state)` picks which changes of the stream get a line (the console: the ticket's).
  constructor(session, store, list, card, catalog, filter = () => true) {
    this.filter = filter;
    this.session = session;
    this.list = list;
    this.card = card;
    this.catalog = catalog;
    this.store = store;
    this.details = new Map(); // id -> the last GET /changes/{id}
    this.polls = new Map(); // id -> the next look at a change the stream has not settled yet
    store.on("change.", (event) => this.update(event.change_id || (event.data || {}).change_id));
  }

  // A change the page just requested (the POST's answer).
  track(detail, summary) {
    const known = this.store.changes.get(detail.id) || {};
    const status = later(known.status, detail.status); // an event may have come before it
    this.store.changes.set(detail.id, {
      ...known, id: detail.id, kind: detail.kind, service_id: detail.service_id,
      status, summary: known.summary || summary, ticket: known.ticket || detail.ticket_number,
    });
    this.update(detail.id);
  }

  async update(id) {
    const state = this.store.changes.get(id);
    if (!state) return;
    let line = this.list.querySelector(`li[data-change-id="${CSS.escape(id)}"]`);
    if (!line) {
      if (!this.filter(state)) return;
      line = el("li", { class: "change", dataset: { changeId: id } });
      this.list.prepend(line);
      this.card.hidden = false;
    }
    if (SETTLED.has(state.status) && !this.details.has(id)) {
      try {
        this.details.set(id, await this.session.get(`/changes/${encodeURIComponent(id)}`));
      } catch {
        this.details.set(id, null);
      }
    }
    this.render(line, state, this.details.get(id));
    if (!SETTLED.has(state.status)) this.lookLater(id);
  }

  // The stream says how a change goes; should it be cut meanwhile, the change is asked for
  // itself now and then (5 s, 10 s, 20 s ... at most a minute apart) until it settles.
  lookLater(id, delay = 5000) {
    if (this.polls.has(id)) return;
    this.polls.set(id, setTimeout(async () => {
      try {
        const detail = await this.session.get(`/changes/${encodeURIComponent(id)}`);
        const state = this.store.changes.get(id);
        if (state) state.status = later(state.status, detail.status);
      } catch {
        // offline: the next look, or the stream, tells
      }
      const state = this.store.changes.get(id);
      if (state && SETTLED.has(state.status)) {
        this.polls.delete(id);
        this.update(id);
      } else if (state) {
        const line = this.list.querySelector(`li[data-change-id="${CSS.escape(id)}"]`);
        if (line) this.render(line, state, null);
        this.polls.delete(id);
        this.lookLater(id, Math.min(delay * 2, 60000));
      }
    }, delay));
  }

  render(line, state, detail) {
    const entry = this.catalog.get(state.kind) || {};
    const status = (detail && SETTLED.has(detail.status) ? detail.status : state.status) || "queued";
    line.dataset.status = status;
    const parts = [
      el("div", { class: "change-head" }, el("strong", {}, entry.title || state.kind), " ",
        statusBadge(status), status === "applying" ? el("span", { class: "spinner", "aria-hidden": "true" }) : ""),
      state.summary ? el("div", { class: "change-what mono" }, state.summary) : "",
    ];
    if (status === "queued" || status === "applying") {
      parts.push(el("div", { class: "muted" }, WORDS[status]));
    } else if (status === "applied") {
      parts.push(el("div", { class: "ok" }, `Verified: ${entry.verified_by || "done"}.`));
    } else {
      const error = (detail && detail.error) || state.error ||
        "The change could not be applied. Support has been told.";
      const ticket = (detail && detail.ticket_number) || state.ticket;
      parts.push(el("div", { class: "error-text" }, error));
      if (ticket) {
        parts.push(el("div", {}, "Support follows up in ",
          el("a", { href: ticketHref(ticket), class: "mono" }, ticket), "."));
      }
    }
    clear(line, parts);
  }
}

// Wires a form to the dry-run → confirm flow. `build()` returns the POST /changes body (without
// dry_run); `fields` is the schemaForm (for refusals at their fields, `strip` the prefixes of
// the server's field names it does not have, e.g. "new."); `preview` the element the preview
// goes to; `onRequested(detail, summary)` runs once the change is accepted.
export function changeFlow(session, { form, errorBox, preview, build, fields, strip = [], onRequested }) {
  let pending = null; // the body the preview shows, sent as is on "Confirm"
  const reset = () => {
    pending = null;
    preview.hidden = true;
    clear(preview);
  };
  const fail = (err) => {
    const rest = err instanceof ApiError && fields ? fields.showErrors(err.detail, { strip }) : [];
    if (err instanceof ApiError && err.code === "invalid_change" && fields && !rest.length) {
      showError(errorBox, new Error("Please correct the fields marked below."));
    } else {
      showError(errorBox, err);
    }
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError(errorBox, null);
    if (fields) fields.showErrors([]);
    reset();
    let body;
    try {
      body = build();
    } catch (err) {
      showError(errorBox, err);
      return;
    }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const plan = await session.post("/changes", { ...body, dry_run: true });
      pending = body;
      const confirm = el("button", { type: "button", class: "confirm" }, "Confirm");
      const cancel = el("button", { type: "button", class: "secondary" }, "Cancel");
      clear(preview,
        el("p", {}, "This will ", el("strong", { class: "mono" }, plan.summary),
          plan.host ? ` on ${plan.host}` : "", "."),
        plan.plan ? el("details", {}, el("summary", {}, "The exact script for the host"),
          el("pre", { class: "plan" }, plan.plan)) : "",
        el("p", { class: "actions" }, confirm, " ", cancel));
      preview.hidden = false;
      cancel.addEventListener("click", reset);
      confirm.addEventListener("click", async () => {
        confirm.disabled = true;
        try {
          const detail = await session.post("/changes", pending,
            { "Idempotency-Key": crypto.randomUUID() });
          reset();
          form.reset();
          onRequested(detail, plan.summary);
        } catch (err) {
          confirm.disabled = false;
          fail(err);
        }
      });
      confirm.focus();
    } catch (err) {
      fail(err);
    } finally {
      button.disabled = false;
    }
  });
  return { reset };
}
