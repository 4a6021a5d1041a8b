"""Redis pub/sub channels of live updates, and which ones an event goes to."""

from __future__ import annotations

from typing import Any

PREFIX = "sitedesk:"
STAFF_ALL = PREFIX + "staff"


def account(account_id: int) -> str:
    return f"{PREFIX}account:{account_id}"


def tier(n: int) -> str:
    return f"{PREFIX}tier:{n}"


def agent(agent_id: int) -> str:
    return f"{PREFIX}agent:{agent_id}"


def channels_for(account_id: int | None, payload: dict[str, Any]) -> list[str]:
    """Public events reach the account's customers; every event reaches the staff who own the
    ticket, its tier's queue watchers and admins."""
    out = [STAFF_ALL]
    data = payload.get("data") or {}
    if account_id is not None and payload.get("visibility", "public") == "public":
        out.append(account(account_id))
    for key in ("tier", "from_tier"):
        if isinstance(data.get(key), int):
            out.append(tier(data[key]))
    for key in ("owner_agent_id", "previous_owner", "from_agent_id", "agent_id"):
        if isinstance(data.get(key), int):
            out.append(agent(data[key]))
    return list(dict.fromkeys(out))
