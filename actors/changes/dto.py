"""What crosses actor boundaries about changes and hosts: these pydantic models."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field

from actors.text import Params
from actors.tickets.dto import QueuedTicket
from automation.changes import (
    Change,
)

PENDING = ("queued", "applying")
ACCEPTED = {"accepted": True}

# What a customer is told of a change that did not go through; the host's output and paths
# are for staff (GET /changes/{id} as staff, and the failure ticket's internal attachment).
CUSTOMER_ERROR = {
    "failed": "The change could not be applied. Support has been told and will follow up.",
    "rolled_back": "The change did not work as expected and was undone. Support has been told.",
}


CUSTOMER_OUTPUT = {
    "applied": "Applied.",
    "already_applied": "Applied.",
    "failed": "Not applied.",
    "rolled_back": "Undone.",
    "unknown": "Not confirmed; support will check.",
}


# -- what crosses the boundaries ----------------------------------------------------------------
def _change_kind(value: str) -> str:
    if not re.fullmatch(r"[a-z][a-z_]{0,47}", value):
        raise ValueError("a change kind is 1-48 lower-case letters or '_', e.g. dns_record_add")
    return value


class NewChange(BaseModel):
    """What a caller asks for: a change of `kind` with `params` on one of an account's services."""

    service_id: int
    kind: Annotated[str, AfterValidator(lambda v: _change_kind(v))]
    params: Params = Field(default_factory=dict)
    account_id: int | None = None
    ticket: str | None = None  # a ticket number (TT-000123): agents link their changes


class AttemptRead(BaseModel):
    attempt: int
    outcome: str
    finished_at: datetime | None
    output: str
    error: str | None


class ChangeDetail(BaseModel):
    id: str
    account_id: int
    service_id: int | None
    kind: str
    status: str
    source: str
    host: str | None
    host_id: int | None
    ticket_number: str | None
    params: dict[str, Any]
    error: str | None
    created_at: datetime
    updated_at: datetime
    applied_at: datetime | None
    attempts: list[AttemptRead] = Field(default_factory=list)
    replayed: bool = False


class ChangePlan(BaseModel):
    """A dry run: `summary` says in words what would change; `plan` is the exact host script,
    for staff only (it holds other tenants' lines of shared files such as a passwd file)."""

    dry_run: bool = True
    kind: str
    service_id: int
    host: str
    summary: str
    plan: str | None = None


class NewHost(BaseModel):
    name: str
    address: str
    ssh_port: int = 22
    ssh_user: str = "root"
    role: str = "shared"
    host_key: str
    credentials_ref: str
    root_dir: str
    layout: dict[str, Any] = Field(default_factory=dict)


class HostHealth(BaseModel):
    # up, down, host_key_mismatch, lock_busy (someone holds the automation lock too long),
    # stopped, unknown (no executor has it)
    state: str
    queued: int = 0
    last_error: str | None = None
    lock_busy_since: datetime | None = None


class HostRead(BaseModel):
    id: int
    name: str
    address: str
    ssh_port: int
    ssh_user: str
    role: str
    status: str
    host_key: str
    credentials_ref: str
    root_dir: str
    layout: dict[str, Any]
    pending_changes: int = 0
    health: HostHealth | None = None


@dataclass
class Prepared:
    """A change that passed validation and the access rules, ready to be recorded or planned."""

    account_id: int
    service_id: int
    host_id: int
    host_name: str
    ticket_id: int | None
    change: Change
    source: str


@dataclass
class Recorded:
    """What the actors must hear after outcomes were committed."""

    tickets: list[QueuedTicket] = field(default_factory=list)
    accounts: set[int] = field(default_factory=set)
    settled: list[str] = field(default_factory=list)
