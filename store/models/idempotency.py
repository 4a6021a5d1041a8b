"""Stored answers to POSTs that carried an Idempotency-Key, so a retry gets the same answer."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from store.models.base import Base, BigId, CreatedMixin


class IdempotencyRecord(CreatedMixin, Base):
    __tablename__ = "idempotency_records"

    user_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))  # method, path and body
    status_code: Mapped[int] = mapped_column()
    response: Mapped[dict[str, Any]] = mapped_column(default=dict)
