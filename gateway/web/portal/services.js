// SiteControl's service pages: each service with what its customer may change there, the forms
// built from the change catalog. A DNS zone shows its records as the name server serves them now
// (read from the host), each with edit and delete; a web-hosting service its cron jobs as the
// host has them; a mailbox or FTP account its password (and quota) forms.
import { clear, el, showError, statusBadge, when } from "../lib/dom.js";
import { schemaForm } from "../lib/forms.js";
import { changeFlow } from "../lib/changes.js";
import { dnsFieldRules } from "../lib/dns.js";

const $ = (id) => document.getElementById(id);
const KIND_WORDS = {
  dns_zone: "DNS zone", mailbox: "Mailbox", ftp_account: "FTP account",
  web_hosting: "Web hosting", domain: "Domain", tls_certificate: "TLS certificate",
  database: "Database", cron: "Cron",
};

export function kindWords(kind) {
  return KIND_WORDS[kind] || kind.replaceAll("_", " ");
}

// The kinds the customer may ask for on a service of `serviceKind` (the catalog's own table;
// forwarders are the mail of a domain: on its mailbox and domain pages, not beside its zone).
export function offeredKinds(catalog, serviceKind) {
  return [...catalog.values()].filter(
    (k) => (!k.kind.startsWith("mail_forwarder_") || FORWARDER_PAGES.has(serviceKind)) &&
      (k.service_kinds === null || k.service_kinds.includes(serviceKind)),
  );
}

// ...each with a form of its own, but those the page offers another way (per record, per job).
function formsFor(catalog, serviceKind) {
  const inline = new Set(["dns_record_update", "dns_record_delete", "cron_remove",
    "mail_forwarder_delete"]);
  return offeredKinds(catalog, serviceKind).filter((k) => !inline.has(k.kind));
}

const FORWARDER_PAGES = new Set(["mailbox", "domain"]);

function recordText(r) {
  const extra = [r.priority, r.weight, r.port].filter((x) => x !== null && x !== undefined);
  const caa = r.type === "CAA" ? `${r.flags ?? 0} ${r.tag} ` : "";
  return `${extra.length ? extra.join(" ") + " " : ""}${caa}${r.value}`;
}

function recordFields(r) {
  const out = {};
  for (const k of ["name", "type", "value", "ttl", "priority", "weight", "port", "flags", "tag"]) {
    if (r[k] !== null && r[k] !== undefined) out[k] = r[k];
  }
  return out;
}

export class ServicePage {
  constructor(session, tracker, catalog) {
    this.session = session;
    this.tracker = tracker;
    this.catalog = catalog;
    this.service = null;
    this.reload = null;
  }

  // Called with the account's services (GET /accounts/{id}) and the id on screen.
  async show(services, id) {
    const service = services.find((s) => String(s.id) === String(id));
    const body = $("service-body");
    showError($("service-error"), null);
    if (!service) {
      this.service = null;
      clear($("service-title"), "Service not found");
      clear($("service-meta"));
      clear(body);
      return;
    }
    // The same page again (and built with the catalog as it is now): only read the host again.
    const same = this.service && this.service.id === service.id && this.builtWith === this.catalog.size;
    this.service = service;
    clear($("service-title"), kindWords(service.kind), " ", el("span", { class: "mono" }, service.name));
    clear($("service-meta"), statusBadge(service.status));
    if (same && body.childElementCount) {
      if (this.reload) await this.reload();
      return;
    }
    this.reload = null;
    this.builtWith = this.catalog.size;
    const parts = [];
    if (service.kind === "dns_zone") parts.push(this.zonePart(service));
    if (service.kind === "mailbox") parts.push(this.mailboxFacts(service));
    if (service.kind === "ftp_account") parts.push(this.ftpFacts(service));
    if (service.kind === "web_hosting") parts.push(this.certificateFacts(service));
    if (service.kind === "web_hosting" || service.kind === "cron") parts.push(this.cronPart(service));
    if (FORWARDER_PAGES.has(service.kind) && this.catalog.has("mail_forwarder_add")) {
      parts.push(this.forwarderPart(service));
    }
    for (const entry of formsFor(this.catalog, service.kind)) {
      // A mailbox's forwarder starts from its own address.
      const values = entry.kind === "mail_forwarder_add" && service.kind === "mailbox"
        ? { source: service.name } : {};
      parts.push(this.formPart(service, entry, { values }));
    }
    if (!parts.length) {
      parts.push(el("p", { class: "muted" },
        "Nothing here can be changed from SiteControl; open a ticket and support will help."));
    }
    clear(body, parts);
    if (this.reload) await this.reload();
  }

  // A change kind's form: generated from its schema, dry run first, then confirm.
  formPart(service, entry, { values = {}, wrap = (p) => p, strip = [], title = entry.title } = {}) {
    const fields = schemaForm(entry.params_schema, { values, idPrefix: entry.kind });
    dnsFieldRules(fields);
    const errorBox = el("p", { class: "error", role: "alert", hidden: true });
    const preview = el("div", { class: "preview", role: "region", "aria-label": "Preview", hidden: true });
    const form = el("form", { class: "change-form", dataset: { kind: entry.kind } },
      fields.node, errorBox, el("button", { type: "submit" }, "Preview"));
    const section = el("section", { class: "change-part", "aria-label": title },
      el("h2", {}, title), form, preview);
    changeFlow(this.session, {
      form, errorBox, preview, fields, strip,
      build: () => ({ service_id: service.id, kind: entry.kind, params: wrap(fields.read()) }),
      onRequested: (detail, summary) => this.tracker.track(detail, summary),
    });
    return section;
  }

  zonePart(service) {
    const table = el("tbody");
    const errorBox = el("p", { class: "error", role: "alert", hidden: true });
    const editor = el("div", { class: "record-editor" });
    const serial = el("span", { class: "muted" });
    const part = el("section", { class: "zone", "aria-labelledby": "zone-title" },
      el("h2", { id: "zone-title" }, "Records ", serial),
      el("p", { class: "muted" }, "As the name server answers now."),
      errorBox,
      el("table", { class: "records" },
        el("thead", {}, el("tr", {}, ["Name", "TTL", "Type", "Value", ""].map((h) =>
          el("th", { scope: "col" }, h)))),
        table),
      editor);
    const update = this.catalog.get("dns_record_update");
    const remove = this.catalog.get("dns_record_delete");
    this.alsoReload(async () => {
      try {
        const zone = await this.session.get(`/services/${service.id}/zone`);
        if (this.service !== service && (!this.service || this.service.id !== service.id)) return;
        showError(errorBox, null);
        serial.textContent = zone.serial !== null ? `(serial ${zone.serial})` : "";
        clear(table, zone.records.map((r) => {
          const label = `${r.name} ${r.type} ${recordText(r)}`;
          const actions = [];
          if (r.editable && update) {
            actions.push(el("button", { type: "button", class: "secondary small",
              "aria-label": `Edit ${label}`,
              onclick: () => this.editRecord(service, editor, r, update) }, "Edit"));
          }
          if (r.editable && remove) {
            actions.push(" ", el("button", { type: "button", class: "secondary small",
              "aria-label": `Delete ${label}`,
              onclick: () => this.deleteRecord(service, editor, r, remove) }, "Delete"));
          }
          return el("tr", { dataset: { name: r.name, type: r.type } },
            el("td", { class: "mono" }, r.name), el("td", {}, String(r.ttl)),
            el("td", {}, r.type), el("td", { class: "mono value" }, recordText(r)),
            el("td", { class: "row-actions" }, actions));
        }));
      } catch (err) {
        showError(errorBox, err);
      }
    });
    return part;
  }

  editRecord(service, editor, record, entry) {
    const recordSchema = { ...entry.params_schema, properties: { new: entry.params_schema.properties.new },
      required: ["new"] };
    const part = this.formPart(service, { ...entry, params_schema: recordSchema }, {
      values: { new: recordFields(record) },
      wrap: (p) => ({ old: recordFields(record), new: p.new }),
      title: `Change ${record.name} ${record.type}`,
    });
    clear(editor, part);
    part.querySelector("input, select").focus();
  }

  deleteRecord(service, editor, record, entry) {
    const part = this.formPart(service, { ...entry, params_schema: { type: "object", properties: {} } }, {
      wrap: () => ({ record: recordFields(record) }),
      title: `Delete ${record.name} ${record.type} ${recordText(record)}`,
    });
    clear(editor, part);
    part.querySelector("button").focus();
  }

  // A list of what the host has for the service (cron jobs, forwarders), each row with a
  // "Remove" that previews and confirms the `removeKind` change of that row.
  servedList(service, { cls, title, path, items, columns, cells, key, removeKind, removeParams,
    removeLabel, empty }) {
    const list = el("tbody");
    const errorBox = el("p", { class: "error", role: "alert", hidden: true });
    const editor = el("div");
    const remove = this.catalog.get(removeKind);
    const noFields = { type: "object", properties: {} };
    const removeButton = (item) => el("button", { type: "button", class: "secondary small",
      "aria-label": removeLabel(item),
      onclick: () => {
        const part = this.formPart(service, { ...remove, params_schema: noFields },
          { wrap: () => removeParams(item), title: removeLabel(item) });
        clear(editor, part);
        part.querySelector("button").focus();
      } }, "Remove");
    const load = async () => {
      try {
        const found = items(await this.session.get(`/services/${service.id}/${path}`));
        showError(errorBox, null);
        clear(list, found.length
          ? found.map((item) => el("tr", { dataset: { key: key(item) } },
            cells(item).map((c) => el("td", { class: "mono" }, c)),
            el("td", {}, remove ? removeButton(item) : "")))
          : el("tr", {}, el("td", { colspan: columns.length + 1, class: "muted" }, empty)));
      } catch (err) {
        showError(errorBox, err);
      }
    };
    this.alsoReload(load);
    const titleId = `${cls}-title`;
    return el("section", { class: cls, "aria-labelledby": titleId },
      el("h2", { id: titleId }, title), errorBox,
      el("table", { class: "records" },
        el("thead", {}, el("tr", {}, [...columns, ""].map((h) => el("th", { scope: "col" }, h)))),
        list),
      editor);
  }

  // What the server has for this service (read from it on each load), in a few words.
  factPart(service, { cls, title, path, describe }) {
    const body = el("div", { class: "facts-body" });
    const errorBox = el("p", { class: "error", role: "alert", hidden: true });
    const load = async () => {
      try {
        clear(body, describe(await this.session.get(`/services/${service.id}/${path}`)));
        showError(errorBox, null);
      } catch (err) {
        showError(errorBox, err);
      }
    };
    this.alsoReload(load);
    const titleId = `${cls}-title`;
    return el("section", { class: `facts ${cls}`, "aria-labelledby": titleId },
      el("h2", { id: titleId }, title), errorBox, body);
  }

  mailboxFacts(service) {
    return this.factPart(service, {
      cls: "mailbox-facts", title: "On the mail server", path: "mailboxes",
      describe: (r) => {
        const box = r.mailboxes.find((m) => m.address.toLowerCase() === service.name.toLowerCase());
        return box
          ? el("p", {}, el("span", { class: "mono" }, box.address), ` exists, quota ${box.quota_mb} MB.`)
          : el("p", { class: "error-text" }, "This mailbox is not on the server; support has to set it up.");
      },
    });
  }

  ftpFacts(service) {
    return this.factPart(service, {
      cls: "ftp-facts", title: "On the FTP server", path: "ftp",
      describe: (r) => (r.accounts.some((a) => a.username === service.name)
        ? el("p", {}, "The FTP account ", el("span", { class: "mono" }, service.name), " exists.")
        : el("p", { class: "error-text" }, "This FTP account is not on the server; support has to set it up.")),
    });
  }

  certificateFacts(service) {
    return this.factPart(service, {
      cls: "certificate-facts", title: "TLS certificate", path: "certificate",
      describe: (r) => {
        const c = r.certificate;
        if (!c) return el("p", { class: "muted" }, "No certificate is installed for this site.");
        if (c.problem) return el("p", { class: "error-text" }, `The installed certificate: ${c.problem}.`);
        return el("dl", { class: "facts-list" },
          el("dt", {}, "Subject"), el("dd", { class: "mono" }, c.subject),
          el("dt", {}, "Issuer"), el("dd", { class: "mono" }, c.issuer),
          el("dt", {}, "Valid until"), el("dd", {}, when(c.not_after)),
          el("dt", {}, "SHA-256"), el("dd", { class: "mono fingerprint" }, c.sha256));
      },
    });
  }

  cronPart(service) {
    return this.servedList(service, {
      cls: "cron", title: "Cron jobs", path: "cron", items: (r) => r.entries,
      columns: ["Name", "Schedule", "Command"], cells: (e) => [e.name, e.schedule, e.command],
      key: (e) => e.name, removeKind: "cron_remove", removeParams: (e) => ({ name: e.name }),
      removeLabel: (e) => `Remove cron job ${e.name}`, empty: "No cron jobs.",
    });
  }

  forwarderPart(service) {
    return this.servedList(service, {
      cls: "forwarders", title: "Forwarders of the domain", path: "forwarders",
      items: (r) => r.forwarders, columns: ["From", "To"], cells: (f) => [f.source, f.destination],
      key: (f) => `${f.source} ${f.destination}`, removeKind: "mail_forwarder_delete",
      removeParams: (f) => ({ source: f.source, destination: f.destination }),
      removeLabel: (f) => `Remove the forwarder ${f.source} to ${f.destination}`,
      empty: "No forwarders.",
    });
  }

  // Each part of the page that reads the host adds its load here: `reload` runs them all (on
  // opening the page again, and after a change of the service settles).
  alsoReload(load) {
    const previous = this.reload;
    this.reload = async () => {
      if (previous) await previous();
      await load();
    };
  }

  // A change of this service settled: the page shows what the host serves now.
  changed(state) {
    if (this.service && String(state.service_id) === String(this.service.id) && this.reload) {
      this.reload();
    }
  }
}
