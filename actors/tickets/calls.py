"""Phone calls into tickets: who a caller is, the ringing call that pops the caller's account
in the answering agent's console, and the ended call logged on the caller's open ticket or on
a new one. The Intake actor carries these plans out (actors/tickets/intake.py); the step on a
ticket itself is `LogCall` (actors/tickets/lifecycle.py).

Once per call: the provider's call id is unique in `calls`. `call.started` records the call
ringing and announces it only when it is new; `call.ended` and a logged call fill that row in
and put it on a ticket once (`LogCall` finds it on a ticket already and does nothing). A call
ended twice at the same moment is planned one at a time (the Intake holds a lock per call id),
and a new ticket filed for a call whose log was then lost is found again as the caller's
newest open ticket, so a redelivered event logs on it instead of opening another."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, Field

from actors.clock import Clock
from actors.errors import AccountNotFound, DeskError
from actors.phone.webhook import CallEnded, CallStarted
from actors.principal import Principal
from actors.text import Line, Text
from actors.tickets.commands import E164, CallId, LogCall
from actors.tickets.dto import NewTicket
from store.db import Database
from store.models import Account, Agent, Contact, User
from store.models.enums import CallDirection, CallStatus, Channel, Visibility
from store.models.outbox import Audience
from store.models.ticket import ticket_number
from store.read.tickets import TicketRead
from store.repositories import CallRepository

TELEPHONY = Principal(role="system", name="Telephony")  # an ended call nobody is named for


class UnknownCaller(DeskError):
    """A number on no contact, and no account given to open the ticket on."""

    code, status = "unknown_number", 422


class AmbiguousCaller(DeskError):
    """A number on contacts of several accounts, and no account given to choose one."""

    code, status = "ambiguous_number", 422


class CallOpen(BaseModel):
    """A call an agent took that becomes a new phone ticket (`POST /api/v1/calls`)."""

    number: E164
    callee_number: E164 | None = None
    direction: CallDirection = CallDirection.inbound
    duration_seconds: int = Field(default=0, ge=0, le=24 * 3600)
    notes: Text = Field(default="", max_length=100_000)
    visibility: Visibility = Visibility.internal
    subject: Line | None = Field(default=None, min_length=1, max_length=300)
    account_id: int | None = None
    started_at: AwareDatetime | None = None
    provider_call_id: CallId | None = None


class CallReceipt(BaseModel):
    """What became of a call: `logged` on `ticket` (`duplicate`: it was before, nothing done
    again), `ringing` (announced to the answering agent), `unknown_caller` (kept, on no
    account: no ticket to put it on)."""

    status: Literal["logged", "duplicate", "ringing", "unknown_caller"]
    provider_call_id: str | None = None
    account_id: int | None = None
    contact_id: int | None = None
    agent_id: int | None = None
    ticket_number: str | None = None
    ticket: TicketRead | None = Field(default=None, description="The ticket, when logged now.")


class EndedPlan(BaseModel):
    """What an ended call needs: `settled` (a receipt, nothing to do), `append` (log it on
    `ticket_id`) or `new` (file `ticket`, then log it there)."""

    kind: Literal["settled", "append", "new"]
    receipt: CallReceipt | None = None
    account_id: int | None = None
    ticket_id: int | None = None
    ticket: NewTicket | None = None
    command: LogCall | None = None
    by: Principal = TELEPHONY


class CallDesk:
    """The plans, each one short read or write unit of work (run in a thread by the Intake)."""

    def __init__(self, db: Database, now: Clock) -> None:
        self.db = db
        self.now = now

    # -- an agent opens a ticket from a call ----------------------------------------------------
    def plan_open(self, call: CallOpen, by: Principal, key: str | None, digest: str) -> NewTicket:
        """The phone ticket for a call an agent took: on the caller's account (found by the
        number, or given), with the caller as its contact when the number is theirs."""
        with self.db.read() as s:
            contacts = CallRepository(s).contacts_by_phone(call.number)
            if call.account_id is not None:
                account = s.get(Account, call.account_id)
                if account is None:
                    raise AccountNotFound(f"account {call.account_id} not found")
                contacts = [c for c in contacts if c.account_id == account.id]
            else:
                accounts = sorted({c.account_id for c in contacts if c.account_id is not None})
                if not accounts:
                    raise UnknownCaller(
                        f"the number {call.number} is on no contact; give account_id to open "
                        "the ticket on an account"
                    )
                if len(accounts) > 1:
                    listed = ", ".join(str(a) for a in accounts)
                    raise AmbiguousCaller(
                        f"the number {call.number} is on contacts of accounts {listed}; "
                        "give account_id to choose one"
                    )
                account = s.get(Account, accounts[0])
                assert account is not None
            contact = contacts[0] if contacts else None
            return NewTicket(
                account_id=account.id,
                subject=call.subject or _subject(call.direction, call.number, contact),
                body=_opening(call.direction, call.number, contact),
                channel=Channel.phone,
                contact_id=contact.id if contact else None,
                requester=by,
                idempotency_key=key,
                request_hash=digest,
            )

    @staticmethod
    def log_of(call: CallOpen) -> LogCall:
        outbound = call.direction is CallDirection.outbound
        return LogCall(
            caller_number=call.callee_number or call.number if outbound else call.number,
            callee_number=call.number if outbound else call.callee_number,
            direction=call.direction,
            duration_seconds=call.duration_seconds,
            notes=call.notes,
            visibility=call.visibility,
            started_at=call.started_at,
            provider_call_id=call.provider_call_id,
        )

    # -- the telephony webhook ----------------------------------------------------------------
    def started(self, event: CallStarted) -> CallReceipt:
        """A call ringing: kept (once), and announced to the answering agent with the caller's
        contact and account, so that their console opens the account (`call.started`). Only
        the agent the event names hears it (and admins): never a customer."""
        number = event.customer_number
        with self.db.write() as s:
            calls = CallRepository(s)
            contact, account = _caller(calls, number)
            found = calls.agent_by_email(event.agent) if event.agent else None
            agent_id = found[0].id if found else None
            call, created = calls.record_once(
                {
                    "provider_call_id": event.call_id,
                    "direction": event.direction,
                    "status": CallStatus.ringing.value,
                    "caller_number": event.from_number or "anonymous",
                    "callee_number": event.to_number,
                    "account_id": account.id if account else None,
                    "contact_id": contact.id if contact else None,
                    "agent_id": agent_id,
                    "started_at": event.started_at,
                    "created_at": self.now(),
                }
            )
            receipt = CallReceipt(
                status="ringing" if created else "duplicate",
                provider_call_id=event.call_id,
                account_id=call.account_id,
                contact_id=call.contact_id,
                agent_id=call.agent_id,
            )
            if not created:
                return receipt  # announced the first time, or the call already ended
            open_ticket = calls.open_ticket_of(account.id, call.contact_id) if account else None
            who = contact.name if contact else (number or "a withheld number")
            where = f" ({account.name})" if account else ""
            calls.announce(
                "call.started",
                Audience.of(account.id if account else None, public=False, agents=(agent_id,)),
                {
                    "summary": f"Call from {who}{where}",
                    "call_id": event.call_id,
                    "direction": event.direction,
                    "number": number,
                    "to": event.to_number,
                    "agent_id": agent_id,
                    "contact": {"id": contact.id, "name": contact.name, "email": contact.email}
                    if contact
                    else None,
                    "account": {"id": account.id, "code": account.code, "name": account.name}
                    if account
                    else None,
                    "open_ticket": ticket_number(open_ticket.id) if open_ticket else None,
                    "started_at": event.started_at.isoformat(),
                },
            )
            return receipt

    def plan_ended(self, event: CallEnded) -> EndedPlan:
        """Where an ended call goes: nowhere again when it is on a ticket already; on the
        caller's open ticket (their newest, else their account's newest); else on a new phone
        ticket. A caller on no account is kept as an ended call with no ticket."""
        number = event.customer_number
        with self.db.write() as s:
            calls = CallRepository(s)
            known = calls.by_provider_id(event.call_id)
            if known is not None and known.message_id is not None:
                assert known.ticket_id is not None
                return EndedPlan(
                    kind="settled",
                    receipt=CallReceipt(
                        status="duplicate", provider_call_id=event.call_id,
                        account_id=known.account_id, contact_id=known.contact_id,
                        agent_id=known.agent_id, ticket_number=ticket_number(known.ticket_id),
                    ),
                    ticket_id=known.ticket_id,
                )  # fmt: skip
            contact, account = _caller(calls, number)
            found = calls.agent_by_email(event.agent) if event.agent else None
            by = _agent_principal(*found) if found else TELEPHONY
            if account is None or number is None:
                call, _ = calls.record_once(
                    {
                        "provider_call_id": event.call_id, "direction": event.direction,
                        "status": CallStatus.ringing.value,
                        "caller_number": event.from_number or "anonymous",
                        "callee_number": event.to_number, "started_at": event.started_at,
                        "created_at": self.now(),
                    }
                )  # fmt: skip
                call.status = CallStatus.ended.value
                call.ended_at = event.ended_at
                call.duration_seconds = int(event.duration.total_seconds())
                call.agent_id = call.agent_id or by.agent_id
                return EndedPlan(
                    kind="settled",
                    receipt=CallReceipt(
                        status="unknown_caller", provider_call_id=event.call_id,
                        agent_id=call.agent_id,
                    ),
                )  # fmt: skip
            command = LogCall(
                caller_number=event.from_number or number,
                callee_number=event.to_number,
                direction=CallDirection(event.direction),
                duration_seconds=int(event.duration.total_seconds()),
                started_at=event.started_at,
                provider_call_id=event.call_id,
            )
            ticket = calls.open_ticket_of(account.id, contact.id if contact else None)
            if ticket is not None:
                return EndedPlan(
                    kind="append", account_id=account.id, ticket_id=ticket.id,
                    command=command, by=by,
                )  # fmt: skip
            return EndedPlan(
                kind="new",
                account_id=account.id,
                ticket=self._new_ticket(account, contact, event, by),
                command=command,
                by=by,
            )

    def follow_up(self, plan: EndedPlan, event: CallEnded) -> EndedPlan:
        """The open ticket was closed meanwhile: the call opens a new one instead."""
        assert plan.account_id is not None
        with self.db.read() as s:
            account = s.get(Account, plan.account_id)
            assert account is not None
            contact, _ = _caller(CallRepository(s), event.customer_number)
            ticket = self._new_ticket(account, contact, event, plan.by)
        return plan.model_copy(update={"kind": "new", "ticket": ticket, "ticket_id": None})

    @staticmethod
    def _new_ticket(
        account: Account, contact: Contact | None, event: CallEnded, by: Principal
    ) -> NewTicket:
        number = event.customer_number or "a withheld number"
        return NewTicket(
            account_id=account.id,
            subject=_subject(CallDirection(event.direction), number, contact),
            body=_opening(CallDirection(event.direction), number, contact, event.started_at),
            channel=Channel.phone,
            contact_id=contact.id if contact and contact.account_id == account.id else None,
            requester=by,
        )


def _caller(calls: CallRepository, number: str | None) -> tuple[Contact | None, Account | None]:
    """The contact a number is, and its account: the first match (primary contacts first);
    a number on several accounts pops and logs on the first one's."""
    if number is None:
        return None, None
    for contact in calls.contacts_by_phone(number):
        account = calls.session.get(Account, contact.account_id)
        if account is not None:
            return contact, account
    return None, None


def _agent_principal(agent: Agent, user: User) -> Principal:
    return Principal(
        user_id=user.id, role="agent", name=user.display_name, agent_id=agent.id, tier=agent.tier
    )


def _subject(direction: CallDirection, number: str, contact: Contact | None) -> str:
    who = contact.name if contact else number
    return f"Phone call {'from' if direction is CallDirection.inbound else 'to'} {who}"[:300]


def _opening(
    direction: CallDirection, number: str, contact: Contact | None, at: datetime | None = None
) -> str:
    who = f"{contact.name} ({number})" if contact else number
    when = f" at {at.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if at is not None else ""
    way = "from" if direction is CallDirection.inbound else "to"
    return f"A phone call {way} {who}{when}; the call and its notes are logged below."
