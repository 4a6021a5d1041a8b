"""Idempotency keys inside a unit of work: the answer to a retry is the first answer."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from actors.errors import IdempotencyMismatch
from actors.principal import Principal
from store.repositories import IdempotencyRepository

REUSED = "this Idempotency-Key was used before with a different request"


def earlier_answer(
    s: Session, by: Principal, key: str | None, request_hash: str
) -> dict[str, Any] | None:
    """The stored answer of an earlier request with this key, or None when there is none.
    The same key with a different request is refused: it is a client's mistake, not a retry."""
    if not key or by.user_id is None:
        return None
    rec = IdempotencyRepository(s).get(by.user_id, key)
    if rec is None:
        return None
    if rec.request_hash != request_hash:
        raise IdempotencyMismatch(REUSED)
    return rec.response


def remember_answer(
    s: Session,
    by: Principal,
    key: str | None,
    request_hash: str,
    status_code: int,
    response: dict[str, Any],
) -> None:
    """Store the answer in the same transaction as the effect it describes."""
    if key and by.user_id is not None:
        IdempotencyRepository(s).put(
            by.user_id, key, request_hash=request_hash, status_code=status_code, response=response
        )
