"""The desk's outgoing mail: one row per recipient, planned once from an outbox event (or an
auto-reply), sent by the mailer until the relay has answered for good."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from store.models import MailDelivery
from store.models.enums import DeliveryStatus, MailKind
from store.repositories.base import Repository


@dataclass(frozen=True)
class Answer:
    """What one attempt at one mail came to."""

    delivery_id: int
    status: DeliveryStatus
    answer: str
    attempts: int  # including this one
    at: datetime
    next_attempt_at: datetime | None = None


class DeliveryRepository(Repository):
    def plan(self, rows: list[dict[str, Any]]) -> int:
        """Add planned mails; a row whose `source` is planned already is left as it is (an
        outbox row planned twice, after a crash, plans nothing new). Returns how many are new."""
        if not rows:
            return 0
        dialect = self.session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        stmt = (
            insert(MailDelivery)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["source"])
            .returning(MailDelivery.id)
        )
        return len(list(self.session.execute(stmt).scalars()))

    def due(self, now: datetime, *, limit: int) -> list[MailDelivery]:
        """Queued mails whose next attempt is due, oldest first."""
        q = (
            select(MailDelivery)
            .where(
                MailDelivery.status == DeliveryStatus.queued.value,
                (MailDelivery.next_attempt_at.is_(None)) | (MailDelivery.next_attempt_at <= now),
            )
            .order_by(MailDelivery.id)
            .limit(limit)
        )
        return list(self.session.scalars(q))

    def next_due_at(self) -> datetime | None:
        """When the earliest queued mail is due (None: nothing queued)."""
        return self.session.scalar(
            select(
                func.min(func.coalesce(MailDelivery.next_attempt_at, MailDelivery.created_at))
            ).where(MailDelivery.status == DeliveryStatus.queued.value)
        )

    def record(self, answers: list[Answer]) -> None:
        """The relay's answers to a batch of attempts, in one statement run for each (an
        executemany), and what each makes of its mail: sent, failed for good, or queued again
        for its `next_attempt_at`. A mail no longer queued (settled before) is left as it is."""
        if not answers:
            return
        t = cast(Table, MailDelivery.__table__)
        stmt = (
            update(t)
            .where(t.c.id == bindparam("b_id"), t.c.status == DeliveryStatus.queued.value)
            .values(
                status=bindparam("b_status"), last_answer=bindparam("b_answer"),
                attempts=bindparam("b_attempts"), next_attempt_at=bindparam("b_next"),
                sent_at=bindparam("b_sent"),
            )
        )  # fmt: skip
        self.session.execute(
            stmt,
            [
                {
                    "b_id": a.delivery_id,
                    "b_status": a.status.value,
                    "b_answer": a.answer[:2000],
                    "b_attempts": a.attempts,
                    "b_next": a.next_attempt_at,
                    "b_sent": a.at if a.status is DeliveryStatus.sent else None,
                }
                for a in answers
            ],
        )

    def auto_replies_since(self, recipient: str, since: datetime) -> int:
        """Auto-replies planned to `recipient` since `since` (the per-address cap counts them;
        the ones the cap itself stopped do not count)."""
        return int(
            self.session.scalar(
                select(func.count())
                .select_from(MailDelivery)
                .where(
                    MailDelivery.recipient == recipient,
                    MailDelivery.kind == MailKind.auto_reply.value,
                    MailDelivery.status != DeliveryStatus.suppressed.value,
                    MailDelivery.created_at >= since,
                )
            )
            or 0
        )

    def thread_of(self, ticket_id: int, recipient: str, *, limit: int = 5) -> list[str]:
        """The Message-IDs of the last mails sent to `recipient` about the ticket, oldest first."""
        q = (
            select(MailDelivery.message_id)
            .where(
                MailDelivery.ticket_id == ticket_id,
                MailDelivery.recipient == recipient,
                MailDelivery.status != DeliveryStatus.suppressed.value,
            )
            .order_by(MailDelivery.id.desc())
            .limit(limit)
        )
        return list(reversed(list(self.session.scalars(q))))

    def listing(
        self,
        *,
        status: DeliveryStatus | None = None,
        recipient: str | None = None,
        ticket_id: int | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[MailDelivery]:
        """Sent and planned mail, newest first, for the admins' "sent mail" view."""
        q = select(MailDelivery).order_by(MailDelivery.id.desc()).limit(limit)
        if status is not None:
            q = q.where(MailDelivery.status == status.value)
        if recipient is not None:
            q = q.where(MailDelivery.recipient == recipient.lower())
        if ticket_id is not None:
            q = q.where(MailDelivery.ticket_id == ticket_id)
        if before_id is not None:
            q = q.where(MailDelivery.id < before_id)
        return list(self.session.scalars(q))

    def get(self, delivery_id: int) -> MailDelivery | None:
        return self.session.get(MailDelivery, delivery_id)
