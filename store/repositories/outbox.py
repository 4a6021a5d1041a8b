"""Reading and settling the transactional outbox."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from store.models import OutboxEvent
from store.models.base import utcnow
from store.repositories.base import Repository


class OutboxRepository(Repository):
    def append(self, topic: str, *, account_id: int | None, payload: dict[str, Any]) -> OutboxEvent:
        row = OutboxEvent(topic=topic, account_id=account_id, payload=payload)
        self.session.add(row)
        self.session.flush()
        return row

    def unpublished(self, *, limit: int = 500) -> list[OutboxEvent]:
        q = (
            select(OutboxEvent)
            .where(OutboxEvent.published_at.is_(None))
            .order_by(OutboxEvent.id)
            .limit(limit)
        )
        return list(self.session.scalars(q))

    def after(self, last_id: int, *, limit: int = 1000) -> list[OutboxEvent]:
        """Rows after `last_id`, published or not (a reconnecting stream's replay)."""
        q = select(OutboxEvent).where(OutboxEvent.id > last_id).order_by(OutboxEvent.id)
        return list(self.session.scalars(q.limit(limit)))

    def mark_published(self, ids: list[int]) -> None:
        if ids:
            self.session.execute(
                update(OutboxEvent).where(OutboxEvent.id.in_(ids)).values(published_at=utcnow())
            )
