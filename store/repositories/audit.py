"""Writing the audit log."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from store.models import AuditLog
from store.repositories.base import Repository


class AuditRepository(Repository):
    def record(
        self,
        *,
        actor_label: str,
        action: str,
        object_type: str,
        object_id: object,
        actor_user_id: int | None = None,
        account_id: int | None = None,
        ip: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> AuditLog:
        row = AuditLog(
            actor_user_id=actor_user_id,
            actor_label=actor_label,
            action=action,
            object_type=object_type,
            object_id=str(object_id),
            account_id=account_id,
            ip=ip,
            data=data or {},
        )
        self.session.add(row)
        return row

    def for_object(self, object_type: str, object_id: object) -> list[AuditLog]:
        q = (
            select(AuditLog)
            .where(AuditLog.object_type == object_type, AuditLog.object_id == str(object_id))
            .order_by(AuditLog.id)
        )
        return list(self.session.scalars(q))

    def for_account(self, account_id: int, *, limit: int = 100) -> list[AuditLog]:
        q = (
            select(AuditLog)
            .where(AuditLog.account_id == account_id)
            .order_by(AuditLog.id.desc())
            .limit(limit)
        )
        return list(self.session.scalars(q))
