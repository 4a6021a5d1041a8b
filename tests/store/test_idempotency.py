"""Idempotency answers are kept for a day, then forgotten by the housekeeping."""

from __future__ import annotations

from datetime import timedelta

from store.db import Database
from store.models.base import utcnow
from store.repositories import IdempotencyRepository
from tests.factories import make_account, make_customer


def test_prune_forgets_only_old_answers(db: Database) -> None:
    with db.write() as s:
        user = make_customer(s, make_account(s))
        repo = IdempotencyRepository(s)
        old = repo.put(user.id, "old", request_hash="h", status_code=201, response={"n": 1})
        old.created_at = utcnow() - timedelta(hours=25)
        repo.put(user.id, "new", request_hash="h", status_code=201, response={"n": 2})
    with db.write() as s:
        assert IdempotencyRepository(s).prune(utcnow() - timedelta(hours=24)) == 1
    with db.read() as s:
        repo = IdempotencyRepository(s)
        assert repo.get(user.id, "old") is None
        assert repo.get(user.id, "new") is not None
