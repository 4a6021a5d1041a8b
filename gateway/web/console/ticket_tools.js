// SiteTools: a change for the customer, requested from the ticket. The agent picks one of the
// account's services and a kind their level may request (the change catalog), fills the form
// built from its schema, sees the dry run (in words and the exact host script), confirms, and
// follows its progress live on the ticket, which waits in pending_change until it settles.
import { clear, el } from "../lib/dom.js";
import { schemaForm } from "../lib/forms.js";
import { ChangeTracker, changeFlow } from "../lib/changes.js";
import { dnsFieldRules } from "../lib/dns.js";

const $ = (id) => document.getElementById(id);

export class TicketTools {
  static async start(session, store) {
    let catalog = new Map();
    try {
      const c = await session.get("/changes/catalog");
      catalog = new Map(c.kinds.map((k) => [k.kind, k]));
    } catch {
      // no catalog: no change requests from the console (the rest works)
    }
    return new TicketTools(session, store, catalog);
  }

  constructor(session, store, catalog) {
    this.session = session;
    this.catalog = catalog;
    this.ticket = null;
    this.services = [];
    this.tracker = new ChangeTracker(session, store, $("ticket-changes"), $("ticket-changes"),
      catalog, (state) => this.ticket !== null && state.ticket === this.ticket.number);
    $("change-service").addEventListener("change", () => this.kinds());
    $("change-kind").addEventListener("change", () => this.form());
    $("change-pick").addEventListener("submit", (e) => e.preventDefault());
  }

  // The ticket on screen and its account (GET /accounts/{id}).
  show(ticket, account) {
    const other = !this.ticket || this.ticket.number !== ticket.number;
    this.ticket = ticket;
    const closed = ticket.status === "resolved" || ticket.status === "closed";
    $("change-tools").hidden = closed || !this.catalog.size || !account;
    if (!other || !account) return;
    clear($("ticket-changes"));
    this.services = account.services;
    clear($("change-service"), this.services.map((s) =>
      el("option", { value: String(s.id) }, `${s.kind} ${s.name}`)));
    this.kinds();
  }

  kinds() {
    const service = this.services.find((s) => String(s.id) === $("change-service").value);
    const offered = service ? [...this.catalog.values()].filter(
      (k) => k.service_kinds === null || k.service_kinds.includes(service.kind)) : [];
    clear($("change-kind"), offered.map((k) => el("option", { value: k.kind }, k.title)));
    this.form();
  }

  form() {
    const entry = this.catalog.get($("change-kind").value);
    const serviceId = Number($("change-service").value);
    if (!entry || !serviceId) {
      clear($("change-form-slot"));
      return;
    }
    const fields = schemaForm(entry.params_schema, { idPrefix: `agent-${entry.kind}` });
    dnsFieldRules(fields);
    const errorBox = el("p", { class: "error", role: "alert", hidden: true });
    const preview = el("div", { class: "preview", role: "region", "aria-label": "Preview", hidden: true });
    const form = el("form", { class: "change-form", dataset: { kind: entry.kind } },
      fields.node, errorBox, el("button", { type: "submit" }, "Preview"));
    clear($("change-form-slot"), form, preview);
    changeFlow(this.session, {
      form, errorBox, preview, fields,
      build: () => ({ service_id: serviceId, kind: entry.kind, params: fields.read(),
        ticket: this.ticket.number }),
      onRequested: (detail, summary) => this.tracker.track(detail, summary),
    });
  }
}
