"""Audit log: who did what to which object, kept apart from the customer-facing timeline."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from store.models.base import Base, BigId, CreatedMixin, IdMixin


class AuditLog(IdMixin, CreatedMixin, Base):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_object", "object_type", "object_id"),
        Index("ix_audit_log_account_id_id", "account_id", "id"),
    )

    actor_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"))
    actor_label: Mapped[str] = mapped_column(String(200))  # "agent:alice@...", "system:sla"
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[int | None] = mapped_column(BigId)
    ip: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
