"""What crosses actor boundaries: ids and these pydantic models, never sessions or clients."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field

from store.models.enums import Channel, Priority, TicketStatus, Visibility

Role = Literal["customer", "agent", "admin", "system"]

# -- text people type ---------------------------------------------------------------------------
# C0 controls, DEL, C1 controls (U+0085 among them) and the Unicode line and paragraph
# separators: NUL is refused by PostgreSQL (one in a group commit failed every ticket of the
# batch) and the others split or hide lines wherever the text is shown or parsed again.
_LINE_OK = re.compile(r"[^\x00-\x1f\x7f-\x9f\u2028\u2029]*")
_TEXT_OK = re.compile(r"[^\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]*")  # \t and \n allowed
PARAMS_MAX_BYTES = 200 * 1024  # a TLS certificate chain and its key fit (64 KiB each at most)
PARAMS_MAX_DEPTH = 6
PARAMS_MAX_NODES = 2000


def _first_bad(value: str, ok: re.Pattern[str]) -> str:
    bad = next(c for c in value if not ok.fullmatch(c))
    return f"U+{ord(bad):04X}"


def plain_line(value: str) -> str:
    """A one-line text (a subject, a reason): no control characters at all."""
    if not _LINE_OK.fullmatch(value):
        raise ValueError(f"control character {_first_bad(value, _LINE_OK)} is not allowed")
    return value


def plain_text(value: str) -> str:
    """A multi-line text (a message body): line breaks and tabs, no other control character.
    CR LF and a lone CR become LF, so every stored body has one kind of line break."""
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    if not _TEXT_OK.fullmatch(value):
        raise ValueError(f"control character {_first_bad(value, _TEXT_OK)} is not allowed")
    return value


def scrub(value: str, *, lines: bool = True) -> str:
    """Text made by the system from other text (host output, a change's description) made
    fit for a ticket: every character `plain_text` (or `plain_line`) refuses becomes U+FFFD."""
    ok = _TEXT_OK if lines else _LINE_OK
    value = value.replace("\r\n", "\n")
    return "".join(c if ok.fullmatch(c) else "\ufffd" for c in value)


def bounded_params(value: dict[str, Any]) -> dict[str, Any]:
    """A change's parameters: plain JSON of bounded size and depth, keys short identifiers,
    strings without control characters other than line breaks and tabs (PEM text has them)."""
    nodes = 0

    def walk(v: Any, depth: int, where: str) -> None:
        nonlocal nodes
        nodes += 1
        if nodes > PARAMS_MAX_NODES:
            raise ValueError(f"more than {PARAMS_MAX_NODES} values")
        if depth > PARAMS_MAX_DEPTH:
            raise ValueError(f"{where}: nested deeper than {PARAMS_MAX_DEPTH} levels")
        if isinstance(v, dict):
            for k, item in v.items():
                if not isinstance(k, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", k):
                    raise ValueError(f"{where}: key {str(k)[:40]!r} is not a parameter name")
                walk(item, depth + 1, f"{where}.{k}")
        elif isinstance(v, list):
            for i, item in enumerate(v):
                walk(item, depth + 1, f"{where}[{i}]")
        elif isinstance(v, str):
            text = v.replace("\r\n", "\n")
            if not _TEXT_OK.fullmatch(text):
                raise ValueError(
                    f"{where}: control character {_first_bad(text, _TEXT_OK)} is not allowed"
                )

    walk(value, 1, "params")
    size = len(json.dumps(value, ensure_ascii=False).encode())
    if size > PARAMS_MAX_BYTES:
        raise ValueError(f"params: {size} bytes, more than {PARAMS_MAX_BYTES}")
    return value


def category_name(value: str) -> str:
    if not re.fullmatch(r"[a-z_]{1,32}", value):
        raise ValueError("a category is 1-32 lower-case letters or '_'")
    return value


Line = Annotated[str, AfterValidator(plain_line)]
Category = Annotated[str, AfterValidator(category_name)]
Text = Annotated[str, AfterValidator(plain_text)]
Params = Annotated[dict[str, Any], AfterValidator(bounded_params)]


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

# What a customer is told of a change that did not go through; the host's output and paths
# are for staff (GET /changes/{id} as staff, and the failure ticket's internal attachment).
CUSTOMER_ERROR = {
    "failed": "The change could not be applied. Support has been told and will follow up.",
    "rolled_back": "The change did not work as expected and was undone. Support has been told.",
}


class NewTicket(BaseModel):
    account_id: int
    subject: Line = Field(min_length=1, max_length=300)
    body: Text = Field(min_length=1, max_length=100_000)
    channel: Channel
    priority: Priority | None = None  # None: classified from the text
    category: Category | None = None
    contact_id: int | None = None
    requester: Principal
    idempotency_key: str | None = None
    request_hash: str = ""
    email_message_id: str | None = None
    email_headers: dict[str, Any] = Field(default_factory=dict)


class OwnerRead(BaseModel):
    agent_id: int
    name: str


class TicketRead(BaseModel):
    number: str
    account_id: int
    subject: str
    category: str
    channel: Channel
    status: TicketStatus
    priority: Priority
    tier: int
    owner: OwnerRead | None
    message_count: int
    first_response_due: datetime | None
    resolution_due: datetime | None
    first_responded_at: datetime | None
    sla_breached_at: datetime | None
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    closed_at: datetime | None


class AttachmentRead(BaseModel):
    filename: str
    content_type: str
    size: int
    sha256: str


class MessageRead(BaseModel):
    id: int
    direction: str
    channel: Channel
    visibility: Visibility
    author: str
    body: str
    created_at: datetime
    attachments: list[AttachmentRead] = Field(default_factory=list)


class EventRead(BaseModel):
    id: int
    kind: str
    visibility: Visibility
    data: dict[str, Any]
    created_at: datetime


class TicketDetail(TicketRead):
    messages: list[MessageRead]
    events: list[EventRead]


class QueuedTicket(BaseModel):
    """What a tier pool keeps of a ticket waiting for an owner."""

    id: int
    tier: int
    priority: str
    category: str
    created_at: datetime


class OpOutcome(BaseModel):
    """The result of a ticket operation, and what the pools must hear of it."""

    ticket: TicketRead
    released_agent: int | None = None  # an owner whose capacity frees up
    reclaimed_agent: int | None = None  # an owner whose capacity is used again
    enqueue: QueuedTicket | None = None  # a ticket that now waits in a tier's queue
    replayed: bool = False  # answered from the idempotency record, nothing done again


class ContactRead(BaseModel):
    id: int
    name: str
    email: str
    phone: str | None
    is_primary: bool


class ServiceRead(BaseModel):
    id: int
    kind: str
    name: str
    status: str
    host: str | None
    attributes: dict[str, Any]


class ChangeRead(BaseModel):
    id: str
    kind: str
    status: str
    ticket_number: str | None
    created_at: datetime
    applied_at: datetime | None
    error: str | None


class AccountView(BaseModel):
    """The 360-degree view of an account, as agents and the customer see it."""

    id: int
    code: str
    name: str
    status: str
    plan: str
    contacts: list[ContactRead]
    services: list[ServiceRead]
    open_tickets: list[TicketRead]
    past_tickets: list[TicketRead]
    recent_changes: list[ChangeRead]
    built_at: datetime
