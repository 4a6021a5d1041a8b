"""One search box over tickets and accounts: a ticket by its number, its subject, its messages
or its contact; an account (staff only) by its code, its name, its contacts' names, e-mails and
phones, and its services' names (domains, mailboxes). Ranked, a page at a time.

A customer's search sees its own account's tickets only, and never an internal note: a ticket
is not found by an internal note's words, nor shown with a passage of one.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from store.db import Database
from store.models.enums import Priority, TicketStatus
from store.models.ticket import ticket_number
from store.repositories.search import MARK, UNMARK, AccountMatch, SearchRepository, TicketMatch
from store.search import SearchQuery, parse_query

MAX_LIMIT = 50
MAX_OFFSET = 1000  # deeper than this nobody pages a ranked list; refine the query instead
_CURSOR = re.compile(r"[0-9]{1,4}", re.ASCII)
_SPACE = re.compile(r"\s+")


class InvalidCursor(ValueError):
    """A cursor this search did not hand out."""


class SnippetPart(BaseModel):
    """A piece of a snippet: render the parts in order, the hits highlighted (as text)."""

    text: str
    hit: bool = False


class TicketHit(BaseModel):
    number: str
    subject: str
    status: TicketStatus
    priority: Priority
    account_id: int
    account_code: str
    account_name: str
    matched: Literal["number", "subject", "message", "contact"] = Field(
        description="What found it: its number, its subject, a message, its contact."
    )
    message_id: int | None = Field(description="The message that matched, when one did.")
    snippet: list[SnippetPart] = Field(description="Where it matched, its hits marked.")
    created_at: datetime
    updated_at: datetime


class AccountHit(BaseModel):
    id: int
    code: str
    name: str
    status: str
    matched: Literal["code", "name", "contact_name", "email", "phone", "service"] = Field(
        description="The field that matched best; `service` is a domain, mailbox, zone, ..."
    )
    matched_value: str = Field(description="That field's value, e.g. the contact's e-mail.")


class SearchResults(BaseModel):
    tickets: list[TicketHit]
    accounts: list[AccountHit] = Field(description="Staff only; always empty for customers.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page, if any.")


def offset_of(cursor: str | None) -> int:
    """The offset a cursor stands for; InvalidCursor for one this search never gave out."""
    if cursor is None:
        return 0
    if not _CURSOR.fullmatch(cursor) or int(cursor) > MAX_OFFSET:
        raise InvalidCursor(f"not a search cursor (the pages end at {MAX_OFFSET} results)")
    return int(cursor)


def snippet_parts(marked: str) -> list[SnippetPart]:
    """A text with its hits between STX and ETX as parts, white space made single spaces."""
    parts: list[SnippetPart] = []
    hit = False
    for piece in re.split(f"({MARK}|{UNMARK})", _SPACE.sub(" ", marked).strip()):
        if piece in (MARK, UNMARK):
            hit = piece == MARK
        elif piece:
            if parts and parts[-1].hit == hit:
                parts[-1].text += piece
            else:
                parts.append(SnippetPart(text=piece, hit=hit))
    return parts


class SearchReads:
    def __init__(self, db: Database) -> None:
        self.db = db

    def search(
        self,
        query: str,
        *,
        account_id: int | None,
        staff: bool,
        limit: int = 20,
        cursor: str | None = None,
    ) -> SearchResults:
        """A page of what `query` finds, best first: tickets (of `account_id` only, when
        given) and, for `staff`, accounts. Customers (`staff` False) must name their account;
        internal notes are searched for staff only. ValueError for a query over 200
        characters, InvalidCursor for a cursor not handed out here."""
        if not staff and account_id is None:
            raise ValueError("a customer's search is of one account")
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit is 1 to {MAX_LIMIT}")
        offset = offset_of(cursor)
        q = parse_query(query)
        if q.is_empty:
            return SearchResults(tickets=[], accounts=[], next_cursor=None)
        with self.db.read() as s:
            repo = SearchRepository(s)
            matches = repo.tickets(
                q, account_id=account_id, include_internal=staff, offset=offset, limit=limit + 1
            )
            accounts = (
                repo.accounts(q, account_id=account_id, offset=offset, limit=limit + 1)
                if staff
                else []
            )
            more = len(matches) > limit or len(accounts) > limit
            tickets = self._tickets(repo, q, matches[:limit])
        return SearchResults(
            tickets=tickets,
            accounts=[_account(a) for a in accounts[:limit]],
            next_cursor=str(offset + limit) if more and offset + limit <= MAX_OFFSET else None,
        )

    def _tickets(
        self, repo: SearchRepository, q: SearchQuery, matches: list[TicketMatch]
    ) -> list[TicketHit]:
        if not matches:
            return []
        rows = repo.tickets_with_accounts([m.ticket_id for m in matches])
        marked = repo.snippets(q, matches)
        contacts = repo.contacts(
            {t.contact_id for t, _, _ in rows.values() if t.contact_id is not None}
        )
        hits = []
        for m in matches:
            if m.ticket_id not in rows:  # deleted between the two reads
                continue
            t, code, name = rows[m.ticket_id]
            if m.matched == "message" and m.message_id is not None:
                text = marked.get(("message", m.message_id), "")
            elif m.matched == "contact" and t.contact_id in contacts:
                contact_name, email = contacts[t.contact_id]
                text = f"{contact_name} <{email}>"
            else:
                text = marked.get(("subject", t.id), t.subject)
            hits.append(
                TicketHit(
                    number=ticket_number(t.id),
                    subject=t.subject,
                    status=TicketStatus(t.status),
                    priority=Priority(t.priority),
                    account_id=t.account_id,
                    account_code=code,
                    account_name=name,
                    matched=m.matched,
                    message_id=m.message_id if m.matched == "message" else None,
                    snippet=snippet_parts(text),
                    created_at=t.created_at,
                    updated_at=t.updated_at,
                )
            )
        return hits


def _account(a: AccountMatch) -> AccountHit:
    return AccountHit(
        id=a.account_id,
        code=a.code,
        name=a.name,
        status=a.status,
        matched=a.field,
        matched_value=a.value,
    )
