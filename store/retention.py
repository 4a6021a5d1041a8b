"""How long the desk keeps what it needs only for a while, and the queries that forget it.

- Outbox rows: `outbox_retention_days` after they were published. Only a run of the oldest
  rows is ever removed, and never the newest row, so the rows kept are every row from the
  oldest kept id on: a stream whose `Last-Event-ID` is below that id minus one may have missed
  rows that are gone, and must reload instead of replaying.
- Idempotency answers: `idempotency_retention_hours` after the first answer; a retry after
  that is a new request.
- Host journal entries (on each managed host, pruned there by its executor lane):
  `host_journal_retention_days` after the change was applied. A change older than that is
  never sent again (it is settled long since), so its id is not needed to recognise it.

Each prune removes at most `prune_batch` rows in one unit of work and is repeated until
nothing is left to remove: short transactions (SQLite has a single writer).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import delete, func, select, tuple_
from sqlalchemy.orm import Session

from store.db import Database
from store.models import IdempotencyRecord, OutboxEvent


class RetentionSettings(BaseSettings):
    """Retention of the outbox, idempotency answers and host journals (SITEDESK_ variables)."""

    model_config = SettingsConfigDict(env_prefix="SITEDESK_", extra="ignore")

    outbox_retention_days: float = Field(
        default=7, gt=0, description="Published outbox rows are kept this long (replay reach)."
    )
    idempotency_retention_hours: float = Field(
        default=24, gt=0, description="An Idempotency-Key is recognised this long."
    )
    host_journal_retention_days: float = Field(
        default=90, gt=0, description="Change ids stay in a host's journal this long."
    )
    prune_batch: int = Field(default=1000, ge=1, le=100_000)
    prune_every_seconds: float = Field(
        default=3600, gt=0, description="How often the notifier and each host lane prune."
    )


@dataclass(frozen=True)
class Pruned:
    outbox: int = 0
    idempotency: int = 0


def prune_outbox_batch(s: Session, *, published_before: datetime, limit: int) -> int:
    """Remove up to `limit` of the oldest outbox rows, all published before `published_before`:
    the run from the oldest row up to the first one that is unpublished, published since or
    the newest row (which is always kept, so that the oldest id kept is always known)."""
    newest = s.scalar(select(func.max(OutboxEvent.id)))
    rows = s.execute(
        select(OutboxEvent.id, OutboxEvent.published_at).order_by(OutboxEvent.id).limit(limit)
    ).all()
    last: int | None = None
    for row_id, published_at in rows:
        if published_at is None or published_at >= published_before or row_id == newest:
            break
        last = row_id
    if last is None:
        return 0
    result = s.execute(delete(OutboxEvent).where(OutboxEvent.id <= last))
    return int(result.rowcount)  # type: ignore[attr-defined]


def prune_idempotency_batch(s: Session, *, created_before: datetime, limit: int) -> int:
    """Remove up to `limit` idempotency answers first given before `created_before`."""
    keys = s.execute(
        select(IdempotencyRecord.user_id, IdempotencyRecord.key)
        .where(IdempotencyRecord.created_at < created_before)
        .limit(limit)
    ).all()
    if not keys:
        return 0
    pairs = [(user_id, key) for user_id, key in keys]
    result = s.execute(
        delete(IdempotencyRecord).where(
            tuple_(IdempotencyRecord.user_id, IdempotencyRecord.key).in_(pairs)
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def _in_batches(db: Database, prune_batch: Callable[[Session], int], batch: int) -> int:
    """Run `prune_batch` in its own unit of work until it removes fewer than `batch` rows."""
    total = 0
    while True:
        with db.write() as s:
            n = prune_batch(s)
        total += n
        if n < batch:
            return total


def prune(db: Database, settings: RetentionSettings, now: datetime) -> Pruned:
    """Forget every outbox row and idempotency answer past its retention at `now`, batch by
    batch, one unit of work each."""
    batch = settings.prune_batch
    published_before = now - timedelta(days=settings.outbox_retention_days)
    created_before = now - timedelta(hours=settings.idempotency_retention_hours)
    return Pruned(
        outbox=_in_batches(
            db,
            lambda s: prune_outbox_batch(s, published_before=published_before, limit=batch),
            batch,
        ),
        idempotency=_in_batches(
            db,
            lambda s: prune_idempotency_batch(s, created_before=created_before, limit=batch),
            batch,
        ),
    )
