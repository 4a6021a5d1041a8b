"""The closed vocabularies of the domain, shared by models, schemas and CHECK constraints."""

from __future__ import annotations

from enum import StrEnum


class AccountStatus(StrEnum):
    active = "active"
    suspended = "suspended"
    closed = "closed"


class TokenScope(StrEnum):
    """What a bearer token may be used for."""

    api = "api"  # the HTTP API (every log-in token has it)
    batch = "batch"  # the Python batch API (gateway/batch.py): bulk steps as its user


class ServiceKind(StrEnum):
    domain = "domain"
    web_hosting = "web_hosting"
    mailbox = "mailbox"
    dns_zone = "dns_zone"
    ftp_account = "ftp_account"
    database = "database"
    tls_certificate = "tls_certificate"
    cron = "cron"


class ServiceStatus(StrEnum):
    active = "active"
    suspended = "suspended"
    pending = "pending"
    cancelled = "cancelled"


class HostRole(StrEnum):
    shared = "shared"
    web = "web"
    mail = "mail"
    dns = "dns"
    database = "database"
    ftp = "ftp"


class HostStatus(StrEnum):
    active = "active"
    draining = "draining"
    down = "down"
    retired = "retired"


class UserRole(StrEnum):
    customer = "customer"
    agent = "agent"
    admin = "admin"


class Presence(StrEnum):
    online = "online"
    away = "away"
    offline = "offline"


class Channel(StrEnum):
    phone = "phone"
    email = "email"
    portal = "portal"
    api = "api"


CUSTOMER_CHANNELS = (Channel.portal, Channel.api)
"""The channels customers write by themselves (the others are staff's or the mail's)."""


class TicketStatus(StrEnum):
    new = "new"
    open = "open"
    pending_customer = "pending_customer"
    pending_change = "pending_change"
    resolved = "resolved"
    closed = "closed"


# The ticket status sets, defined once: the queries in store/ use them, and
# actors/tickets/states.py builds the transition table on them.
OWNED_STATUSES = (TicketStatus.open, TicketStatus.pending_customer, TicketStatus.pending_change)
"""Work with an owner: each one counts against its agent's capacity."""
OPEN_STATUSES = (TicketStatus.new, *OWNED_STATUSES)
"""Work not finished: waiting in a tier's queue or with an owner; its SLA clocks run."""
DONE_STATUSES = (TicketStatus.resolved, TicketStatus.closed)
"""Finished work: resolved (reopens on a reply, closes when quiet) or closed for good."""
TIMED_STATUSES = (*OPEN_STATUSES, TicketStatus.resolved)
"""The statuses with a timer: SLA warnings and breaches, or the auto-close of a resolved one."""


class Priority(StrEnum):
    low = "low"
    normal = "normal"
    high = "high"
    urgent = "urgent"


PRIORITY_RANK: dict[str, int] = {
    Priority.urgent: 0,
    Priority.high: 1,
    Priority.normal: 2,
    Priority.low: 3,
}
"""The queue order, most urgent first: the SQL queue and the tier pools' plan sort by it."""
UNRANKED = len(PRIORITY_RANK)  # after every known priority


class Direction(StrEnum):
    inbound = "inbound"
    outbound = "outbound"
    internal = "internal"


class Visibility(StrEnum):
    public = "public"
    internal = "internal"


class ChangeStatus(StrEnum):
    queued = "queued"
    applying = "applying"
    applied = "applied"
    failed = "failed"
    rolled_back = "rolled_back"
    cancelled = "cancelled"


class AttemptOutcome(StrEnum):
    applied = "applied"
    already_applied = "already_applied"
    failed = "failed"
    rolled_back = "rolled_back"
    unknown = "unknown"


class InboundStatus(StrEnum):
    """What became of a received mail."""

    received = "received"  # stored; its ticket step not yet done (redone on redelivery)
    ticketed = "ticketed"  # opened a new ticket
    appended = "appended"  # a message on an existing ticket
    bounce = "bounce"  # a delivery report, attached to the ticket of the mail it is about
    held = "held"  # from a sender on no account: waits for an agent to link the contact
    refused = "refused"  # kept, but no ticket step (an unmatched bounce, a refused sender)


class MailKind(StrEnum):
    """Why the desk sends a mail."""

    customer = "customer"  # a public reply or state change of the customer's ticket
    agent = "agent"  # assignment, escalation, SLA warning
    auto_reply = "auto_reply"  # the acknowledgement of a new ticket received by mail


class DeliveryStatus(StrEnum):
    queued = "queued"
    sent = "sent"
    failed = "failed"  # the relay refused it for good, or it ran out of attempts
    suppressed = "suppressed"  # not sent: the address bounced for good, or a loop rule


class CallDirection(StrEnum):
    inbound = "inbound"
    outbound = "outbound"


class CallStatus(StrEnum):
    ringing = "ringing"  # call.started seen, not ended yet
    ended = "ended"


def values(enum: type[StrEnum]) -> tuple[str, ...]:
    return tuple(m.value for m in enum)
