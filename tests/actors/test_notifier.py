"""The notifier's housekeeping prunes what is past its retention (store/retention.py)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from actors.config import ActorConfig
from actors.notify.notifier import Notifier
from store.db import Database
from store.models import OutboxEvent
from store.models.base import utcnow
from store.retention import RetentionSettings
from tests.conftest import REDIS_URL


def test_the_notifier_forgets_outbox_rows_past_their_retention(db: Database) -> None:
    now = utcnow()
    with db.write() as s:
        rows = [OutboxEvent(topic="ticket.created", account_id=None, payload={}, published_at=at)
                for at in (now - timedelta(days=3), now - timedelta(days=2), now)]  # fmt: skip
        s.add_all(rows)
        s.flush()
        ids = [r.id for r in rows]
    retention = RetentionSettings(outbox_retention_days=1)
    config = ActorConfig(database_url=db.url, redis_url=REDIS_URL, retention=retention)
    notifier = Notifier(config)
    try:
        assert notifier.prune().outbox == 2
    finally:
        notifier.db.dispose()
    with db.read() as s:
        assert list(s.scalars(select(OutboxEvent.id))) == ids[2:]
