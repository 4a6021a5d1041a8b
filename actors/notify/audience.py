"""Who hears an event on the live stream, in one place: the Redis channels an event goes out on
(from the audience stored with its outbox row), the channels a caller listens on, and what a
caller who reconnects with Last-Event-ID gets from the outbox (the same audience, filtered in
SQL), or the `reset` that tells it to reload instead."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from actors.principal import Principal
from store.models.outbox import Audience, Listener
from store.repositories import OutboxRepository

PREFIX = "sitedesk:"
STAFF_ALL = PREFIX + "staff"
REPLAY_LIMIT = 1000  # events a reconnecting stream is sent; beyond, it is told to reload
# Events go out in outbox-id order: the notifier holds a row this long for smaller ids not
# committed yet; a replay leaves out what it still holds (it comes live, in order).
HOLE_WAIT_SECONDS = 2.0


def account(account_id: int) -> str:
    return f"{PREFIX}account:{account_id}"


def tier(n: int) -> str:
    return f"{PREFIX}tier:{n}"


def agent(agent_id: int) -> str:
    return f"{PREFIX}agent:{agent_id}"


def channels_for(audience: Audience) -> list[str]:
    """The channels an event is published on: admins hear every event; the account's
    customers a public one; the watchers of each of its tiers' queues and each of its agents."""
    out = [STAFF_ALL]
    if audience.public and audience.account_id is not None:
        out.append(account(audience.account_id))
    out += [tier(n) for n in audience.tiers]
    out += [agent(a) for a in audience.agents]
    return out


def listener_of(caller: Principal) -> Listener:
    """A customer hears their own account; an agent their tier's queue and the events that
    name them; an admin everything; anyone else nothing."""
    if caller.role == "customer" and caller.account_id is not None:
        return Listener(account_id=caller.account_id)
    if caller.role == "agent" and caller.agent_id is not None and caller.tier is not None:
        return Listener(tier=caller.tier, agent_id=caller.agent_id)
    if caller.role == "admin":
        return Listener(everything=True)
    return Listener()


def subscriptions(who: Listener) -> list[str]:
    """The channels `who` listens on: an event reaches it live exactly when
    `channels_for(its audience)` shares one of them, as the outbox filter says on replay."""
    if who.everything:
        return [STAFF_ALL]
    out = [account(who.account_id)] if who.account_id is not None else []
    out += [tier(who.tier)] if who.tier is not None else []
    out += [agent(who.agent_id)] if who.agent_id is not None else []
    return out


@dataclass(frozen=True)
class Replay:
    """What a reconnecting stream is sent: the events it missed, oldest first, or (`reset` not
    None) a `reset` event telling it to reload, because they are not all there to send."""

    events: list[dict[str, Any]]
    reset: dict[str, Any] | None = None


def reset(newest: int, reason: str, message: str) -> Replay:
    """Carries the newest outbox id, so that a client reconnecting after it is not reset again."""
    event = {"id": newest, "topic": "reset", "reason": reason, "message": message}
    return Replay(events=[], reset=event)


def replay(s: Session, who: Listener, last_id: int, *, limit: int = REPLAY_LIMIT) -> Replay:
    """Every event after `last_id` that `who` hears, complete: or a reset when the outbox no
    longer keeps what came after `last_id` (`expired`), does not know `last_id` (`unknown`: the
    outbox was emptied or replaced), or `who` missed more than `limit` events (`too_many`)."""
    outbox = OutboxRepository(s)
    oldest, newest = outbox.id_range()
    if last_id > newest:
        return reset(newest, "unknown", f"event {last_id} is unknown here; reload")
    if last_id + 1 < oldest:
        return reset(newest, "expired", f"events after {last_id} are no longer kept; reload")
    rows = outbox.heard_after(who, last_id, limit=limit + 1, hold_seconds=HOLE_WAIT_SECONDS)
    if len(rows) > limit:
        return reset(newest, "too_many", f"more than {limit} events were missed; reload")
    return Replay(events=[r.envelope() for r in rows])
