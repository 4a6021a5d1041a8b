"""The transactional outbox: written in the same transaction as the change it announces, each
row carrying its event's envelope (topic, account, payload) and its audience (who hears it)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, false, text
from sqlalchemy.orm import Mapped, mapped_column

from store.models.base import Base, CreatedMixin, IdMixin, JsonDoc


def _ids(values: Iterable[int | None]) -> tuple[int, ...]:
    return tuple(sorted({v for v in values if v is not None}))


@dataclass(frozen=True)
class Audience:
    """Who hears an event, decided by whoever makes it and stored with its outbox row: admins
    always; the customers of `account_id` when `public`; the agents watching the queue of one
    of `tiers`; the agents in `agents`. What the event's payload says decides nothing."""

    account_id: int | None
    public: bool
    tiers: tuple[int, ...] = ()
    agents: tuple[int, ...] = ()

    @classmethod
    def of(
        cls,
        account_id: int | None,
        *,
        public: bool,
        tiers: Iterable[int | None] = (),
        agents: Iterable[int | None] = (),
    ) -> Audience:
        """An audience with the unset (None) tiers and agents left out, each named once."""
        return cls(account_id, public and account_id is not None, _ids(tiers), _ids(agents))


@dataclass(frozen=True)
class Listener:
    """Whom a stream is for: an admin hears `everything`; a customer the public events of
    `account_id`; an agent the events of `tier`'s queue and those naming `agent_id`. A listener
    with none of these hears nothing."""

    everything: bool = False
    account_id: int | None = None
    tier: int | None = None
    agent_id: int | None = None


class OutboxEvent(IdMixin, CreatedMixin, Base):
    __tablename__ = "outbox_events"
    __table_args__ = (
        Index("ix_outbox_events_unpublished", "published_at", "id"),
        Index("ix_outbox_events_account", "account_id", "id"),  # a customer's replay
        Index("ix_outbox_events_unmailed", "mailed_at", "id"),  # the mail planner's next rows
    )

    topic: Mapped[str] = mapped_column(String(64))  # ticket.assigned, change.queued, ...
    account_id: Mapped[int | None] = mapped_column()
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    published_at: Mapped[datetime | None] = mapped_column()
    # When the mail planner (actors/notify/mail_actor.py) looked at it: its mails are planned.
    mailed_at: Mapped[datetime | None] = mapped_column()
    # The audience (see Audience); account_id is its account.
    public: Mapped[bool] = mapped_column(default=False, server_default=false())
    tiers: Mapped[list[int]] = mapped_column(JsonDoc, default=list, server_default=text("'[]'"))
    agents: Mapped[list[int]] = mapped_column(JsonDoc, default=list, server_default=text("'[]'"))

    @property
    def audience(self) -> Audience:
        return Audience(self.account_id, self.public, tuple(self.tiers), tuple(self.agents))

    def envelope(self) -> dict[str, Any]:
        """The event as a live stream carries it: its outbox id, topic and account, then the
        payload (the audience stays on the server)."""
        return {"id": self.id, "topic": self.topic, "account_id": self.account_id, **self.payload}

    @staticmethod
    def audience_columns(audience: Audience) -> dict[str, Any]:
        """The columns that hold `audience`, for a row written without the ORM."""
        return {
            "account_id": audience.account_id,
            "public": audience.public,
            "tiers": list(audience.tiers),
            "agents": list(audience.agents),
        }
