"""Change requests and their attempts."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from store.models import ChangeAttempt, ChangeRequest, Ticket
from store.models.base import utcnow
from store.models.enums import OPEN_STATUSES
from store.repositories.base import Repository


class ChangeRepository(Repository):
    def create(
        self,
        *,
        account_id: int,
        kind: str,
        params: dict[str, Any],
        source: str,
        service_id: int | None = None,
        ticket_id: int | None = None,
        host_id: int | None = None,
        requested_by_user_id: int | None = None,
        change_id: str | None = None,
    ) -> ChangeRequest:
        row = ChangeRequest(
            id=change_id or str(uuid.uuid4()),
            account_id=account_id,
            kind=kind,
            params=params,
            source=source,
            service_id=service_id,
            ticket_id=ticket_id,
            host_id=host_id,
            requested_by_user_id=requested_by_user_id,
        )
        self.session.add(row)
        self.session.flush()
        return row

    def get(self, change_id: str) -> ChangeRequest:
        return self._get(ChangeRequest, change_id, "change")

    def find(self, change_id: str) -> ChangeRequest | None:
        return self.session.get(ChangeRequest, change_id)

    def pending(self, *, host_id: int | None = None) -> list[ChangeRequest]:
        q = select(ChangeRequest).where(ChangeRequest.status.in_(("queued", "applying")))
        if host_id is not None:
            q = q.where(ChangeRequest.host_id == host_id)
        return list(self.session.scalars(q.order_by(ChangeRequest.created_at)))

    def recent_for_account(self, account_id: int, *, limit: int = 20) -> list[ChangeRequest]:
        q = (
            select(ChangeRequest)
            .where(ChangeRequest.account_id == account_id)
            .order_by(ChangeRequest.created_at.desc())
            .limit(limit)
        )
        return list(self.session.scalars(q))

    def requested_since(
        self, account_id: int, since: datetime, *, source: str
    ) -> tuple[int, datetime | None]:
        """(how many, the oldest created_at) of the account's changes from `source` since."""
        q = select(func.count(), func.min(ChangeRequest.created_at)).where(
            ChangeRequest.account_id == account_id,
            ChangeRequest.source == source,
            ChangeRequest.created_at >= since,
        )
        count, oldest = self.session.execute(q).one()
        return int(count or 0), oldest

    def open_failure_ticket(self, service_id: int, *, excluding: str) -> int | None:
        """The id of a still open ticket that a failed self-service change of this service
        opened (the newest), if any."""
        q = (
            select(Ticket.id)
            .join(ChangeRequest, ChangeRequest.ticket_id == Ticket.id)
            .where(
                ChangeRequest.service_id == service_id,
                ChangeRequest.source == "portal",
                ChangeRequest.id != excluding,
                Ticket.status.in_(OPEN_STATUSES),
            )
            .order_by(Ticket.id.desc())
            .limit(1)
        )
        return self.session.scalar(q)

    def settle(self, change_id: str, pending: tuple[str, ...], **values: Any) -> bool:
        """Set the outcome of a change still in one of the `pending` states; False when it
        was settled already (so an outcome is recorded once, never twice)."""
        res = self.session.execute(
            update(ChangeRequest)
            .where(ChangeRequest.id == change_id, ChangeRequest.status.in_(pending))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return int(res.rowcount) == 1  # type: ignore[attr-defined]

    def pending_count(
        self,
        pending: tuple[str, ...],
        *,
        ticket_id: int | None = None,
        host_id: int | None = None,
        excluding: str | None = None,
    ) -> int:
        q = select(func.count()).select_from(ChangeRequest).where(ChangeRequest.status.in_(pending))
        if ticket_id is not None:
            q = q.where(ChangeRequest.ticket_id == ticket_id)
        if host_id is not None:
            q = q.where(ChangeRequest.host_id == host_id)
        if excluding is not None:
            q = q.where(ChangeRequest.id != excluding)
        return int(self.session.scalar(q) or 0)

    def pending_by_host(self, pending: tuple[str, ...]) -> dict[int, int]:
        q = (
            select(ChangeRequest.host_id, func.count())
            .where(ChangeRequest.status.in_(pending))
            .group_by(ChangeRequest.host_id)
        )
        return {h: n for h, n in self.session.execute(q) if h is not None}

    def add_attempt(
        self, change_id: str, *, outcome: str, output: str = "", error: str | None = None
    ) -> ChangeAttempt:
        n = self.session.scalar(
            select(func.coalesce(func.max(ChangeAttempt.attempt), 0)).where(
                ChangeAttempt.change_id == change_id
            )
        )
        row = ChangeAttempt(
            change_id=change_id,
            attempt=(n or 0) + 1,
            outcome=outcome,
            output=output,
            error=error,
            finished_at=utcnow(),
        )
        self.session.add(row)
        self.session.flush()
        return row

    def attempts(self, change_id: str) -> list[ChangeAttempt]:
        q = select(ChangeAttempt).where(ChangeAttempt.change_id == change_id)
        return list(self.session.scalars(q.order_by(ChangeAttempt.attempt)))
