// SiteTools, the agent console: presence, the tier's queue, my tickets, one ticket with every
// message (internal notes too) and its actions, and the account's 360° view and timeline beside
// it, all kept current by the live event stream.
import {
  Session, clear, el, onSubmit, route, showError, statusBadge,
  runPage, ticketHref, when,
} from "./common.js";

const $ = (id) => document.getElementById(id);
const session = new Session("console");
const MINE = "/tickets?owner=me&status=open&status=pending_customer&status=pending_change&limit=100";
let me = null;
let current = null; // the ticket number on screen
let ticket = null; // ...and its last answer
let accountId = null; // the account beside it
let timelineBefore = null;
let callAccount = null; // a ringing call's account, shown until its banner is dismissed

async function refresh() {
  await Promise.all([loadQueue(), loadMine(), show()]);
}

function ticketItem(t) {
  return el("li", { dataset: { number: t.number } },
    el("a", { href: ticketHref(t.number) },
      el("span", { class: "mono" }, t.number), " ", el("span", { class: "subject" }, t.subject)),
    el("div", { class: "meta" }, statusBadge(t.status), " ",
      el("span", { class: `prio prio-${t.priority}` }, t.priority), " ", t.category,
      t.resolution_due ? ` · due ${when(t.resolution_due)}` : ""),
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
  if (page === "tickets" && number) {
    if (current !== number) {
      current = number;
      showError($("action-error"), null);
      showError($("message-error"), null);
    }
    await loadTicket(number);
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
    $("take").hidden = t.owner !== null && t.owner.agent_id === me.agent_id;
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
        ),
      ),
    );
    await loadAccount(callAccount ?? t.account_id);
  } catch (err) {
    if (current !== number) return;
    ticket = null;
    $("ticket-body").hidden = true;
    $("ticket-empty").hidden = true;
    showError($("ticket-error"), err);
  }
}

async function loadAccount(id) {
  try {
    const [a, tl] = await Promise.all([
      session.get(`/accounts/${id}`),
      session.get(`/accounts/${id}/timeline?limit=30`),
    ]);
    accountId = id;
    showError($("account-error"), null);
    $("account-empty").hidden = true;
    $("account-body").hidden = false;
    $("account-title").textContent = `Account ${a.code}`;
    clear($("account-name"), a.name, " · plan ", a.plan, " · ", statusBadge(a.status));
    fill($("contacts"), a.contacts, (c) =>
      el("li", {}, c.name, c.is_primary ? " (primary)" : "", " · ", c.email,
        c.phone ? ` · ${c.phone}` : ""));
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
    clear($("timeline"), tl.items.map(timelineItem));
    timelineBefore = tl.next_before;
    $("timeline-more").hidden = timelineBefore === null;
  } catch (err) {
    showError($("account-error"), err);
  }
}

function fill(list, items, render) {
  clear(list, items.map(render));
  if (!items.length) list.append(el("li", { class: "muted" }, "none"));
}

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
  await session.post(`/tickets/${encodeURIComponent(current)}/messages`, {
    body: String(data.get("body")),
    visibility,
    pending_customer: visibility === "public" && data.get("pending_customer") === "on",
  }, { "Idempotency-Key": crypto.randomUUID() });
  $("message-form").reset();
  await refresh();
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
  await refresh();
});

// A call rings for me (the telephony webhook's call.started): the caller's account opens
// beside whatever ticket is on screen, with who is calling and their open ticket.
function callStarted(e) {
  if (!me || e.topic !== "call.started" || e.agent_id !== me.agent_id) return;
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
    $("timeline").append(...tl.items.map(timelineItem));
    timelineBefore = tl.next_before;
    $("timeline-more").hidden = timelineBefore === null;
  } catch (err) {
    showError($("account-error"), err);
  }
});

runPage({
  session,
  refuse: (who) =>
    who.role !== "agent" || who.tier === null
      ? "SiteTools is for support agents; customers use SiteControl at /portal."
      : null,
  enter: async (who) => {
    me = who;
    $("presence-form").hidden = false;
    $("tier-label").textContent = `agent console · level ${me.tier}`;
    $("queue-title").textContent = `Level ${me.tier} queue`;
    await refresh();
  },
  refresh,
  show,
  onEvent: callStarted,
  leave: () => {
    me = null;
    $("presence-form").hidden = true;
  },
});
