"""Phone calls as staff read them: who a number is (its contacts and their accounts, with each
account's open ticket) and the recent calls of those accounts."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, computed_field

from store.db import Database
from store.models import Account, Call
from store.models.ticket import ticket_number
from store.repositories import CallRepository


class CallRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    provider_call_id: str | None
    direction: str
    status: str
    caller_number: str
    callee_number: str | None
    account_id: int | None
    contact_id: int | None
    ticket_id: int | None = Field(exclude=True)
    agent_id: int | None
    started_at: datetime
    ended_at: datetime | None
    duration_seconds: int | None
    notes: str

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ticket_number(self) -> str | None:
        return ticket_number(self.ticket_id) if self.ticket_id is not None else None


class CallerMatch(BaseModel):
    """A contact whose phone is the number, and the account it is on."""

    contact_id: int
    name: str
    email: str
    account_id: int
    account_code: str
    account_name: str
    open_ticket: str | None = Field(description="The caller's open ticket (newest), if any.")


class NumberLookup(BaseModel):
    number: str = Field(description="The number in E.164.")
    known: bool
    matches: list[CallerMatch]
    recent_calls: list[CallRead] = Field(description="Newest first, of the matched accounts.")


class CallReads:
    def __init__(self, db: Database) -> None:
        self.db = db

    def lookup(self, number: str, *, limit: int = 20) -> NumberLookup:
        """Who `number` (E.164) is, and the recent calls of the accounts it is on."""
        with self.db.read() as s:
            calls = CallRepository(s)
            matches: list[CallerMatch] = []
            recent: dict[int, Call] = {}
            for c in calls.contacts_by_phone(number):
                assert c.account_id is not None
                account = s.get(Account, c.account_id)
                assert account is not None
                open_ticket = calls.open_ticket_of(c.account_id, c.id)
                matches.append(
                    CallerMatch(
                        contact_id=c.id, name=c.name, email=c.email, account_id=account.id,
                        account_code=account.code, account_name=account.name,
                        open_ticket=ticket_number(open_ticket.id) if open_ticket else None,
                    )
                )  # fmt: skip
                for call in calls.recent_for_account(c.account_id, limit=limit):
                    recent[call.id] = call
            newest = sorted(recent.values(), key=lambda x: (x.started_at, x.id), reverse=True)
            return NumberLookup(
                number=number,
                known=bool(matches),
                matches=matches,
                recent_calls=[CallRead.model_validate(x) for x in newest[:limit]],
            )

    def for_ticket(self, ticket_id: int) -> list[CallRead]:
        with self.db.read() as s:
            return [CallRead.model_validate(x) for x in CallRepository(s).for_ticket(ticket_id)]
