"""The ticket state machine: which move takes a ticket from which status to which.

Every status check of the ticket rules reads this table (the lifecycle, filing, assignment
and the tier pools); the status sets themselves live beside `TicketStatus` in
store/models/enums.py, because the queries in store/ need them too.

A target of `WORK` means "back to work": `open` when the ticket has an owner, `new` (waiting
in its tier's queue) when it has none. A move that leaves the status as it is appears with its
own status as the target: it is allowed there and changes nothing.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final, Literal

from store.models.enums import OPEN_STATUSES, OWNED_STATUSES, TicketStatus

S = TicketStatus
WORK: Final = "work"
Target = TicketStatus | Literal["work"]

TOP_TIER = 3  # support levels are 1, 2 and 3
FILED = S.new  # the status of every ticket when it is filed


class Move(StrEnum):
    """What moves a ticket between statuses (commands, and what some of them lead to)."""

    assign = "assign"  # a tier pool gives a waiting ticket to an agent
    take = "take"
    handover = "handover"
    escalate = "escalate"  # by an agent, or by an SLA breach
    resolve = "resolve"
    reopen = "reopen"  # asked for, or a customer's reply to a resolved ticket
    close = "close"
    auto_close = "auto_close"  # a resolved ticket that stayed quiet
    message = "message"  # any message: allowed on every ticket not closed, changes nothing
    await_customer = "await_customer"  # an agent's reply that waits on the customer
    customer_replied = "customer_replied"  # the customer answers a ticket waiting on them
    change_requested = "change_requested"  # a change on a host was asked for the ticket
    change_settled = "change_settled"  # the ticket's last pending change settled


def _same(statuses: tuple[TicketStatus, ...]) -> dict[TicketStatus, Target]:
    return {s: s for s in statuses}


TRANSITIONS: Final[dict[Move, dict[TicketStatus, Target]]] = {
    Move.assign: {S.new: S.open},
    # Taking an unowned ticket puts it to work; one waiting on the customer keeps waiting.
    Move.take: {S.new: S.open, **_same(OWNED_STATUSES)},
    Move.handover: {S.new: S.open, **_same(OWNED_STATUSES)},
    Move.escalate: {s: S.new for s in OPEN_STATUSES},
    Move.resolve: {s: S.resolved for s in OPEN_STATUSES},
    Move.reopen: {S.resolved: WORK},
    Move.close: {s: S.closed for s in (*OPEN_STATUSES, S.resolved)},
    Move.auto_close: {S.resolved: S.closed},
    Move.message: _same((*OPEN_STATUSES, S.resolved)),
    Move.await_customer: {S.new: S.pending_customer, S.open: S.pending_customer},
    Move.customer_replied: {S.pending_customer: WORK},
    Move.change_requested: {S.open: S.pending_change},
    Move.change_settled: {S.pending_change: WORK},
}


def back_to_work(owned: bool) -> TicketStatus:
    """The status of work that goes on: `open` with an owner, `new` in the queue without."""
    return S.open if owned else S.new


def allows(move: Move, status: str) -> bool:
    """Whether `move` may happen to a ticket in `status`."""
    return status in TRANSITIONS[move]


def after(move: Move, status: str, *, owned: bool) -> TicketStatus:
    """The status after `move` from `status` (`owned`: the ticket has an owner then).
    Raises ValueError for a move the table does not allow: check `allows` first."""
    target = TRANSITIONS[move].get(S(status))
    if target is None:
        raise ValueError(f"a ticket that is {status} can not {move}")
    return back_to_work(owned) if target == WORK else S(target)
