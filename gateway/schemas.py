"""Request bodies of the HTTP API, and its page envelope (what reads return are the read
models' DTOs, store/read/)."""

from __future__ import annotations

from typing import Annotated, Generic, Literal, TypeVar

from annotated_types import Ge, Le
from pydantic import BaseModel, ConfigDict, Field

from actors.text import Category, Line, Text
from store.models.enums import Channel, Presence, Priority

T = TypeVar("T")

# A row's id as a request names it: positive, and at most 2**53 - 1, the largest integer every
# JSON client keeps exactly (a larger one overflowed SQLite's 64-bit integers: a 500).
MAX_ID = 2**53 - 1
Id = Annotated[int, Ge(1), Le(MAX_ID)]


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int | None = None
    offset: int | None = None
    limit: int
    next_before: int | None = Field(default=None, description="Cursor of the next page, if any.")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# Every text field has a length limit and refuses control characters (see actors.text.Line
# and Text): a 422 names the field.
class TicketCreate(Strict):
    subject: Line = Field(min_length=1, max_length=300)
    body: Text = Field(min_length=1, max_length=100_000, description="What the customer needs.")
    channel: Channel | None = Field(
        default=None,
        description="Agents logging a call use 'phone' (their default); a customer's ticket "
        "has the channel they came by: 'portal' when logged in, 'api' with an API token.",
    )
    account_id: Id | None = Field(default=None, description="Required for agents.")
    contact_id: Id | None = None
    priority: Priority | None = Field(
        default=None, description="Left out: classified. Customers choose at most `high`."
    )
    category: Category | None = None


class MessageCreate(Strict):
    body: Text = Field(min_length=1, max_length=100_000)
    visibility: Literal["public", "internal"] = "public"
    pending_customer: bool = Field(
        default=False, description="Agents: the ticket now waits on the customer's reply."
    )
    channel: Channel | None = Field(
        default=None,
        description="Staff: the channel the reply goes out by; left out, the ticket's own. "
        "A customer's message has the channel it comes by: `portal` when logged in, `api` "
        "with an API token.",
    )


class EscalateIn(Strict):
    reason: Text = Field(min_length=3, max_length=2000)


class ResolveIn(Strict):
    note: Text | None = Field(default=None, max_length=100_000)


class HandoverIn(Strict):
    agent_id: Id


class PresenceIn(Strict):
    presence: Presence
