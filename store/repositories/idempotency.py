"""Remembered answers for Idempotency-Key retries (forgotten after their retention:
store/retention.py)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, tuple_

from store.models import IdempotencyRecord
from store.repositories.base import Repository


class IdempotencyRepository(Repository):
    def get(self, user_id: int, key: str) -> IdempotencyRecord | None:
        return self.session.get(IdempotencyRecord, (user_id, key))

    def get_many(self, keys: set[tuple[int, str]]) -> dict[tuple[int, str], IdempotencyRecord]:
        """The records of these (user id, key) pairs, in one query."""
        if not keys:
            return {}
        q = select(IdempotencyRecord).where(
            tuple_(IdempotencyRecord.user_id, IdempotencyRecord.key).in_(list(keys))
        )
        return {(r.user_id, r.key): r for r in self.session.scalars(q)}

    def put(
        self,
        user_id: int,
        key: str,
        *,
        request_hash: str,
        status_code: int,
        response: dict[str, Any],
    ) -> IdempotencyRecord:
        row = IdempotencyRecord(
            user_id=user_id,
            key=key,
            request_hash=request_hash,
            status_code=status_code,
            response=response,
        )
        self.session.add(row)
        self.session.flush()
        return row
