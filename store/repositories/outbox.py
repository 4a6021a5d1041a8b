"""Reading and settling the transactional outbox, and what a listener hears of it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    exists,
    func,
    literal,
    or_,
    select,
    true,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import InstrumentedAttribute

from store.models import OutboxEvent
from store.models.base import utcnow
from store.models.outbox import Listener
from store.repositories.base import Repository


class OutboxRepository(Repository):
    def unpublished(self, *, limit: int = 500) -> list[OutboxEvent]:
        """Rows not yet on the live stream, oldest first."""
        return self._not_yet(OutboxEvent.published_at, limit)

    def unmailed(self, *, limit: int = 500) -> list[OutboxEvent]:
        """Rows the mail planner has not looked at yet, oldest first."""
        return self._not_yet(OutboxEvent.mailed_at, limit)

    def _not_yet(self, mark: InstrumentedAttribute[Any], limit: int) -> list[OutboxEvent]:
        """Rows whose `mark` is unset, oldest first: a row committed late, with an older id, is
        found all the same (no cursor skips it)."""
        q = select(OutboxEvent).where(mark.is_(None)).order_by(OutboxEvent.id).limit(limit)
        return list(self.session.scalars(q))

    def mark_mailed(self, ids: list[int]) -> None:
        if ids:
            self.session.execute(
                update(OutboxEvent).where(OutboxEvent.id.in_(ids)).values(mailed_at=utcnow())
            )

    def heard_after(
        self, who: Listener, last_id: int, *, limit: int, hold_seconds: float = 0.0
    ) -> list[OutboxEvent]:
        """The rows after `last_id` that `who` hears (published or not), oldest first, at most
        `limit`: a reconnecting stream's replay, filtered here by each row's audience.

        Also the rows with a smaller id that went out after `last_id` did (or not yet): a
        transaction commits after one that took a later id, and its row goes out late; a stream
        cut off in between must still get it (the stream drops what it already had by id).
        With `hold_seconds` (the notifier's wait for a hole), not the rows it still holds."""
        heard = self.heard_by(who)
        if heard is None:
            return []
        sent = select(OutboxEvent.published_at).where(OutboxEvent.id == last_id)
        sent_at = sent.scalar_subquery()
        late = and_(
            OutboxEvent.id < last_id,
            or_(OutboxEvent.published_at.is_(None), OutboxEvent.published_at >= sent_at),
        )
        q = select(OutboxEvent).where(or_(OutboxEvent.id > last_id, late), heard)
        rows = list(self.session.scalars(q.order_by(OutboxEvent.id).limit(limit)))
        if hold_seconds:
            rows = self._not_held(rows, last_id, hold_seconds)
        return rows

    def _not_held(self, rows: list[OutboxEvent], last_id: int, hold: float) -> list[OutboxEvent]:
        """Without the rows the notifier still holds back behind a hole (an id not committed
        yet, younger than `hold` seconds): they come live, after the row they wait for, and a
        replay that sent them first would put them out of order. A row not out yet but not held
        (it may be on its way to Redis this instant) stays in: it may not be missed."""
        waiting = [r.id for r in rows if r.published_at is None and r.id > last_id]
        if not waiting:
            return rows
        young = utcnow() - timedelta(seconds=hold)
        kept = self.session.execute(
            select(OutboxEvent.id, OutboxEvent.created_at)
            .where(OutboxEvent.id > last_id, OutboxEvent.id <= max(waiting))
            .order_by(OutboxEvent.id)
        )
        hole = None  # the first hole the notifier may still wait at: the row above it is young
        expected = last_id + 1
        for i, created in kept:
            if i != expected and created > young:
                hole = expected
                break
            expected = i + 1
        if hole is None:
            return rows
        return [
            r for r in rows if not (r.published_at is None and r.id > hole and r.created_at > young)
        ]

    def published_between(self, low: int, high: int) -> int:
        """How many rows with an id in [low, high) went out already."""
        return int(
            self.session.scalar(
                select(func.count())
                .select_from(OutboxEvent)
                .where(
                    OutboxEvent.id >= low,
                    OutboxEvent.id < high,
                    OutboxEvent.published_at.is_not(None),
                )
            )
            or 0
        )

    def heard_by(self, who: Listener) -> ColumnElement[bool] | None:
        """The rows `who` hears, as a condition (None: none): the same rule as the live
        stream's channels (actors.notify.audience), on the stored audience."""
        if who.everything:
            return true()
        heard: list[ColumnElement[bool]] = []
        if who.account_id is not None:
            heard.append(
                and_(OutboxEvent.account_id == who.account_id, OutboxEvent.public.is_(True))
            )
        if who.tier is not None:
            heard.append(self._names(OutboxEvent.tiers, who.tier))
        if who.agent_id is not None:
            heard.append(self._names(OutboxEvent.agents, who.agent_id))
        return or_(*heard) if heard else None

    def _names(self, column: InstrumentedAttribute[list[int]], value: int) -> ColumnElement[bool]:
        """`column` (a JSON list of ints) holds `value`."""
        if self.session.get_bind().dialect.name == "postgresql":
            return type_coerce(column, JSONB).contains([value])
        each = func.json_each(column).table_valued("value")
        return exists(select(literal(1)).select_from(each).where(each.c.value == value))

    def id_range(self) -> tuple[int, int]:
        """The oldest and the newest id kept ((0, 0) when there is none). Ids only grow and
        pruning removes the oldest rows, so a stream that last saw an id below the oldest may
        have missed rows that are gone."""
        low, high = self.session.execute(
            select(func.min(OutboxEvent.id), func.max(OutboxEvent.id))
        ).one()
        return int(low or 0), int(high or 0)

    def mark_published(self, ids: list[int]) -> None:
        if ids:
            self.session.execute(
                update(OutboxEvent).where(OutboxEvent.id.in_(ids)).values(published_at=utcnow())
            )
