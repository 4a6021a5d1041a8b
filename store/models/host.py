"""Managed hosts: the servers GDCAS changes, each with its pinned SSH host key."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from store.models.base import Base, CreatedMixin, IdMixin, check_in
from store.models.enums import HostRole, HostStatus, values


class ManagedHost(IdMixin, CreatedMixin, Base):
    __tablename__ = "managed_hosts"
    __table_args__ = (
        CheckConstraint(check_in("role", values(HostRole)), name="role"),
        CheckConstraint(check_in("status", values(HostStatus)), name="status"),
        CheckConstraint("ssh_port BETWEEN 1 AND 65535", name="ssh_port"),
    )

    name: Mapped[str] = mapped_column(String(64), unique=True)
    address: Mapped[str] = mapped_column(String(255))
    ssh_port: Mapped[int] = mapped_column(default=22)
    ssh_user: Mapped[str] = mapped_column(String(32), default="root")
    role: Mapped[str] = mapped_column(String(16), default=HostRole.shared.value)
    status: Mapped[str] = mapped_column(String(16), default=HostStatus.active.value)
    host_key: Mapped[str] = mapped_column(Text)  # pinned OpenSSH public key line
    credentials_ref: Mapped[str] = mapped_column(String(255))  # where the client key lives
    root_dir: Mapped[str] = mapped_column(String(255), default="/")  # prefix of managed files
    services_meta: Mapped[str | None] = mapped_column(Text)  # JSON: ports of named, nginx ...
    last_seen_at: Mapped[datetime | None] = mapped_column()
