"""The account timeline and the outbox row that goes with each public entry."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from store.models import OutboxEvent, TimelineEntry
from store.repositories.base import Repository


class TimelineRepository(Repository):
    def append(
        self,
        account_id: int,
        *,
        kind: str,
        summary: str,
        ticket_id: int | None = None,
        change_id: str | None = None,
        actor: str | None = None,
        visibility: str = "public",
        data: dict[str, Any] | None = None,
        publish: bool = True,
    ) -> TimelineEntry:
        """Add an entry and, unless told otherwise, announce it through the outbox."""
        entry = TimelineEntry(
            account_id=account_id,
            kind=kind,
            summary=summary,
            ticket_id=ticket_id,
            change_id=change_id,
            actor=actor,
            visibility=visibility,
            data=data or {},
        )
        self.session.add(entry)
        self.session.flush()
        if publish:
            self.session.add(
                OutboxEvent(
                    topic=kind,
                    account_id=account_id,
                    payload={
                        "timeline_id": entry.id,
                        "kind": kind,
                        "summary": summary,
                        "ticket_id": ticket_id,
                        "change_id": change_id,
                        "actor": actor,
                        "visibility": visibility,
                        "data": data or {},
                        "at": entry.created_at.isoformat(),
                    },
                )
            )
        return entry

    def page(
        self,
        account_id: int,
        *,
        before_id: int | None = None,
        limit: int = 50,
        include_internal: bool = False,
    ) -> list[TimelineEntry]:
        """Newest first; pass the last id seen as `before_id` to get the next page."""
        q = select(TimelineEntry).where(TimelineEntry.account_id == account_id)
        if before_id is not None:
            q = q.where(TimelineEntry.id < before_id)
        if not include_internal:
            q = q.where(TimelineEntry.visibility == "public")
        q = q.order_by(TimelineEntry.id.desc()).limit(limit)
        return list(self.session.scalars(q))
