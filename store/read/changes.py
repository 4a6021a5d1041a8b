"""A change to a customer's hosting as its readers see it: staff the host's output, the
customer plain words instead (host output names paths and other tenants' data)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from store.db import Database
from store.models import ChangeRequest
from store.models.enums import AttemptOutcome, ChangeStatus
from store.models.ticket import ticket_number
from store.repositories import AccountRepository, ChangeRepository, HostRepository

PENDING = (ChangeStatus.queued, ChangeStatus.applying)
"""A change not settled yet: its host's executor still owes an outcome."""

# How parameters rest in the SCDB: a hashed secret under SECRETS_KEY; the secret of a kind in
# KEPT_SECRETS (a TLS private key) itself, until the change settles.
SECRETS_KEY = "_secret_hashes"
KEPT_SECRETS = frozenset({"tls_install"})
MASK = "**********"  # = automation.changes.base.SECRET_MASK (the store imports no automation)

# What a customer is told of a change that did not go through; the host's output and paths
# are for staff (GET /changes/{id} as staff, and the failure ticket's internal attachment).
CUSTOMER_ERROR: dict[str, str] = {
    ChangeStatus.failed: (
        "The change could not be applied. Support has been told and will follow up."
    ),
    ChangeStatus.rolled_back: (
        "The change did not work as expected and was undone. Support has been told."
    ),
}
CUSTOMER_OUTPUT: dict[str, str] = {
    AttemptOutcome.applied: "Applied.",
    AttemptOutcome.already_applied: "Applied.",
    AttemptOutcome.failed: "Not applied.",
    AttemptOutcome.rolled_back: "Undone.",
    AttemptOutcome.unknown: "Not confirmed; support will check.",
}


class AttemptRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # built straight from its ORM row

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


class ServicePlace(NamedTuple):
    account_id: int
    host_id: int | None
    kind: str = ""
    name: str = ""
    unix_user: str = ""  # the account's user on the host


def public_params(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """Stored parameters fit to show: no secret hashes, a kept secret masked."""
    data = {k: v for k, v in params.items() if k != SECRETS_KEY}
    if kind in KEPT_SECRETS and "private_key" in data:
        data["private_key"] = MASK
    return data


def change_detail(s: Session, row: ChangeRequest) -> ChangeDetail:
    """A change as staff see it, with every attempt and what the host said."""
    host = HostRepository(s).get(row.host_id).name if row.host_id else None
    return ChangeDetail(
        id=row.id,
        account_id=row.account_id,
        service_id=row.service_id,
        kind=row.kind,
        status=row.status,
        source=row.source,
        host=host,
        host_id=row.host_id,
        ticket_number=ticket_number(row.ticket_id) if row.ticket_id else None,
        params=public_params(row.kind, row.params),
        error=row.error,
        created_at=row.created_at,
        updated_at=row.updated_at,
        applied_at=row.applied_at,
        attempts=[AttemptRead.model_validate(a) for a in ChangeRepository(s).attempts(row.id)],
    )


def customer_error(status: str) -> str:
    """The plain words a customer reads for a change that settled `status` with an error."""
    return CUSTOMER_ERROR.get(status, "The change could not be applied.")


def for_customer(detail: ChangeDetail) -> ChangeDetail:
    """A change as its customer sees it: plain words instead of host output and paths."""
    return detail.model_copy(
        update={
            "error": customer_error(detail.status) if detail.error else None,
            "attempts": [
                a.model_copy(
                    update={
                        "output": CUSTOMER_OUTPUT.get(a.outcome, ""),
                        "error": CUSTOMER_ERROR.get(a.outcome, "Not applied.") if a.error else None,
                    }
                )
                for a in detail.attempts
            ],
        }
    )


def is_change_id(value: str) -> bool:
    """Change ids are UUIDs: anything else names no change (and is never looked up)."""
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


class ChangeReads:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, change_id: str, *, account_id: int | None = None) -> ChangeDetail | None:
        """A change as staff see it; None when there is none, or (with `account_id`) when it
        is another account's."""
        with self.db.read() as s:
            row = ChangeRepository(s).find(change_id) if is_change_id(change_id) else None
            if row is None or (account_id is not None and row.account_id != account_id):
                return None
            return change_detail(s, row)

    def service_place(self, service_id: int) -> ServicePlace | None:
        """Whose a service is and where it runs (None: no such service): the account's lane
        takes a change request of it, its host's executor a dry run."""
        with self.db.read() as s:
            service = AccountRepository(s).service(service_id)
            if service is None:
                return None
            account = AccountRepository(s).get(service.account_id)  # a service always has one
            return ServicePlace(
                account_id=service.account_id,
                host_id=service.host_id,
                kind=service.kind,
                name=service.name,
                unix_user=account.unix_user,
            )
