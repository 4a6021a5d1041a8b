"""An account as its readers see it outside the 360-degree view: whether it exists, and its
activity timeline page by page."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from store.db import Database
from store.models.ticket import ticket_number
from store.repositories import AccountRepository, TimelineRepository


class TimelineEntryRead(BaseModel):
    id: int
    kind: str
    summary: str
    ticket_number: str | None
    change_id: str | None
    actor: str | None
    visibility: str
    data: dict[str, Any]
    created_at: datetime


class TimelinePage(BaseModel):
    items: list[TimelineEntryRead]
    next_before: int | None  # the cursor of the next page, if any


class AccountReads:
    def __init__(self, db: Database) -> None:
        self.db = db

    def exists(self, account_id: int) -> bool:
        with self.db.read() as s:
            return AccountRepository(s).find(account_id) is not None

    def timeline(
        self, account_id: int, *, before: int | None, limit: int, include_internal: bool
    ) -> TimelinePage | None:
        """The account's entries newest first, `limit` of them before the entry `before`;
        None when there is no such account."""
        with self.db.read() as s:
            if AccountRepository(s).find(account_id) is None:
                return None
            rows = TimelineRepository(s).page(
                account_id, before_id=before, limit=limit + 1, include_internal=include_internal
            )
        more = len(rows) > limit
        rows = rows[:limit]
        items = [
            TimelineEntryRead(
                id=e.id,
                kind=e.kind,
                summary=e.summary,
                ticket_number=ticket_number(e.ticket_id) if e.ticket_id else None,
                change_id=e.change_id,
                actor=e.actor,
                visibility=e.visibility,
                data=e.data,
                created_at=e.created_at,
            )
            for e in rows
        ]
        return TimelinePage(items=items, next_before=rows[-1].id if more and rows else None)
