"""People who log in (customers, agents, admins), agents' tiers, and API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from store.models.base import Base, BigId, CreatedMixin, IdMixin, JsonDoc, check_in
from store.models.enums import Presence, UserRole, values

if TYPE_CHECKING:
    from store.models.account import Account


class User(IdMixin, CreatedMixin, Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(check_in("role", values(UserRole)), name="role"),
        # a customer belongs to exactly one account; staff to none
        CheckConstraint(
            "(role = 'customer' AND account_id IS NOT NULL) OR "
            "(role <> 'customer' AND account_id IS NULL)",
            name="customer_has_account",
        ),
    )

    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str | None] = mapped_column(Text)  # argon2id; NULL = cannot log in
    account_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    contact_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("contacts.id"))
    is_active: Mapped[bool] = mapped_column(default=True)
    last_login_at: Mapped[datetime | None] = mapped_column()

    account: Mapped[Account | None] = relationship(lazy="raise")
    agent: Mapped[Agent | None] = relationship(back_populates="user", lazy="raise")


class Agent(IdMixin, CreatedMixin, Base):
    """A support agent: tier 1 to 3, skills, capacity and presence."""

    __tablename__ = "agents"
    __table_args__ = (
        CheckConstraint("tier BETWEEN 1 AND 3", name="tier"),
        CheckConstraint("capacity BETWEEN 0 AND 1000", name="capacity"),
        CheckConstraint(check_in("presence", values(Presence)), name="presence"),
    )

    user_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="CASCADE"), unique=True
    )
    tier: Mapped[int] = mapped_column()
    skills: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    capacity: Mapped[int] = mapped_column(default=5)
    presence: Mapped[str] = mapped_column(String(16), default=Presence.offline.value)

    user: Mapped[User] = relationship(back_populates="agent", lazy="raise")


class ApiToken(IdMixin, CreatedMixin, Base):
    """A bearer token. Only its SHA-256 is stored; the token itself is shown once."""

    __tablename__ = "api_tokens"
    __table_args__ = (Index("ix_api_tokens_user_id", "user_id"),)

    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))  # first characters, to tell tokens apart
    # Space-separated, as OAuth2 writes scopes: `api` (the HTTP API), `batch` (the Python
    # batch API). A log-in token has `api` only; integrations get what they are issued.
    scopes: Mapped[str] = mapped_column(String(100), default="api", server_default="api")
    expires_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    last_used_at: Mapped[datetime | None] = mapped_column()
