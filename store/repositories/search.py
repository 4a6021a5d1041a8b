"""The queries of full-text search, one form per backend over the index migration 0008 built:
PostgreSQL's tsvector columns and pg_trgm indexes, SQLite's FTS5 tables. Every user term is a
bound parameter, made safe for its operator by store/search.py."""

# The SQL here is put together from constant fragments; user text goes in as parameters only.
# ruff: noqa: S608

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, text

from store.models import Account, Ticket
from store.repositories.base import Repository
from store.search import SearchQuery, fts5_match, fts5_substring, like_pattern, pg_tsquery

# A ticket's score: what matched decides the band, the database's rank (0..1) the order in it.
NUMBER, SUBJECT, MESSAGE, CONTACT = 100.0, 10.0, 5.0, 2.0
CONTACT_FIELDS = "('contact_name', 'email', 'phone')"
# ts_headline's options: the hits between STX and ETX, as SQLite's highlight() marks them.
MARK, UNMARK = "\x02", "\x03"
PG_WHOLE = f'HighlightAll=true, StartSel="{MARK}", StopSel="{UNMARK}"'
PG_SNIPPET = f'MaxWords=24, MinWords=10, ShortWord=2, StartSel="{MARK}", StopSel="{UNMARK}"'


@dataclass(frozen=True)
class TicketMatch:
    ticket_id: int
    matched: str  # number, subject, message, contact
    message_id: int | None  # the message that matched best (matched == "message")
    score: float


@dataclass(frozen=True)
class AccountMatch:
    account_id: int
    code: str
    name: str
    status: str
    field: str  # code, name, contact_name, email, phone, service
    value: str
    score: int


class SearchRepository(Repository):
    @property
    def _pg(self) -> bool:
        return self.session.get_bind().dialect.name == "postgresql"

    # -- tickets ----------------------------------------------------------------------------
    def tickets(
        self,
        q: SearchQuery,
        *,
        account_id: int | None,
        include_internal: bool,
        offset: int,
        limit: int,
    ) -> list[TicketMatch]:
        """The tickets the query finds, best first (each with what matched it best): by its
        number, all text terms in its subject or in one message (internal notes only when
        `include_internal`), or all field terms in its contact's name, e-mail or phone."""
        params: dict[str, Any] = {"off": offset, "lim": limit}
        branches: list[str] = []
        if q.ticket_ids:
            params["ids"] = list(q.ticket_ids)
            branches.append(f"SELECT id, 'number', NULL, {NUMBER} FROM tickets WHERE id IN :ids")
        if q.text_terms:
            branches += self._text_branches(q, params, include_internal)
        if q.field_terms:
            contacts = self._contacts_matching(q, params)
            branches.append(
                f"SELECT id, 'contact', NULL, {CONTACT} FROM tickets WHERE contact_id IN "
                f"({contacts})"
            )
        if not branches:
            return []
        tenant = ""
        if account_id is not None:
            params["acct"] = account_id
            tenant = "AND t.account_id = :acct"
        # Every branch is filtered by the tenant at the end, where its hits meet the ticket.
        sql = f"""
            WITH hits(ticket_id, matched, message_id, score) AS ({" UNION ALL ".join(branches)}),
            best AS (
                SELECT ticket_id, matched, message_id, score, row_number() OVER (
                    PARTITION BY ticket_id ORDER BY score DESC, message_id DESC) AS rn
                FROM hits
            )
            SELECT b.ticket_id, b.matched, b.message_id, b.score
            FROM best b JOIN tickets t ON t.id = b.ticket_id
            WHERE b.rn = 1 {tenant}
            ORDER BY b.score DESC, b.ticket_id DESC
            LIMIT :lim OFFSET :off
        """
        stmt = text(sql)
        if "ids" in params:
            stmt = stmt.bindparams(bindparam("ids", expanding=True))
        rows = self.session.execute(stmt, params)
        return [TicketMatch(int(r[0]), str(r[1]), r[2], float(r[3])) for r in rows]

    def _text_branches(
        self, q: SearchQuery, params: dict[str, Any], include_internal: bool
    ) -> list[str]:
        public = "" if include_internal else "AND m.visibility = 'public'"
        if self._pg:
            params["tsq"] = pg_tsquery(q.text_terms)
            query = "to_tsquery('english'::regconfig, :tsq)"
            # ts_rank's normalization 1 | 32: divided by 1 + log(length), then rank / (rank + 1).
            return [
                f"SELECT id, 'subject', CAST(NULL AS BIGINT), "
                f"{SUBJECT} + ts_rank(search_vector, {query}, 33) "
                f"FROM tickets WHERE search_vector @@ {query}",
                f"SELECT m.ticket_id, 'message', m.id, "
                f"{MESSAGE} + ts_rank(m.search_vector, {query}, 33) "
                f"FROM messages m WHERE m.search_vector @@ {query} {public}",
            ]
        params["m"] = fts5_match(q.text_terms)
        # bm25() is negative, the better the lower: -x / (1 - x) is 0..1, the better the higher.
        return [
            f"SELECT rowid, 'subject', NULL, "
            f"{SUBJECT} - bm25(search_tickets) / (1 - bm25(search_tickets)) "
            f"FROM search_tickets WHERE search_tickets MATCH :m",
            f"SELECT m.ticket_id, 'message', m.id, "
            f"{MESSAGE} - bm25(search_messages) / (1 - bm25(search_messages)) "
            f"FROM search_messages JOIN messages m ON m.id = search_messages.rowid "
            f"WHERE search_messages MATCH :m {public}",
        ]

    def _contacts_matching(self, q: SearchQuery, params: dict[str, Any]) -> str:
        """SELECT of the ids of contacts (on an account) whose name, e-mail or phone holds
        every field term."""
        parts = []
        for i, term in enumerate(q.field_terms):
            key = f"f{i}"
            if self._pg:
                params[key] = like_pattern(term)
                parts.append(
                    f"SELECT id FROM contacts WHERE account_id IS NOT NULL AND (name ILIKE :{key} "
                    f"OR email ILIKE :{key} OR phone ILIKE :{key})"
                )
            else:
                holds = self._fts_field(term, key, params)
                parts.append(
                    f"SELECT rowid >> 3 FROM search_accounts WHERE {holds} "
                    f"AND field IN {CONTACT_FIELDS}"
                )
        return " INTERSECT ".join(parts)

    @staticmethod
    def _fts_field(term: str, key: str, params: dict[str, Any]) -> str:
        """SQLite: the condition that a search_accounts row holds `term`. The trigram index
        finds substrings of three characters or more; a shorter one is looked for row by row."""
        if len(term) >= 3:
            params[key] = fts5_substring(term)
            return f"search_accounts MATCH :{key}"
        params[key] = term
        return f"instr(lower(value), :{key}) > 0"

    def snippets(self, q: SearchQuery, matches: list[TicketMatch]) -> dict[tuple[str, int], str]:
        """The text around each match, its hits between STX and ETX: a subject whole, a
        message's best passage; keyed by ("subject", ticket id) and ("message", message id)."""
        subjects = [m.ticket_id for m in matches if m.matched == "subject"]
        messages = [m.message_id for m in matches if m.matched == "message" and m.message_id]
        out: dict[tuple[str, int], str] = {}
        if not q.text_terms:
            return out
        if self._pg:
            query = "to_tsquery('english'::regconfig, :tsq)"
            params: dict[str, Any] = {"tsq": pg_tsquery(q.text_terms)}
            sqls = {
                "subject": (
                    subjects,
                    f"SELECT id, ts_headline('english'::regconfig, subject, {query}, :opts) "
                    "FROM tickets WHERE id IN :ids",
                    PG_WHOLE,
                ),
                "message": (
                    messages,
                    "SELECT id, ts_headline('english'::regconfig, left(body, 100000), "
                    f"{query}, :opts) FROM messages WHERE id IN :ids",
                    PG_SNIPPET,
                ),
            }
            for kind, (ids, sql, opts) in sqls.items():
                if ids:
                    stmt = text(sql).bindparams(bindparam("ids", expanding=True))
                    for key, marked in self.session.execute(
                        stmt, {**params, "ids": ids, "opts": opts}
                    ):
                        out[(kind, int(key))] = str(marked)
            return out
        params = {"m": fts5_match(q.text_terms), "mark": MARK, "unmark": UNMARK}
        sqls_lite = {
            "subject": (
                subjects,
                "SELECT rowid, highlight(search_tickets, 0, :mark, :unmark) FROM search_tickets "
                "WHERE search_tickets MATCH :m AND rowid IN :ids",
            ),
            "message": (
                messages,
                "SELECT rowid, snippet(search_messages, 0, :mark, :unmark, '…', 24) "
                "FROM search_messages WHERE search_messages MATCH :m AND rowid IN :ids",
            ),
        }
        for kind, (ids, sql) in sqls_lite.items():
            if ids:
                stmt = text(sql).bindparams(bindparam("ids", expanding=True))
                for key, marked in self.session.execute(stmt, {**params, "ids": ids}):
                    out[(kind, int(key))] = str(marked)
        return out

    # -- accounts ---------------------------------------------------------------------------
    def accounts(
        self, q: SearchQuery, *, account_id: int | None, offset: int, limit: int
    ) -> list[AccountMatch]:
        """The accounts with every field term in one of their fields (code, name, a contact's
        name, e-mail or phone, a service's name), best first: a field equal to the whole
        query, then one starting with it, holding it, holding its first term; each with the
        field that matched best."""
        if not q.field_terms:
            return []
        params: dict[str, Any] = {
            "off": offset,
            "lim": limit,
            "phrase": q.phrase,
            "first": q.field_terms[0],
        }
        candidates = " INTERSECT ".join(
            self._accounts_holding(term, f"f{i}", params) for i, term in enumerate(q.field_terms)
        )
        if account_id is not None:
            params["acct"] = account_id
            candidates = f"SELECT account_id FROM ({candidates}) AS c WHERE account_id = :acct"
        find = "strpos" if self._pg else "instr"
        sql = f"""
            WITH candidates(account_id) AS ({candidates}),
            fields(account_id, field, value, pos) AS (
                SELECT id, 'code', code, 0 FROM accounts
                    WHERE id IN (SELECT account_id FROM candidates)
                UNION ALL SELECT id, 'name', name, 1 FROM accounts
                    WHERE id IN (SELECT account_id FROM candidates)
                UNION ALL SELECT account_id, 'email', email, 2 FROM contacts
                    WHERE account_id IN (SELECT account_id FROM candidates)
                UNION ALL SELECT account_id, 'phone', phone, 3 FROM contacts
                    WHERE account_id IN (SELECT account_id FROM candidates) AND phone IS NOT NULL
                UNION ALL SELECT account_id, 'contact_name', name, 4 FROM contacts
                    WHERE account_id IN (SELECT account_id FROM candidates)
                UNION ALL SELECT account_id, 'service', name, 5 FROM services
                    WHERE account_id IN (SELECT account_id FROM candidates)
            ),
            scored AS (
                SELECT account_id, field, value, pos, CASE
                    WHEN lower(value) = :phrase THEN 4
                    WHEN {find}(lower(value), :phrase) = 1 THEN 3
                    WHEN {find}(lower(value), :phrase) > 0 THEN 2
                    WHEN {find}(lower(value), :first) > 0 THEN 1
                    ELSE 0 END AS score
                FROM fields
            ),
            best AS (
                SELECT account_id, field, value, score, row_number() OVER (
                    PARTITION BY account_id ORDER BY score DESC, pos, value) AS rn
                FROM scored
            )
            SELECT a.id, a.code, a.name, a.status, b.field, b.value, b.score
            FROM best b JOIN accounts a ON a.id = b.account_id
            WHERE b.rn = 1
            ORDER BY b.score DESC, a.code
            LIMIT :lim OFFSET :off
        """
        rows = self.session.execute(text(sql), params)
        return [AccountMatch(int(r[0]), r[1], r[2], r[3], r[4], r[5], int(r[6])) for r in rows]

    def _accounts_holding(self, term: str, key: str, params: dict[str, Any]) -> str:
        """SELECT of the ids of accounts with `term` in one of their fields."""
        if self._pg:
            params[key] = like_pattern(term)
            return (
                f"SELECT account_id FROM (SELECT id AS account_id FROM accounts "
                f"WHERE code ILIKE :{key} OR name ILIKE :{key} "
                f"UNION SELECT account_id FROM contacts WHERE account_id IS NOT NULL AND "
                f"(name ILIKE :{key} OR email ILIKE :{key} OR phone ILIKE :{key}) "
                f"UNION SELECT account_id FROM services WHERE name ILIKE :{key}) AS {key}"
            )
        return f"SELECT account_id FROM search_accounts WHERE {self._fts_field(term, key, params)}"

    def tickets_with_accounts(self, ticket_ids: list[int]) -> dict[int, tuple[Ticket, str, str]]:
        """These tickets with their account's code and name, by id."""
        q = (
            select(Ticket, Account.code, Account.name)
            .join(Account, Account.id == Ticket.account_id)
            .where(Ticket.id.in_(ticket_ids))
        )
        return {t.id: (t, code, name) for t, code, name in self.session.execute(q).all()}

    def contacts(self, contact_ids: set[int]) -> dict[int, tuple[str, str]]:
        """(name, e-mail) of these contacts, by id."""
        if not contact_ids:
            return {}
        stmt = text("SELECT id, name, email FROM contacts WHERE id IN :ids").bindparams(
            bindparam("ids", expanding=True)
        )
        return {
            int(r[0]): (r[1], r[2]) for r in self.session.execute(stmt, {"ids": list(contact_ids)})
        }
