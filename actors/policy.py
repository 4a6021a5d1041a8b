"""Who may do what on the desk: the one written-down policy, enforced where the step runs.

Roles: a customer acts on their own account only; an agent works one support level (1-3) and
acts on the tickets of their level and the levels below it; an administrator (and the system:
SLA clock, auto-close, GDCAS) may do everything. What each level may ask GDCAS for is the
table at the end; administrators may request every change kind.

| step            | customer (own account) | agent                                  | admin |
|-----------------|------------------------|----------------------------------------|-------|
| take            | no                     | a waiting ticket of their own level    | no    |
| hand over       | no                     | tickets of their level or below        | yes   |
| escalate        | no                     | tickets of their level or below        | yes   |
| resolve         | no                     | tickets of their level or below        | yes   |
| public reply    | yes                    | tickets of their level or below        | yes   |
| internal note   | no                     | any ticket (notes are how levels talk) | yes   |
| reopen, close   | yes                    | tickets of their level or below        | yes   |
| change for it   | no (self-service only) | tickets of their level or below        | yes   |
| log a call      | no                     | internal: any; public: as a reply      | yes   |

A level-1 agent can not resolve a ticket escalated to level 3, nor reply in its name, nor hand
it over: the ticket was escalated because level 1 could not finish it.
"""

from __future__ import annotations

from enum import StrEnum

from actors.errors import NotAllowed
from actors.principal import Principal
from automation.changes import CHANGE_KINDS, CUSTOMER_SELF_SERVICE_KINDS


class Step(StrEnum):
    take = "take"
    handover = "handover"
    escalate = "escalate"
    resolve = "resolve"
    reply = "reply"
    note = "note"
    reopen = "reopen"
    close = "close"
    change = "change"  # request a change to the customer's hosting for the ticket
    call = "call"  # log a phone call on the ticket (internal; a public one is also a reply)


CUSTOMER_STEPS = frozenset({Step.reply, Step.reopen, Step.close})
# Every agent may add an internal note, and log the call they took (whoever picks up the
# phone); a public call log speaks to the customer, so it is also a reply (`reply` rules).
ANY_LEVEL_STEPS = frozenset({Step.note, Step.call})
WORDS = {
    Step.take: "take",
    Step.handover: "hand over",
    Step.escalate: "escalate",
    Step.resolve: "resolve",
    Step.reply: "reply on",
    Step.note: "add a note to",
    Step.reopen: "reopen",
    Step.close: "close",
    Step.change: "request changes for",
    Step.call: "log calls on",
}


def authorize_ticket_step(by: Principal, step: Step, *, ticket_tier: int, number: str) -> None:
    """Raise NotAllowed unless `by` may take `step` on a ticket now at level `ticket_tier`.

    The account check (a customer's own tickets only) is done before, by the lookup: another
    account's ticket is answered as not found, never as forbidden."""
    if by.role in ("admin", "system"):
        if step is Step.take:
            raise NotAllowed("only agents take tickets")
        return
    if by.role == "customer":
        if step not in CUSTOMER_STEPS:
            raise NotAllowed(f"customers do not {WORDS[step]} tickets")
        return
    if by.role != "agent" or by.tier is None:
        raise NotAllowed(f"only support staff {WORDS[step]} tickets")
    if step in ANY_LEVEL_STEPS:
        return
    if step is Step.take:
        if ticket_tier != by.tier:
            raise NotAllowed(
                f"{number} is in the level {ticket_tier} queue, you work level {by.tier}"
            )
        return
    if ticket_tier > by.tier:
        raise NotAllowed(
            f"{number} is at level {ticket_tier}; level {by.tier} agents do not {WORDS[step]} it"
        )


# -- change kinds by support level ------------------------------------------------------------
# Level 1 handles the everyday mail and FTP work beside the self-service kinds; sites,
# databases and certificates are level 2's; suspending an account is level 3's.
_TIER1_KINDS = CUSTOMER_SELF_SERVICE_KINDS | {
    "mailbox_create", "mailbox_delete", "ftp_account_create",
}  # fmt: skip
_TIER2_KINDS = _TIER1_KINDS | {
    "vhost_create", "vhost_delete", "database_create", "database_user_create", "tls_install",
}  # fmt: skip
KINDS_BY_TIER: dict[int, frozenset[str]] = {
    1: frozenset(_TIER1_KINDS),
    2: frozenset(_TIER2_KINDS),
    3: frozenset(CHANGE_KINDS),
}


def authorize_change_kind(by: Principal, kind: str) -> None:
    """Raise NotAllowed unless `by` may request a change of `kind` (an unknown kind passes:
    the catalog refuses it with the list of kinds)."""
    if kind not in CHANGE_KINDS or by.role in ("admin", "system"):
        return
    if by.role == "customer":
        if kind not in CUSTOMER_SELF_SERVICE_KINDS:
            allowed = ", ".join(sorted(CUSTOMER_SELF_SERVICE_KINDS))
            raise NotAllowed(
                f"{kind!r} is not a self-service change; open a ticket, or use: {allowed}"
            )
        return
    if by.role != "agent":
        raise NotAllowed("only customers, agents and administrators request changes")
    if kind not in KINDS_BY_TIER.get(by.tier or 0, frozenset()):
        needed = min(t for t, kinds in KINDS_BY_TIER.items() if kind in kinds)
        raise NotAllowed(
            f"level {by.tier} agents do not request {kind} changes; "
            f"escalate the ticket to level {needed}"
        )
