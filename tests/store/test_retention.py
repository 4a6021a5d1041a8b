"""Outbox rows and idempotency answers are kept for their retention, then forgotten in bounded
batches, oldest first (store/retention.py, on a clock the test sets)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from store.db import Database
from store.models import OutboxEvent
from store.repositories import IdempotencyRepository
from store.retention import RetentionSettings, prune
from tests.factories import make_account, make_customer

NOW = datetime(2026, 12, 9, 12, 0, tzinfo=UTC)  # the test's clock: each prune is told the time
OLD = NOW - timedelta(days=8)


def add_outbox(db: Database, published: list[datetime | None]) -> list[int]:
    with db.write() as s:
        rows = [OutboxEvent(topic="ticket.created", account_id=None, payload={}, published_at=at)
                for at in published]  # fmt: skip
        s.add_all(rows)
        s.flush()
        return [r.id for r in rows]


def kept(db: Database) -> list[int]:
    with db.read() as s:
        return list(s.scalars(select(OutboxEvent.id).order_by(OutboxEvent.id)))


def test_outbox_rows_are_forgotten_oldest_first_after_their_retention(db: Database) -> None:
    settings = RetentionSettings(outbox_retention_days=7, prune_batch=2)
    ids = add_outbox(db, [OLD, OLD, OLD, NOW - timedelta(days=6), OLD, None, OLD])
    # The run of old rows up to the first one still kept; the old row behind it waits, so that
    # what is kept is every row from one id on (a replay from there misses nothing).
    assert prune(db, settings, NOW).outbox == 3
    assert kept(db) == ids[3:]
    # Two days on, the 6-day-old row has aged out too; the unpublished row stops the run.
    assert prune(db, settings, NOW + timedelta(days=2)).outbox == 2
    assert kept(db) == ids[5:]
    with db.write() as s:
        s.execute(update(OutboxEvent).where(OutboxEvent.id == ids[5]).values(published_at=NOW))
    # Everything aged out: all but the newest row go (the oldest id kept stays known).
    assert prune(db, settings, NOW + timedelta(days=30)).outbox == 1
    assert kept(db) == ids[6:]
    assert prune(db, settings, NOW + timedelta(days=60)).outbox == 0


def test_outbox_rows_within_their_retention_are_kept(db: Database) -> None:
    ids = add_outbox(db, [NOW - timedelta(days=6, hours=23), NOW, None])
    assert prune(db, RetentionSettings(), NOW).outbox == 0
    assert kept(db) == ids


def test_idempotency_answers_are_forgotten_after_a_day_in_bounded_batches(db: Database) -> None:
    with db.write() as s:
        user = make_customer(s, make_account(s))
        repo = IdempotencyRepository(s)
        for i in range(5):
            old = repo.put(user.id, f"old-{i}", request_hash="h", status_code=201,
                           response={"n": i})  # fmt: skip
            old.created_at = NOW - timedelta(hours=25)
        repo.put(user.id, "new", request_hash="h", status_code=201, response={"n": 9})
        repo.get(user.id, "new").created_at = NOW - timedelta(hours=23)  # type: ignore[union-attr]
    settings = RetentionSettings(idempotency_retention_hours=24, prune_batch=2)
    assert prune(db, settings, NOW).idempotency == 5
    with db.read() as s:
        repo = IdempotencyRepository(s)
        assert all(repo.get(user.id, f"old-{i}") is None for i in range(5))
        assert repo.get(user.id, "new") is not None
