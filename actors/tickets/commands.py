"""What can happen to a ticket: one typed command per step, as one discriminated union.

The routes, the batch API and the SLA clock build a command; the account's lane carries it to
`TicketLifecycle.operate`, which dispatches it with `match`. Commands are plain data: whether
the step is allowed (who asks, the ticket's status) is decided there, under the row lock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from actors.phone.numbers import to_e164
from actors.text import Text
from store.models.enums import CallDirection, ChangeStatus, Channel, Visibility


def _e164(value: str) -> str:
    return to_e164(value)  # InvalidPhoneNumber is a ValueError: a field error with the reason


class Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Take(Command):
    """An agent takes a waiting ticket of their tier."""

    kind: Literal["take"] = "take"


class Handover(Command):
    """Give the ticket to another agent of its tier."""

    kind: Literal["handover"] = "handover"
    agent_id: int


class Escalate(Command):
    """Move the ticket up one support tier, back into that tier's queue."""

    kind: Literal["escalate"] = "escalate"
    reason: Text = Field(min_length=1, max_length=2000)


class Resolve(Command):
    """Mark the ticket resolved, with an optional closing note to the customer."""

    kind: Literal["resolve"] = "resolve"
    note: Text | None = Field(default=None, max_length=100_000)


class FilePart(BaseModel):
    """A file on a message: a part of a received mail, or one uploaded with a new ticket or
    a message (its name and type cleaned where it came in, gateway/uploads.py)."""

    model_config = ConfigDict(frozen=True)

    filename: str = Field(min_length=1, max_length=255)
    content_type: str = Field(min_length=1, max_length=255)
    data: bytes = Field(repr=False)


class Reply(Command):
    """A message on the ticket: a customer's or an agent's public reply, or an internal note,
    with the files uploaded with it (stored with the message, in its unit of work).

    `channel` is the one the message came or goes by: a customer's is how they wrote (the
    portal, else the API); left out for staff, the ticket's own channel."""

    kind: Literal["reply"] = "reply"
    body: Text = Field(min_length=1, max_length=100_000)
    visibility: Visibility = Visibility.public
    pending_customer: bool = False  # staff: the ticket now waits on the customer's answer
    channel: Channel | None = None
    attachments: list[FilePart] = Field(default_factory=list, max_length=100)


class Reopen(Command):
    kind: Literal["reopen"] = "reopen"


class Close(Command):
    kind: Literal["close"] = "close"


class SlaFired(Command):
    """The SLA clock saw a warning or breach time come at `at` (re-checked on the ticket)."""

    kind: Literal["sla_fired"] = "sla_fired"
    which: Literal["first_response", "resolution"]
    action: Literal["warning", "breach"]
    at: datetime


class AutoClose(Command):
    """The SLA clock saw a resolved ticket's quiet period end at `at` (re-checked)."""

    kind: Literal["auto_close"] = "auto_close"
    at: datetime


class ChangeRequested(Command):
    """A change on a host was requested for the ticket: an `open` ticket waits for it."""

    kind: Literal["change_requested"] = "change_requested"
    change_id: str
    change_kind: str
    describe: str


class ChangeSettled(Command):
    """One of the ticket's changes settled; when no other is pending the ticket goes back to
    work. `error` is what the customer may read about a change that did not apply."""

    kind: Literal["change_settled"] = "change_settled"
    change_id: str
    change_kind: str
    status: Literal[ChangeStatus.applied, ChangeStatus.failed, ChangeStatus.rolled_back]
    describe: str
    others_pending: bool = False
    error: str | None = None


class MailReceived(Command):
    """A received mail that threading put on this ticket (the SMTP intake's step).

    `inbound_mail_id` makes it happen once: the step claims that stored mail, and a
    redelivered or replayed one finds it claimed and does nothing. A customer's mail reopens a
    resolved ticket and answers one waiting on them, unless it is `auto_submitted` (an
    out-of-office, a delivery report): stored, but nothing moves. A `bounce` is an internal
    note for the agents."""

    kind: Literal["mail_received"] = "mail_received"
    inbound_mail_id: int
    body: Text = Field(min_length=1, max_length=1_000_000)
    author_name: str = Field(min_length=1, max_length=200)
    author_user_id: int | None = None
    email_message_id: str | None = Field(default=None, max_length=998)
    email_headers: dict[str, str] = Field(default_factory=dict)
    auto_submitted: bool = False
    bounce: bool = False
    detail: str = Field(default="", max_length=2000)  # why it was put here, for the agents
    attachments: list[FilePart] = Field(default_factory=list)


CallId = Annotated[
    str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@+-]*$")
]
E164 = Annotated[str, AfterValidator(_e164)]


class LogCall(Command):
    """A phone call with the customer, on this ticket: a `calls` row and a message (channel
    `phone`, the notes). Internal by default, as helpdesks keep call notes for the agents; a
    public one tells the customer what was said and counts as the first response.

    Numbers are E.164 (actors/phone/numbers.py); `started_at` defaults to the end of the call
    being now. A `provider_call_id` makes it happen once: the call the provider reported (or
    logged before) is filled in, never a second one."""

    kind: Literal["log_call"] = "log_call"
    caller_number: E164
    callee_number: E164 | None = None
    direction: CallDirection = CallDirection.inbound
    duration_seconds: int = Field(default=0, ge=0, le=24 * 3600)
    notes: Text = Field(default="", max_length=100_000)
    visibility: Visibility = Visibility.internal
    started_at: AwareDatetime | None = None
    provider_call_id: CallId | None = None

    @property
    def customer_number(self) -> str:
        """The customer's end of the call: the caller inbound, the callee outbound."""
        if self.direction is CallDirection.outbound and self.callee_number is not None:
            return self.callee_number
        return self.caller_number


TicketCommand = Annotated[
    Take
    | Handover
    | Escalate
    | Resolve
    | Reply
    | Reopen
    | Close
    | SlaFired
    | AutoClose
    | ChangeRequested
    | ChangeSettled
    | MailReceived
    | LogCall,
    Field(discriminator="kind"),
]
