// SiteTools' search box: tickets and accounts from one query (ticket number, account code or
// name, contact, e-mail, phone, domain, and the text of subjects and messages), ranked, paged.
import { clear, el, showError, statusBadge } from "../lib/dom.js";
import { ticketHref } from "../lib/page.js";

const $ = (id) => document.getElementById(id);
const MATCHED = { code: "code", name: "name", contact_name: "contact", email: "e-mail",
  phone: "phone", service: "service" };
let next = null;
let shown = "";

export function startSearch(session) {
  $("search-form").hidden = false;
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const q = $("search-q").value.trim();
    if (q) location.hash = `#/search/${encodeURIComponent(q)}`;
  });
  $("search-more").addEventListener("click", () => load(session, shown, next));
}

export async function showSearch(session, q) {
  $("search-q").value = q;
  clear($("search-title"), "Search: ", el("span", { class: "mono" }, q));
  clear($("search-accounts"));
  clear($("search-tickets"));
  shown = q;
  await load(session, q, null);
}

async function load(session, q, cursor) {
  const params = new URLSearchParams({ q, limit: "25" });
  if (cursor) params.set("cursor", cursor);
  try {
    const found = await session.get(`/search?${params}`);
    if (q !== shown) return;
    showError($("search-error"), null);
    $("search-accounts").append(...(found.accounts || []).map((a) =>
      el("li", { dataset: { accountId: String(a.id) } },
        el("a", { href: `#/accounts/${a.id}` }, el("strong", {}, a.name), " ",
          el("span", { class: "mono" }, a.code)), " ", statusBadge(a.status),
        el("span", { class: "muted" }, ` · ${MATCHED[a.matched] || a.matched}: `),
        el("span", { class: "mono" }, a.matched_value))));
    $("search-tickets").append(...(found.tickets || []).map((t) =>
      el("li", { dataset: { number: t.number } },
        el("a", { href: ticketHref(t.number) }, el("span", { class: "mono" }, t.number), " ",
          el("span", { class: "subject" }, t.subject)),
        el("div", { class: "meta" }, statusBadge(t.status), " ",
          el("span", { class: `prio prio-${t.priority}` }, t.priority), ` · ${t.account_name} (${t.account_code})`,
          ` · found in its ${t.matched}`),
        t.snippet && t.snippet.length ? el("div", { class: "snippet" },
          t.snippet.map((p) => (p.hit ? el("mark", {}, p.text) : p.text))) : "")));
    if (!cursor && !(found.accounts || []).length) {
      $("search-accounts").append(el("li", { class: "muted" }, "No account matches."));
    }
    if (!cursor && !(found.tickets || []).length) {
      $("search-tickets").append(el("li", { class: "muted" }, "No ticket matches."));
    }
    next = found.next_cursor || null;
    $("search-more").hidden = !next;
  } catch (err) {
    showError($("search-error"), err);
  }
}
