// SiteTools, the agent console: presence, the tier's queue, my tickets, one ticket with every
// message (internal notes too) and its actions, and the account's 360° view and timeline beside
// it, all kept current by the live event stream; for administrators also the desk's sent mail
// (#/mail, #/mail/<id>).
import { Session } from "../lib/api.js";
import {
  clear, countdown, download, el, onSubmit, showError, since, statusBadge, when,
} from "../lib/dom.js";
import { route, runPage, ticketHref } from "../lib/page.js";
import { Store, keyedDebounce } from "../lib/store.js";
import { fileList, sendWithFiles } from "../lib/files.js";
import { TicketTools } from "./ticket_tools.js";
import { showSearch, startSearch } from "./search.js";

const $ = (id) => document.getElementById(id);
const session = new Session("console");
const store = new Store();
let tools = null; // the change request and its progress beside the ticket (ticket_tools.js)
const MINE = "/tickets?owner=me&status=open&status=pending_customer&status=pending_change&limit=100";
let me = null;
let current = null; // the ticket number on screen
let ticket = null; // ...and its last answer
let accountId = null; // the account beside it
let lastAccount = null; // ...its last answer (services for the change request)
let shownEntries = new Set(); // the ids of its timeline entries on screen
let timelineBefore = null;
let callAccount = null; // a ringing call's account, shown until its banner is dismissed
const MAIL_PAGE = 50;
let mailFilter = { status: "", recipient: "" };
let mailBefore = null; // the sent-mail list's next page
let mailPages = 0; // ...how many pages of it are on screen
let mailSeq = 0; // the latest list load (an older answer that comes later is dropped)
let mailMore = false; // a "more" load is under way
let mailSelected = null; // the sent mail shown beside the list

const isAdmin = () => me !== null && me.role === "admin";

async function refresh() {
  // Administrators have no tier: no queue, no tickets of their own.
  await Promise.all(me.tier !== null ? [loadQueue(), loadMine(), show()] : [show()]);
}

// A ticket in a list: its priority and state, how long it has waited, and the SLA due time that
// matters now (the first response until there is one, then the resolution), counting down live.
function ticketItem(t) {
  const settled = t.status === "resolved" || t.status === "closed";
  const due = settled ? null : !t.first_responded_at && t.first_response_due
    ? countdown(t.first_response_due, "first response")
    : t.resolution_due ? countdown(t.resolution_due, "resolution") : null;
  return el("li", { dataset: { number: t.number } },
    el("a", { href: ticketHref(t.number) },
      el("span", { class: "mono" }, t.number), " ", el("span", { class: "subject" }, t.subject)),
    el("div", { class: "meta" }, statusBadge(t.status), " ",
      el("span", { class: `prio prio-${t.priority}` }, t.priority), " ", t.category, " · ",
      since(t.created_at, t.owner ? "open" : "waiting"), t.sla_breached_at ? el("span", { class: "badge breach" }, "SLA breached") : ""),
    due ? el("div", { class: "meta" }, due) : "",
  );
}

async function loadQueue() {
  try {
    const q = await session.get(`/queues/${me.tier}`);
    showError($("queue-error"), null);
    clear($("queue"), q.waiting.map(ticketItem));
    if (!q.waiting.length) $("queue").append(el("li", { class: "muted" }, "Nobody is waiting."));
    const mine = q.agents.find((a) => a.agent_id === me.agent_id);
    if (mine && document.activeElement !== $("presence")) $("presence").value = mine.presence;
    const others = q.agents.filter((a) => a.agent_id !== me.agent_id);
    const chosen = $("handover-agent").value;
    clear($("handover-agent"), others.map((a) =>
      el("option", { value: String(a.agent_id) }, `${a.name} (${a.presence}, ${a.owned} open)`)));
    if (others.some((a) => String(a.agent_id) === chosen)) $("handover-agent").value = chosen;
    const online = q.agents.filter((a) => a.presence === "online").length;
    $("queue-agents").textContent = `${online} of ${q.agents.length} agents online`;
  } catch (err) {
    showError($("queue-error"), err);
  }
}

async function loadMine() {
  try {
    const page = await session.get(MINE);
    showError($("mine-error"), null);
    clear($("mine"), page.items.map(ticketItem));
    if (!page.items.length) $("mine").append(el("li", { class: "muted" }, "Nothing assigned."));
  } catch (err) {
    showError($("mine-error"), err);
  }
}

async function show() {
  const [page, number] = route();
  const mail = page === "mail" && isAdmin();
  const search = page === "search";
  $("desk-view").hidden = mail || search;
  $("mail-view").hidden = !mail;
  $("search-view").hidden = !search;
  if (search) {
    current = ticket = null;
    await showSearch(session, number || "");
    return;
  }
  for (const [id, on] of [["nav-tickets", !mail], ["nav-mail", mail]]) {
    if (on) $(id).setAttribute("aria-current", "page");
    else $(id).removeAttribute("aria-current");
  }
  if (mail) {
    current = ticket = null;
    await showMail(number);
  } else if (page === "tickets" && number) {
    if (current !== number) {
      current = number;
      showError($("action-error"), null);
      showError($("message-error"), null);
    }
    await loadTicket(number);
  } else if (page === "accounts" && /^\d+$/.test(number || "")) {
    // An account found by search: its 360° view beside an empty ticket pane.
    current = ticket = null;
    $("ticket-body").hidden = true;
    $("ticket-empty").hidden = false;
    showError($("ticket-error"), null);
    await loadAccount(Number(number));
  } else {
    current = ticket = null;
    $("ticket-body").hidden = true;
    $("ticket-empty").hidden = false;
    showError($("ticket-error"), null);
  }
}

async function loadTicket(number) {
  try {
    const t = await session.get(`/tickets/${encodeURIComponent(number)}`);
    if (current !== number) return;
    ticket = t;
    showError($("ticket-error"), null);
    $("ticket-empty").hidden = true;
    $("ticket-body").hidden = false;
    clear($("ticket-title"), el("span", { class: "mono" }, t.number), " ", t.subject);
    clear($("ticket-meta"), statusBadge(t.status), " ",
      el("span", { class: `prio prio-${t.priority}` }, t.priority),
      ` · ${t.category} · level ${t.tier} · via ${t.channel} · `,
      t.owner ? `owner ${t.owner.name}` : "unowned",
      t.resolution_due ? ` · resolve by ${when(t.resolution_due)}` : "",
      t.sla_breached_at ? el("span", { class: "badge breach" }, "SLA breached") : "");
    const closed = t.status === "resolved" || t.status === "closed";
    $("take").hidden = me.agent_id === null || (t.owner !== null && t.owner.agent_id === me.agent_id);
    $("take").disabled = closed;
    $("resolve").disabled = closed;
    // Hand-over stays within a tier; to another tier a ticket goes by escalation.
    $("handover-form").hidden = closed || t.tier !== me.tier || !$("handover-agent").options.length;
    clear(
      $("messages"),
      t.messages.map((m) =>
        el("li", { class: `message ${m.visibility === "internal" ? "internal" : m.direction === "inbound" ? "from-customer" : "from-staff"}` },
          el("div", { class: "message-head" },
            el("strong", {}, m.author),
            m.visibility === "internal" ? "" : ` · ${m.channel}`, ` · ${when(m.created_at)}`,
            m.visibility === "internal" ? el("span", { class: "badge internal" }, "internal note") : ""),
          el("div", { class: "message-body" }, m.body),
          fileList(session, t.number, m.attachments || []),
        ),
      ),
    );
    // The account beside it is loaded when it is another one; after that, live events keep it.
    const wanted = callAccount ?? t.account_id;
    if (wanted !== accountId || lastAccount === null) await loadAccount(wanted);
    if (tools) tools.show(t, lastAccount);
  } catch (err) {
    if (current !== number) return;
    ticket = null;
    $("ticket-body").hidden = true;
    $("ticket-empty").hidden = true;
    showError($("ticket-error"), err);
  }
}

// The account's 360° view and its timeline: both when the account is new on screen.
async function loadAccount(id) {
  try {
    const [a, tl] = await Promise.all([
      session.get(`/accounts/${id}`),
      session.get(`/accounts/${id}/timeline?limit=30`),
    ]);
    accountId = id;
    showAccount(a);
    shownEntries = new Set(tl.items.map((e) => e.id));
    clear($("timeline"), tl.items.map(timelineItem));
    timelineBefore = tl.next_before;
    $("timeline-more").hidden = timelineBefore === null;
  } catch (err) {
    showError($("account-error"), err);
  }
}

// Only the 360° view (its open and past tickets, recent changes, contacts): after an event
// that changes them. The timeline follows the stream by itself (addEntry).
async function loadAccountSummary(id) {
  try {
    const a = await session.get(`/accounts/${id}`);
    if (id === accountId) showAccount(a);
  } catch (err) {
    showError($("account-error"), err);
  }
}

// A live event that is a timeline entry of the account on screen goes on top of its timeline,
// as GET /accounts/{id}/timeline would show it: no request.
function addEntry(event) {
  if (!event.timeline_id || shownEntries.has(event.timeline_id)) return;
  if (event.visibility === "internal" && me.role === "customer") return;
  shownEntries.add(event.timeline_id);
  $("timeline").prepend(timelineItem({
    id: event.timeline_id, kind: event.kind || event.topic, summary: event.summary,
    actor: event.actor, visibility: event.visibility, created_at: event.at,
    ticket_number: (event.data || {}).number || null,
  }));
}

function showAccount(a) {
  try {
    lastAccount = a;
    showError($("account-error"), null);
    $("account-empty").hidden = true;
    $("account-body").hidden = false;
    $("account-title").textContent = `Account ${a.code}`;
    clear($("account-name"), a.name, " · plan ", a.plan, " · ", statusBadge(a.status));
    fill($("contacts"), a.contacts, (c) =>
      el("li", {}, c.name, c.is_primary ? " (primary)" : "", " · ", c.email,
        c.phone ? ` · ${c.phone}` : "",
        c.undeliverable ? el("span", { class: "badge undeliverable", title: c.undeliverable },
          "mail undeliverable") : ""));
    fill($("services"), a.services, (s) =>
      el("li", {}, el("span", { class: "kind" }, s.kind), " ", el("span", { class: "mono" }, s.name),
        " ", statusBadge(s.status), s.host ? ` on ${s.host}` : ""));
    const link = (t) =>
      el("li", {}, el("a", { href: ticketHref(t.number), class: "mono" }, t.number), " ",
        t.subject, " ", statusBadge(t.status));
    fill($("open-tickets"), a.open_tickets, link);
    fill($("past-tickets"), a.past_tickets, link);
    fill($("changes"), a.recent_changes, (c) =>
      el("li", {}, el("span", { class: "kind" }, c.kind), " ", statusBadge(c.status), " ",
        when(c.created_at), c.ticket_number ? ` · ${c.ticket_number}` : "",
        c.error ? el("div", { class: "error-text" }, c.error) : ""));
  } catch (err) {
    showError($("account-error"), err);
  }
}

function fill(list, items, render) {
  clear(list, items.map(render));
  if (!items.length) list.append(el("li", { class: "muted" }, "none"));
}

// -- sent mail (administrators) ----------------------------------------------------------------
const MAIL_HEADERS = ["From", "To", "Subject", "Date", "Message-ID", "In-Reply-To", "Auto-Submitted"];
const mailHref = (id) => `#/mail/${id}`;

function mailQuery(before) {
  const q = new URLSearchParams({ limit: String(MAIL_PAGE) });
  if (mailFilter.status) q.set("status", mailFilter.status);
  if (mailFilter.recipient) q.set("recipient", mailFilter.recipient);
  if (before !== null) q.set("before", String(before));
  return `/mail/outgoing?${q}`;
}

function mailRow(m) {
  const title = m.sent_at ? `sent ${when(m.sent_at)}`
    : m.next_attempt_at ? `next attempt ${when(m.next_attempt_at)}` : null;
  return el("tr", {
    dataset: { id: String(m.id) },
    class: m.id === mailSelected ? "selected" : null,
    onclick: (e) => {
      if (!e.target.closest("a")) location.hash = mailHref(m.id);
    },
  },
  el("td", { class: "nowrap", title }, when(m.created_at)),
  el("td", { class: "nowrap" }, el("span", { class: "kind" }, m.kind)),
  el("td", { class: "mono" }, m.recipient),
  el("td", {}, el("a", { href: mailHref(m.id) }, m.subject || "(no subject)")),
  el("td", { class: "nowrap" }, m.ticket_number
    ? el("a", { href: ticketHref(m.ticket_number), class: "mono" }, m.ticket_number) : ""),
  el("td", {}, statusBadge(m.status)),
  el("td", { class: "num" }, String(m.attempts)),
  el("td", { class: "answer" }, m.last_answer));
}

// The list's first page (again): on entering the view, a new filter, a live event. Pages
// fetched with "more" are kept until the filter changes: a live event does not fold them.
async function loadMail({ force = false } = {}) {
  if (!force && (mailPages > 1 || mailMore)) return;
  const seq = ++mailSeq;
  try {
    const page = await session.get(mailQuery(null));
    if (seq !== mailSeq) return;
    showError($("mail-error"), null);
    clear($("mail-rows"), page.items.map(mailRow));
    $("mail-none").hidden = page.items.length > 0;
    mailBefore = page.next_before;
    mailPages = 1;
    $("mail-more").hidden = mailBefore === null;
  } catch (err) {
    if (seq === mailSeq) showError($("mail-error"), err);
  }
}

async function showMail(id) {
  const wanted = id !== undefined && /^[0-9]{1,12}$/.test(id) ? Number(id) : null;
  if (wanted !== mailSelected) {
    mailSelected = wanted;
    showError($("mail-detail-error"), null);
    showError($("mail-raw-error"), null);
    for (const tr of $("mail-rows").rows) {
      tr.classList.toggle("selected", tr.dataset.id === String(wanted));
    }
  }
  await Promise.all([loadMail(), loadMailDetail(wanted)]);
}

function header(headers, name) {
  const key = Object.keys(headers).find((k) => k.toLowerCase() === name.toLowerCase());
  return key === undefined ? null : headers[key];
}

async function loadMailDetail(id) {
  if (id === null) {
    $("mail-detail").hidden = true;
    $("mail-empty").hidden = false;
    $("mail-html").removeAttribute("srcdoc");
    return;
  }
  try {
    const d = await session.get(`/mail/outgoing/${id}`);
    if (mailSelected !== id) return;
    const m = d.mail;
    showError($("mail-detail-error"), null);
    $("mail-empty").hidden = true;
    $("mail-detail").hidden = false;
    $("mail-detail-title").textContent = m.subject || "(no subject)";
    clear($("mail-detail-meta"), statusBadge(m.status), " ", el("span", { class: "kind" }, m.kind),
      ` · to ${m.recipient} · ${m.attempts} attempt${m.attempts === 1 ? "" : "s"}`,
      m.sent_at ? ` · sent ${when(m.sent_at)}` : "",
      m.status === "queued" && m.next_attempt_at ? ` · next attempt ${when(m.next_attempt_at)}` : "",
      m.ticket_number
        ? [" · ", el("a", { href: ticketHref(m.ticket_number), class: "mono" }, m.ticket_number)]
        : "",
      m.last_answer ? el("div", { class: "answer" }, `Last answer: ${m.last_answer}`) : "");
    clear($("mail-headers"), MAIL_HEADERS.flatMap((name) => {
      const value = header(d.headers, name);
      return value === null ? [] : [el("dt", {}, name), el("dd", {}, value)];
    }));
    $("mail-text").textContent = d.text;
    // The HTML only ever in the sandboxed frame (sandbox="": no scripts, an opaque origin),
    // never in this page; set again only when it changed, so a live refresh does not reload it.
    const frame = $("mail-html");
    $("mail-no-html").hidden = d.html !== null;
    frame.hidden = d.html === null;
    frame.setAttribute("sandbox", "");
    if (d.html === null) frame.removeAttribute("srcdoc");
    else if (frame.getAttribute("srcdoc") !== d.html) frame.setAttribute("srcdoc", d.html);
  } catch (err) {
    if (mailSelected !== id) return;
    $("mail-detail").hidden = true;
    $("mail-empty").hidden = true;
    $("mail-html").removeAttribute("srcdoc");
    showError($("mail-detail-error"), err);
  }
}

function forgetMail() {
  mailFilter = { status: "", recipient: "" };
  mailBefore = null;
  mailPages = 0;
  mailSeq += 1;
  mailSelected = null;
  $("mail-filter").reset();
  clear($("mail-rows"));
  $("mail-none").hidden = true;
  $("mail-more").hidden = true;
  $("mail-detail").hidden = true;
  $("mail-empty").hidden = false;
  $("mail-html").removeAttribute("srcdoc");
  clear($("mail-headers"));
  $("mail-text").textContent = "";
}

onSubmit($("mail-filter"), $("mail-error"), async (data) => {
  mailFilter = {
    status: String(data.get("status") || ""),
    recipient: String(data.get("recipient") || "").trim(),
  };
  await loadMail({ force: true });
});

$("mail-more").addEventListener("click", async () => {
  if (mailBefore === null || mailMore) return;
  const seq = mailSeq;
  mailMore = true;
  $("mail-more").disabled = true;
  try {
    const page = await session.get(mailQuery(mailBefore));
    if (seq !== mailSeq) return; // the filter changed meanwhile
    $("mail-rows").append(...page.items.map(mailRow));
    mailBefore = page.next_before;
    mailPages += 1;
    $("mail-more").hidden = mailBefore === null;
  } catch (err) {
    showError($("mail-error"), err);
  } finally {
    mailMore = false;
    $("mail-more").disabled = false;
  }
});

// The raw route needs the token, which a plain link can not send: fetch it, offer the Blob.
$("mail-raw").addEventListener("click", async () => {
  const id = mailSelected;
  if (id === null) return;
  $("mail-raw").disabled = true;
  showError($("mail-raw-error"), null);
  try {
    download(await session.blob(`/mail/outgoing/${id}/raw`, "message/rfc822"), `sent-${id}.eml`);
  } catch (err) {
    showError($("mail-raw-error"), err);
  } finally {
    $("mail-raw").disabled = false;
  }
});

function timelineItem(e) {
  return el("li", { class: e.visibility === "internal" ? "internal" : "" },
    el("div", { class: "meta" }, when(e.created_at), " · ", e.kind,
      e.ticket_number ? ` · ${e.ticket_number}` : "", e.actor ? ` · ${e.actor}` : ""),
    el("div", {}, e.summary));
}

async function act(op, body) {
  const number = current;
  showError($("action-error"), null);
  try {
    await session.post(`/tickets/${encodeURIComponent(number)}/${op}`, body,
      { "Idempotency-Key": crypto.randomUUID() });
    await refresh();
  } catch (err) {
    showError($("action-error"), err);
  }
}

async function button(id, op) {
  const b = $(id);
  b.disabled = true;
  try {
    await act(op, op === "resolve" ? {} : undefined);
  } finally {
    b.disabled = false;
    if (ticket) loadTicket(ticket.number);
  }
}

$("take").addEventListener("click", () => button("take", "take"));
$("resolve").addEventListener("click", () => button("resolve", "resolve"));

onSubmit($("handover-form"), $("action-error"), async (data) => {
  await session.post(`/tickets/${encodeURIComponent(current)}/handover`,
    { agent_id: Number(data.get("agent_id")) }, { "Idempotency-Key": crypto.randomUUID() });
  await refresh();
});

onSubmit($("escalate-form"), $("action-error"), async (data) => {
  await session.post(`/tickets/${encodeURIComponent(current)}/escalate`,
    { reason: String(data.get("reason")) }, { "Idempotency-Key": crypto.randomUUID() });
  $("escalate-form").reset();
  await refresh();
});

onSubmit($("message-form"), $("message-error"), async (data, submitter) => {
  const visibility = submitter && submitter.value === "internal" ? "internal" : "public";
  const number = current;
  await sendWithFiles(session, `/tickets/${encodeURIComponent(number)}/messages`, {
    body: String(data.get("body")),
    visibility,
    pending_customer: visibility === "public" && data.get("pending_customer") === "on",
  }, $("message-files").files);
  $("message-form").reset();
  await loadTicket(number); // the lists hear of it from the stream
});

onSubmit($("call-form"), $("call-error"), async (data) => {
  await session.post(`/tickets/${encodeURIComponent(current)}/calls`, {
    number: String(data.get("number")),
    direction: String(data.get("direction")),
    duration_seconds: Math.round(Number(data.get("minutes")) * 60),
    notes: String(data.get("notes")),
    visibility: data.get("public") === "on" ? "public" : "internal",
  }, { "Idempotency-Key": crypto.randomUUID() });
  $("call-form").reset();
  $("call-log").open = false;
  await loadTicket(current);
});

// A call rings for me (the telephony webhook's call.started): the caller's account opens
// beside whatever ticket is on screen, with who is calling and their open ticket.
function callStarted(e) {
  if (!me || me.agent_id === null || e.topic !== "call.started" || e.agent_id !== me.agent_id) {
    return;
  }
  const who = e.contact ? `${e.contact.name} (${e.number})` : e.number || "a withheld number";
  $("call-banner-text").textContent =
    `Call from ${who}${e.account ? ` · ${e.account.name} (${e.account.code})` : " · unknown number"}`;
  clear($("call-banner-ticket"), e.open_ticket
    ? el("a", { href: ticketHref(e.open_ticket), class: "mono" }, e.open_ticket) : "");
  $("call-banner").hidden = false;
  callAccount = e.account ? e.account.id : null;
  if (callAccount !== null) loadAccount(callAccount);
}

$("call-banner-close").addEventListener("click", () => {
  $("call-banner").hidden = true;
  callAccount = null;
  if (ticket) loadAccount(ticket.account_id);
});

$("presence").addEventListener("change", async () => {
  showError($("top-error"), null);
  try {
    const agent = await session.put("/agents/me/presence", { presence: $("presence").value });
    $("presence").value = agent.presence;
    await loadQueue();
  } catch (err) {
    showError($("top-error"), err);
  }
});
$("presence-form").addEventListener("submit", (e) => e.preventDefault());

$("timeline-more").addEventListener("click", async () => {
  if (accountId === null || timelineBefore === null) return;
  try {
    const tl = await session.get(`/accounts/${accountId}/timeline?limit=30&before=${timelineBefore}`);
    const older = tl.items.filter((e) => !shownEntries.has(e.id));
    older.forEach((e) => shownEntries.add(e.id));
    $("timeline").append(...older.map(timelineItem));
    timelineBefore = tl.next_before;
    $("timeline-more").hidden = timelineBefore === null;
  } catch (err) {
    showError($("account-error"), err);
  }
});

// -- live events, by topic: each reaches only the lists and panels it concerns -------------
const reload = keyedDebounce((what) => {
  if (!me) return;
  if (what === "queue" && me.tier !== null) loadQueue();
  else if (what === "mine" && me.tier !== null) loadMine();
  else if (what === "ticket" && current) loadTicket(current);
  else if (what === "account" && accountId !== null) loadAccountSummary(accountId);
});
const listed = (list, number) => number !== undefined && number !== null &&
  $(list).querySelector(`[data-number="${CSS.escape(String(number))}"]`) !== null;
// Events that change what the 360° view lists (its open and past tickets, recent changes,
// contacts); a message, a note or an SLA warning does not.
const SUMMARY = /^(ticket\.(created|resolved|closed|reopened|escalated)|change\.|mail\.|call\.ended)/;
store.on("", (event) => {
  if (event.account_id !== accountId) return;
  addEntry(event);
  if (SUMMARY.test(String(event.topic))) reload("account");
});
store.on("ticket.", (event) => {
  const d = event.data || {};
  // The queue holds the level's unowned tickets: it changes when one arrives, leaves or is
  // taken, not when an owned ticket is talked about.
  const waiting = d.tier === me.tier && (d.owner_agent_id === null || d.owner_agent_id === undefined);
  if (waiting || listed("queue", d.number)) reload("queue");
  if (me.agent_id !== null && (d.owner_agent_id === me.agent_id || listed("mine", d.number))) {
    reload("mine");
  }
  if (d.number && d.number === current) reload("ticket");
});
store.on("change.", (event) => {
  const d = event.data || {};
  if (d.number && d.number === current) reload("ticket");
});
store.on("call.", (event) => callStarted(event));

runPage({
  session,
  store,
  refuse: (who) =>
    who.role === "admin" || (who.role === "agent" && who.tier !== null)
      ? null
      : "SiteTools is for support agents and administrators; customers use SiteControl at /portal.",
  enter: async (who) => {
    me = who;
    const admin = isAdmin();
    // Sent mail is for administrators (its API answers 403 to anyone else); an administrator
    // has no tier, so no queue, no presence and no tickets of their own.
    $("views").hidden = !admin;
    $("nav-mail").hidden = !admin;
    $("lists").hidden = admin;
    $("desk-view").classList.toggle("no-lists", admin);
    $("presence-form").hidden = admin;
    $("tier-label").textContent = admin ? "administrator" : `agent console · level ${me.tier}`;
    if (!admin) $("queue-title").textContent = `Level ${me.tier} queue`;
    $("ticket-empty").textContent = admin
      ? "Open a ticket from Sent mail: each mail links to its ticket."
      : "Choose a ticket from the queue or your list.";
    tools = await TicketTools.start(session, store);
    startSearch(session);
    await refresh();
  },
  refresh,
  show,
  leave: () => {
    me = null;
    $("presence-form").hidden = true;
    $("views").hidden = true;
    $("nav-mail").hidden = true;
    $("mail-view").hidden = true;
    $("desk-view").hidden = false;
    forgetMail();
  },
});
