"""Customer accounts, the people on them, and the services they pay for."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from store.models.base import Base, BigId, CreatedMixin, IdMixin, check_in
from store.models.enums import AccountStatus, ServiceKind, ServiceStatus, values

if TYPE_CHECKING:
    from store.models.host import ManagedHost


class Account(IdMixin, CreatedMixin, Base):
    __tablename__ = "accounts"
    __table_args__ = (CheckConstraint(check_in("status", values(AccountStatus)), name="status"),)

    code: Mapped[str] = mapped_column(String(32), unique=True)  # e.g. ACME-0001, shown to people
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default=AccountStatus.active.value)
    plan: Mapped[str] = mapped_column(String(64), default="standard")
    unix_user: Mapped[str] = mapped_column(String(32), unique=True)  # owner of files on the hosts

    contacts: Mapped[list[Contact]] = relationship(back_populates="account", lazy="raise")
    services: Mapped[list[Service]] = relationship(back_populates="account", lazy="raise")


class Contact(IdMixin, CreatedMixin, Base):
    __tablename__ = "contacts"
    __table_args__ = (
        UniqueConstraint("account_id", "email", name="uq_contacts_account_email"),
        Index("ix_contacts_email", "email"),
        Index("ix_contacts_phone", "phone"),  # a caller's E.164 number finds its contact
    )

    # None: a sender the desk does not know yet (a mail from a new address), waiting for an
    # agent to link it to an account.
    account_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("accounts.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(32))  # E.164 when a valid number
    is_primary: Mapped[bool] = mapped_column(default=False)
    # The language of the mails the desk sends it ("en", "de"; None: the desk's default).
    language: Mapped[str | None] = mapped_column(String(8))

    account: Mapped[Account | None] = relationship(back_populates="contacts", lazy="raise")


class Service(IdMixin, CreatedMixin, Base):
    """One thing an account has on our infrastructure: a domain, a mailbox, a DNS zone, ..."""

    __tablename__ = "services"
    __table_args__ = (
        CheckConstraint(check_in("kind", values(ServiceKind)), name="kind"),
        CheckConstraint(check_in("status", values(ServiceStatus)), name="status"),
        UniqueConstraint("kind", "name", name="uq_services_kind_name"),
        Index("ix_services_account_id_kind", "account_id", "kind"),
    )

    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("accounts.id", ondelete="CASCADE"))
    host_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("managed_hosts.id"))
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(255))  # example.com, info@example.com, ...
    status: Mapped[str] = mapped_column(String(16), default=ServiceStatus.active.value)
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime | None] = mapped_column()

    account: Mapped[Account] = relationship(back_populates="services", lazy="raise")
    host: Mapped[ManagedHost | None] = relationship(lazy="raise")
