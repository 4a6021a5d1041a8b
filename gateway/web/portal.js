// SiteControl, the customer portal: log in, the account's tickets and services, open a ticket,
// read and answer one, with live updates from the event stream.
import {
  Session, clear, el, onSubmit, route, showError, statusBadge,
  runPage, ticketHref, when,
} from "./common.js";

const $ = (id) => document.getElementById(id);
const session = new Session("portal");
let me = null;
let current = null; // the ticket number on screen

function refresh() {
  loadAccount();
  show();
}

async function show() {
  const [page, number] = route();
  if (page === "tickets" && number) {
    current = number;
    $("list-view").hidden = true;
    $("ticket-view").hidden = false;
    await loadTicket(number);
  } else {
    current = null;
    $("ticket-view").hidden = true;
    $("list-view").hidden = false;
    await loadTickets();
  }
}

async function loadTickets() {
  try {
    const page = await session.get("/tickets?limit=100");
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
          ),
        ),
    );
  } catch (err) {
    if (current !== number) return;
    $("ticket-body").hidden = true;
    showError($("ticket-error"), err);
  }
}

async function loadAccount() {
  try {
    const a = await session.get(`/accounts/${me.account_id}`);
    showError($("account-error"), null);
    $("account-name").textContent = `${a.name} (${a.code}) · plan ${a.plan} · ${a.status}`;
    clear(
      $("services"),
      a.services.map((s) =>
        el("li", {}, el("span", { class: "kind" }, s.kind), " ", el("span", { class: "mono" }, s.name),
          " ", statusBadge(s.status)),
      ),
    );
    if (!a.services.length) $("services").append(el("li", { class: "muted" }, "No services."));
  } catch (err) {
    showError($("account-error"), err);
  }
}

onSubmit($("new-ticket"), $("new-error"), async (data) => {
  const ticket = await session.post(
    "/tickets",
    { subject: String(data.get("subject")), body: String(data.get("body")) },
    { "Idempotency-Key": crypto.randomUUID() },
  );
  $("new-ticket").reset();
  location.hash = ticketHref(ticket.number);
});

onSubmit($("reply-form"), $("reply-error"), async (data) => {
  const number = current;
  await session.post(
    `/tickets/${encodeURIComponent(number)}/messages`,
    { body: String(data.get("body")) },
    { "Idempotency-Key": crypto.randomUUID() },
  );
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

runPage({
  session,
  refuse: (who) =>
    who.role !== "customer" || who.account_id === null
      ? "SiteControl is for customers; support staff use SiteTools at /console."
      : null,
  enter: async (who) => {
    me = who;
    await Promise.all([loadAccount(), show()]);
  },
  refresh,
  show,
  leave: () => {
    me = null;
  },
});
