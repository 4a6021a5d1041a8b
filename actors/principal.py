"""Who acts on the desk: a logged-in user, or the system itself."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from store.models.enums import Channel

Role = Literal["customer", "agent", "admin", "system"]


class Principal(BaseModel):
    """Who acts: a logged-in user, or the system itself (SLA clock, auto-close)."""

    user_id: int | None = None
    role: Role
    name: str
    account_id: int | None = None
    agent_id: int | None = None
    tier: int | None = None
    # How a customer came in: `portal` with a log-in session (the pages log in), `api` with an
    # API token issued for an integration; None for staff tools and the system.
    via: Channel | None = None

    @property
    def is_staff(self) -> bool:
        return self.role in ("agent", "admin", "system")

    @property
    def label(self) -> str:
        return f"{self.role}:{self.name}"


SYSTEM = Principal(role="system", name="sitedesk")
