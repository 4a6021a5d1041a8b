// SiteControl, the customer portal: the account's tickets (open one with files, read and answer
// it, close or reopen), its services with what the customer may change on each (live progress
// of every change), the account's activity, and the customer's own settings. Live events reach
// only the views they concern, through the client store.
import { Session } from "../lib/api.js";
import { clear, el, onSubmit, showError, statusBadge, when } from "../lib/dom.js";
import { route, runPage, ticketHref } from "../lib/page.js";
import { Store, keyedDebounce } from "../lib/store.js";
import { ChangeTracker } from "../lib/changes.js";
import { sendWithFiles, fileList } from "../lib/files.js";
import { ServicePage, kindWords, offeredKinds } from "./services.js";

const $ = (id) => document.getElementById(id);
const session = new Session("portal");
const store = new Store();
const VIEWS = ["list-view", "ticket-view", "services-view", "service-view", "activity-view", "settings-view"];
const NAV = { tickets: "nav-tickets", services: "nav-services", activity: "nav-activity", settings: "nav-settings" };
let me = null;
let current = null; // the ticket number on screen
let account = null; // GET /accounts/{id}: services, open tickets
const catalog = new Map(); // change kind -> catalog entry (filled on log-in)
const tracker = new ChangeTracker(session, store, $("changes"), $("changes-card"), catalog);
const servicePage = new ServicePage(session, tracker, catalog);
let activityBefore = null;

function view(id, nav) {
  for (const v of VIEWS) $(v).hidden = v !== id;
  for (const [name, navId] of Object.entries(NAV)) {
    if (name === nav) $(navId).setAttribute("aria-current", "page");
    else $(navId).removeAttribute("aria-current");
  }
}

async function refresh() {
  await loadAccount();
  await show();
}

async function show() {
  const [page, id] = route();
  if (page === "tickets" && id) {
    current = id;
    view("ticket-view", "tickets");
    await loadTicket(id);
    return;
  }
  current = null;
  if (page === "services" && id) {
    view("service-view", "services");
    await servicePage.show(account ? account.services : [], id);
  } else if (page === "services") {
    view("services-view", "services");
    renderServiceCards();
  } else if (page === "activity") {
    view("activity-view", "activity");
    await loadActivity(true);
  } else if (page === "settings") {
    view("settings-view", "settings");
  } else {
    view("list-view", "tickets");
    await loadTickets();
  }
}

// -- tickets ---------------------------------------------------------------------------------
let searching = ""; // the search the list shows, or "" for the account's tickets

async function loadTickets() {
  if (searching) return searchTickets(searching);
  try {
    const status = $("ticket-filter").value;
    const page = await session.get(`/tickets?limit=100${status ? `&status=${encodeURIComponent(status)}` : ""}`);
    showError($("tickets-error"), null);
    clear(
      $("tickets"),
      page.items.map((t) =>
        el("tr", { dataset: { number: t.number } },
          el("td", {}, el("a", { href: ticketHref(t.number), class: "mono" }, t.number)),
          el("td", {}, t.subject),
          el("td", {}, statusBadge(t.status)),
          el("td", {}, when(t.updated_at)),
        ),
      ),
    );
    $("tickets-empty").hidden = page.items.length > 0;
  } catch (err) {
    showError($("tickets-error"), err);
  }
}

// The customer's own search: only the account's tickets, never words of internal notes.
async function searchTickets(q) {
  try {
    const found = await session.get(`/search?${new URLSearchParams({ q, limit: "50" })}`);
    showError($("tickets-error"), null);
    clear($("tickets"), found.tickets.map((t) =>
      el("tr", { dataset: { number: t.number } },
        el("td", {}, el("a", { href: ticketHref(t.number), class: "mono" }, t.number)),
        el("td", {}, t.subject, t.snippet && t.snippet.length ? el("div", { class: "snippet" },
          t.snippet.map((p) => (p.hit ? el("mark", {}, p.text) : p.text))) : ""),
        el("td", {}, statusBadge(t.status)),
        el("td", {}, when(t.updated_at)))));
    $("tickets-empty").textContent = `No ticket matches “${q}”.`;
    $("tickets-empty").hidden = found.tickets.length > 0;
  } catch (err) {
    showError($("tickets-error"), err);
  }
}

$("portal-search").addEventListener("submit", (event) => {
  event.preventDefault();
  searching = $("portal-search-q").value.trim();
  $("portal-search-clear").hidden = !searching;
  loadTickets();
});
$("portal-search-clear").addEventListener("click", () => {
  searching = "";
  $("portal-search-q").value = "";
  $("portal-search-clear").hidden = true;
  $("tickets-empty").textContent = "No tickets yet.";
  loadTickets();
});

async function loadTicket(number) {
  try {
    const t = await session.get(`/tickets/${encodeURIComponent(number)}`);
    if (current !== number) return;
    showError($("ticket-error"), null);
    $("ticket-body").hidden = false;
    clear($("ticket-title"), el("span", { class: "mono" }, t.number), " ", t.subject);
    clear($("ticket-meta"), statusBadge(t.status), ` opened ${when(t.created_at)}`,
      t.owner ? ` · handled by ${t.owner.name}` : "");
    // A closed ticket is final; a resolved one can be reopened (or answered, which reopens it).
    $("close-ticket").hidden = t.status === "closed";
    $("reopen-ticket").hidden = t.status !== "resolved";
    $("reply-form").hidden = t.status === "closed";
    clear(
      $("messages"),
      t.messages
        .filter((m) => m.visibility === "public")
        .map((m) =>
          el("li", { class: `message ${m.direction === "inbound" ? "from-customer" : "from-staff"}` },
            el("div", { class: "message-head" }, el("strong", {}, m.author), " · ", when(m.created_at)),
            el("div", { class: "message-body" }, m.body),
            fileList(session, t.number, m.attachments || []),
          ),
        ),
    );
  } catch (err) {
    if (current !== number) return;
    $("ticket-body").hidden = true;
    showError($("ticket-error"), err);
  }
}

onSubmit($("new-ticket"), $("new-error"), async (data) => {
  const ticket = await sendWithFiles(session, "/tickets",
    { subject: String(data.get("subject")), body: String(data.get("body")) }, $("new-files").files);
  $("new-ticket").reset();
  location.hash = ticketHref(ticket.number);
});

onSubmit($("reply-form"), $("reply-error"), async (data) => {
  const number = current;
  await sendWithFiles(session, `/tickets/${encodeURIComponent(number)}/messages`,
    { body: String(data.get("body")) }, $("reply-files").files);
  $("reply-form").reset();
  await loadTicket(number);
});

async function ticketAction(action) {
  const number = current;
  try {
    await session.post(`/tickets/${encodeURIComponent(number)}/${action}`, {},
      { "Idempotency-Key": crypto.randomUUID() });
    showError($("action-error"), null);
  } catch (err) {
    showError($("action-error"), err);
  }
  await loadTicket(number);
}

$("close-ticket").addEventListener("click", () => ticketAction("close"));
$("reopen-ticket").addEventListener("click", () => ticketAction("reopen"));
$("ticket-filter").addEventListener("change", () => loadTickets());

// -- the account and its services ----------------------------------------------------------
async function loadAccount() {
  try {
    account = await session.get(`/accounts/${me.account_id}`);
    showError($("account-error"), null);
    $("account-name").textContent = `${account.name} (${account.code}) · plan ${account.plan} · ${account.status}`;
    clear(
      $("services"),
      account.services.map((s) =>
        el("li", {}, el("a", { href: `#/services/${s.id}` }, el("span", { class: "kind" }, kindWords(s.kind)), " ",
          el("span", { class: "mono" }, s.name)), " ", statusBadge(s.status)),
      ),
    );
    if (!account.services.length) $("services").append(el("li", { class: "muted" }, "No services."));
  } catch (err) {
    showError($("account-error"), err);
  }
}

function renderServiceCards() {
  const services = account ? account.services : [];
  clear($("service-cards"), services.map((s) => {
    const offered = offeredKinds(catalog, s.kind);
    return el("li", { class: "service-card" },
      el("a", { href: `#/services/${s.id}` }, el("strong", {}, kindWords(s.kind)), " ",
        el("span", { class: "mono" }, s.name)),
      " ", statusBadge(s.status),
      el("p", { class: "muted" }, offered.length ? offered.map((k) => k.title).join(" · ")
        : "Managed by support"));
  }));
  if (!services.length) $("service-cards").append(el("li", { class: "muted" }, "No services."));
}

// -- activity --------------------------------------------------------------------------------
async function loadActivity(first) {
  if (first) activityBefore = null;
  try {
    const q = activityBefore ? `?limit=30&before=${encodeURIComponent(activityBefore)}` : "?limit=30";
    const page = await session.get(`/accounts/${me.account_id}/timeline${q}`);
    showError($("activity-error"), null);
    const items = page.items.map((e) => el("li", { class: `entry kind-${String(e.kind).split(".")[0]}` },
      el("div", { class: "meta" }, when(e.at || e.created_at), " · ", e.actor || ""),
      el("div", {}, e.ticket_number ? el("a", { href: ticketHref(e.ticket_number), class: "mono" }, e.ticket_number) : "",
        e.ticket_number ? " " : "", e.summary)));
    if (first) clear($("activity"), items);
    else $("activity").append(...items);
    if (first && !items.length) $("activity").append(el("li", { class: "muted" }, "Nothing yet."));
    activityBefore = page.next_before ?? page.next_cursor ?? null;
    $("activity-more").hidden = !activityBefore;
  } catch (err) {
    showError($("activity-error"), err);
  }
}
$("activity-more").addEventListener("click", () => loadActivity(false));

// -- settings --------------------------------------------------------------------------------
onSubmit($("password-form"), $("password-error"), async (data) => {
  $("password-done").hidden = true;
  await session.post("/me/password", {
    current_password: String(data.get("current_password")),
    new_password: String(data.get("new_password")),
  });
  $("password-form").reset();
  $("password-done").hidden = false;
});

$("logout-all").addEventListener("click", async () => {
  try {
    await session.post("/auth/logout-all", {});
    session.token = null;
    location.hash = "#/";
    location.reload();
  } catch (err) {
    showError($("everywhere-error"), err);
  }
});

// -- live events, by topic -------------------------------------------------------------------
const reloadTicket = keyedDebounce((number) => {
  if (current === number) loadTicket(number);
});
const reloadList = keyedDebounce(() => {
  if (!$("list-view").hidden) loadTickets();
});
const reloadActivity = keyedDebounce(() => {
  if (!$("activity-view").hidden) loadActivity(true);
});
store.on("ticket.", (event) => {
  const number = (event.data || {}).number;
  if (number) reloadTicket(number);
  reloadList("list");
});
store.on("", () => reloadActivity("activity"));
store.on("change.", (event) => {
  const state = store.changes.get(event.change_id || (event.data || {}).change_id);
  if (state && ["applied", "failed", "rolled_back"].includes(state.status)) {
    servicePage.changed(state);
  }
});

runPage({
  session,
  store,
  refuse: (who) =>
    who.role !== "customer" || who.account_id === null
      ? "SiteControl is for customers; support staff use SiteTools at /console."
      : null,
  enter: async (who) => {
    me = who;
    $("nav").hidden = false;
    // The catalog and the account at once: the first view needs both.
    const [c] = await Promise.all([session.get("/changes/catalog").catch(() => null), loadAccount()]);
    catalog.clear();
    for (const k of c ? c.kinds : []) catalog.set(k.kind, k);
    await show();
  },
  refresh,
  show,
  leave: () => {
    me = null;
    $("nav").hidden = true;
    clear($("changes")); // nothing of one customer's session stays for the next
    $("changes-card").hidden = true;
    store.changes.clear();
  },
});
