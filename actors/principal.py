"""Who acts on the desk: a logged-in user, or the system itself."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

Role = Literal["customer", "agent", "admin", "system"]


class Principal(BaseModel):
    """Who acts: a logged-in user, or the system itself (SLA clock, auto-close)."""

    user_id: int | None = None
    role: Role
    name: str
    account_id: int | None = None
    agent_id: int | None = None
    tier: int | None = None

    @property
    def is_staff(self) -> bool:
        return self.role in ("agent", "admin", "system")

    @property
    def label(self) -> str:
        return f"{self.role}:{self.name}"


SYSTEM = Principal(role="system", name="sitedesk")
