"""A row that commits after one with a later id goes out late: a stream that reconnects with
the later id still gets it (the replay of store/repositories/outbox.py heard_after), on SQLite
and PostgreSQL. Found by bench/chaos.py."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

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


def test_the_notifier_sends_rows_in_id_order_and_waits_for_a_hole(db: Database) -> None:
    """A row with a smaller id not out yet holds the rows after it: one committed after the
    batch was read goes first, one never committed is waited for a while, then skipped."""
    from actors.config import ActorConfig
    from actors.notify import notifier as notifier_module
    from actors.notify.notifier import Notifier
    from tests.conftest import REDIS_URL

    with db.write() as s:
        rows = [OutboxEvent(topic="ticket.created", account_id=None, payload={"n": i})
                for i in range(5)]  # fmt: skip
        s.add_all(rows)
        s.flush()
        ids = [r.id for r in rows]
    a, b, c, never, d = ids
    with db.write() as s:  # `never` is a transaction that rolled back: its id has no row
        s.execute(OutboxEvent.__table__.delete().where(OutboxEvent.id == never))
    n = Notifier(ActorConfig(database_url=db.url, redis_url=REDIS_URL))

    def envelopes(*which: int) -> list[Any]:
        return [({"id": i}, None) for i in which]

    # `b` committed after the batch [a, c] was read: c waits; the next drain sends b, then c.
    assert [e["id"] for e, _ in n._in_order(envelopes(a, c))] == [a]
    with db.write() as s:
        s.execute(update(OutboxEvent).where(OutboxEvent.id == a).values(published_at=utcnow()))
    assert [e["id"] for e, _ in n._in_order(envelopes(b, c))] == [b, c]
    with db.write() as s:
        s.execute(update(OutboxEvent).where(OutboxEvent.id.in_([b, c]))
                  .values(published_at=utcnow()))  # fmt: skip
    # `never` is waited for (d holds), then given up after HOLE_WAIT_SECONDS.
    assert n._in_order(envelopes(d)) == []
    n.hole_seen[never] -= notifier_module.HOLE_WAIT_SECONDS
    assert [e["id"] for e, _ in n._in_order(envelopes(d))] == [d]
