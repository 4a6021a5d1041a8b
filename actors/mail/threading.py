"""Threading: which ticket a received mail belongs to, and why, in the order of issue 9.

1. The same Message-ID was stored before: a duplicate, not a second message.
2. Our own signed Message-ID in In-Reply-To/References: that ticket (the signature cannot be
   forged, so it is trusted whoever replies).
3. A ticket number in the subject (``[TT-000123]`` or ``TT-000123``), only when the sender's
   address is the ticket's requester or a contact of that ticket's account: a stranger never
   injects mail into another customer's ticket, and a display name proves nothing.
4. Otherwise a new ticket.

A pure decision: what it needs to know about tickets and contacts it asks `ThreadLookup`,
which the caller implements over its own unit of work.
"""

from __future__ import annotations

import contextlib
import re
from enum import StrEnum
from typing import Annotated, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from actors.mail.message import ParsedMail
from actors.mail.message_id import own_ids
from store.models.ticket import ticket_id_from_number, ticket_number

MAX_SUBJECT_CHARS = 1000  # of a subject scanned for ticket numbers
MAX_SUBJECT_NUMBERS = 5  # distinct ticket numbers of one subject looked up
# A ticket number standing alone (bare or in brackets), not part of a longer token; its
# digits are then read by the desk's own whole-string parser.
_TAG = re.compile(r"(?<![A-Za-z0-9_-])TT-[0-9]{1,18}(?![A-Za-z0-9_-])", re.ASCII | re.IGNORECASE)
_DOT_ATOM_LOCAL = re.compile(r"[a-z0-9!#$%&'*+/=?^_`{|}~.-]+", re.ASCII)


class ThreadLookup(Protocol):
    """What threading asks the desk. Addresses passed in are canonical (see
    `canonical_address`); `contact_accounts` must match them case-insensitively."""

    def message_seen(self, message_id: str) -> bool:
        """Whether a message with this Message-ID (without angle brackets) is stored."""
        ...

    def ticket_account(self, ticket_id: int) -> int | None:
        """The account of a ticket; None when there is no such ticket."""
        ...

    def ticket_requester_email(self, ticket_id: int) -> str | None:
        """The e-mail address of the ticket's requester, if it has one."""
        ...

    def contact_accounts(self, email: str) -> set[int]:
        """The accounts that have a contact with this address."""
        ...


class ThreadReason(StrEnum):
    """Why a mail was put on an existing ticket."""

    REPLY_TO_OUR_MAIL = "reply_to_our_mail"  # our signed Message-ID in In-Reply-To/References
    NUMBER_FROM_REQUESTER = "ticket_number_from_requester"
    NUMBER_FROM_ACCOUNT_CONTACT = "ticket_number_from_account_contact"


class NewTicketReason(StrEnum):
    """Why a mail opens a new ticket."""

    NO_THREAD = "no_thread"  # nothing in the mail ties it to a ticket
    UNKNOWN_TICKET_NUMBER = "unknown_ticket_number"  # the subject names no ticket that exists
    NUMBER_FROM_STRANGER = "ticket_number_from_stranger"  # sender not on that ticket's account


class AppendTo(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal["append"] = "append"
    ticket_id: int
    reason: ThreadReason
    detail: str  # the reason in words, for the agent


class NewTicket(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal["new"] = "new"
    reason: NewTicketReason
    detail: str
    # A ticket the subject named but the sender may not write to: shown to the agent, who
    # may link the sender to the account and merge.
    named_ticket_id: int | None = None


class Duplicate(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal["duplicate"] = "duplicate"
    message_id: str
    detail: str


ThreadDecision = Annotated[AppendTo | NewTicket | Duplicate, Field(discriminator="kind")]


def decide(mail: ParsedMail, lookup: ThreadLookup, *, secret: bytes) -> ThreadDecision:
    """Where `mail` goes: a duplicate, an existing ticket, or a new one (rules in the module
    docstring, in that order). `secret` is the key of our Message-IDs."""
    seen = duplicate(mail.message_id, lookup)
    if seen is not None:
        return seen
    for own in own_ids(secret, mail.in_reply_to, mail.references):
        if lookup.ticket_account(own.ticket_id) is not None:
            number = ticket_number(own.ticket_id)
            return AppendTo(
                ticket_id=own.ticket_id,
                reason=ThreadReason.REPLY_TO_OUR_MAIL,
                detail=f"a reply to the desk's mail on {number}",
            )
    return _by_subject(mail, lookup)


def duplicate(message_id: str | None, lookup: ThreadLookup) -> Duplicate | None:
    """A `Duplicate` when a message with this Message-ID is already stored (a mail without
    one is never a duplicate by this rule)."""
    if not message_id or not lookup.message_seen(message_id):
        return None
    return Duplicate(
        message_id=message_id, detail="this Message-ID was received before: one message kept"
    )


def subject_ticket_ids(subject: str) -> list[int]:
    """The ticket ids the subject names, in order, each once, bounded in count."""
    found: list[int] = []
    for m in _TAG.finditer(subject[:MAX_SUBJECT_CHARS]):
        ticket_id = ticket_id_from_number(m.group())
        if ticket_id is not None and ticket_id not in found:
            found.append(ticket_id)
            if len(found) == MAX_SUBJECT_NUMBERS:
                break
    return found


def canonical_address(value: str | None) -> str | None:
    """An addr-spec as compared by the desk: trimmed, lower-cased, a needlessly quoted local
    part unquoted, an internationalised domain in its ASCII form; None when it is no address."""
    if not value:
        return None
    text = value.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in text):
        return None
    local = local.lower()
    if len(local) > 2 and local[0] == local[-1] == '"' and _DOT_ATOM_LOCAL.fullmatch(local[1:-1]):
        local = local[1:-1]
    domain = domain.lower().rstrip(".")
    if not domain.isascii():
        with contextlib.suppress(UnicodeError):  # else compared as it is
            domain = domain.encode("idna").decode("ascii")
    return f"{local}@{domain}"


def sender_address(mail: ParsedMail) -> str | None:
    """The canonical address of the From mailbox; never its display name."""
    return canonical_address(mail.from_address.address if mail.from_address else None)


def _by_subject(mail: ParsedMail, lookup: ThreadLookup) -> AppendTo | NewTicket:
    sender = sender_address(mail)
    accounts: set[int] | None = None  # the sender's accounts, asked once
    stranger_to: int | None = None
    named = subject_ticket_ids(mail.subject)
    for ticket_id in named:
        account = lookup.ticket_account(ticket_id)
        if account is None:
            continue
        number = ticket_number(ticket_id)
        if sender is not None:
            if canonical_address(lookup.ticket_requester_email(ticket_id)) == sender:
                return AppendTo(
                    ticket_id=ticket_id,
                    reason=ThreadReason.NUMBER_FROM_REQUESTER,
                    detail=f"{number} in the subject, sent by its requester",
                )
            if accounts is None:
                accounts = lookup.contact_accounts(sender)
            if account in accounts:
                return AppendTo(
                    ticket_id=ticket_id,
                    reason=ThreadReason.NUMBER_FROM_ACCOUNT_CONTACT,
                    detail=f"{number} in the subject, sent by a contact of its account",
                )
        if stranger_to is None:
            stranger_to = ticket_id
    if stranger_to is not None:
        return NewTicket(
            reason=NewTicketReason.NUMBER_FROM_STRANGER,
            named_ticket_id=stranger_to,
            detail=(
                f"the subject names {ticket_number(stranger_to)}, but the sender is neither "
                "its requester nor a contact of its account: a new ticket"
            ),
        )
    if named:
        return NewTicket(
            reason=NewTicketReason.UNKNOWN_TICKET_NUMBER,
            detail="the subject names a ticket number that does not exist: a new ticket",
        )
    return NewTicket(reason=NewTicketReason.NO_THREAD, detail="not a reply to a ticket")
