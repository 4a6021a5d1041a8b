"""A row that commits after one with a later id goes out late: a stream that reconnects with
the later id still gets it (the replay of store/repositories/outbox.py heard_after), on SQLite
and PostgreSQL. Found by bench/chaos.py."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from store.db import Database
from store.models import OutboxEvent
from store.models.base import utcnow
from store.models.outbox import Listener
from store.repositories import OutboxRepository


def test_a_replay_sends_the_rows_that_went_out_after_the_last_seen_one(db: Database) -> None:
    with db.write() as s:
        rows = [OutboxEvent(topic="ticket.created", account_id=None, payload={"n": i})
                for i in range(4)]  # fmt: skip
        s.add_all(rows)
        s.flush()
        ids = [r.id for r in rows]
    early, late, seen, unsent = ids
    now = utcnow()
    with db.write() as s:  # `early` and `seen` went out; `late` committed and went out after
        sent = (
            (early, now - timedelta(seconds=1)),
            (seen, now),
            (late, now + timedelta(seconds=1)),
        )
        for i, at in sent:
            s.execute(update(OutboxEvent).where(OutboxEvent.id == i).values(published_at=at))
    with db.read() as s:
        replay = [r.id for r in OutboxRepository(s).heard_after(Listener(everything=True), seen,
                                                                 limit=100)]  # fmt: skip
    # `early` went out before `seen`: a stream that had `seen` had it; `late` and `unsent` not.
    assert replay == [late, unsent]
