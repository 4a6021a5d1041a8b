"""The life of one ticket: every command on it as a unit of work, under the row lock."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from actors.clock import Clock
from actors.config import ActorConfig
from actors.errors import (
    AlreadyOwned,
    InvalidHandover,
    InvalidTransition,
    NotAllowed,
    TicketNotFound,
    TopTierReached,
)
from actors.idempotency import earlier_answer, remember_answer
from actors.policy import Step, authorize_ticket_step
from actors.principal import Principal
from actors.sla.policy import SlaPolicies
from actors.tickets.commands import (
    AutoClose,
    ChangeRequested,
    ChangeSettled,
    Close,
    Escalate,
    FilePart,
    Handover,
    LogCall,
    MailReceived,
    Reopen,
    Reply,
    Resolve,
    SlaFired,
    Take,
    TicketCommand,
)
from actors.tickets.dto import OpOutcome, QueuedTicket
from actors.tickets.states import TOP_TIER, Move, after, allows
from store.db import Database
from store.errors import NotFoundError
from store.models import Agent, Ticket
from store.models.enums import (
    CUSTOMER_CHANNELS,
    OPEN_STATUSES,
    OWNED_STATUSES,
    CallDirection,
    CallStatus,
    ChangeStatus,
    Channel,
    Direction,
    InboundStatus,
    TicketStatus,
    Visibility,
)
from store.read.tickets import TicketProjection
from store.repositories import (
    CallRepository,
    InboundMailRepository,
    MessageRepository,
    TicketEventRepository,
    TicketRepository,
)
from store.repositories.message import NewAttachment

# The step of the policy each command is (Reply: `reply`, or `note` when internal).
STEP_OF: dict[type, Step] = {
    Take: Step.take,
    Handover: Step.handover,
    Escalate: Step.escalate,
    Resolve: Step.resolve,
    Reply: Step.reply,
    Reopen: Step.reopen,
    Close: Step.close,
    LogCall: Step.call,
}


def queued(ticket: Ticket) -> QueuedTicket:
    return QueuedTicket(
        id=ticket.id,
        tier=ticket.tier,
        priority=ticket.priority,
        category=ticket.category,
        created_at=ticket.created_at,
    )


class TicketLifecycle:
    def __init__(
        self,
        db: Database,
        config: ActorConfig,
        projection: TicketProjection,
        sla: SlaPolicies,
        now: Clock,
    ) -> None:
        self.db = db
        self.config = config
        self.projection = projection
        self.sla = sla
        self.now = now

    def operate(
        self,
        ticket_id: int,
        command: TicketCommand,
        by: Principal,
        *,
        key: str | None = None,
        request_hash: str = "",
    ) -> OpOutcome:
        """Run one command on a ticket as a unit of work (a retried key gets its answer)."""
        with self.db.write() as s:
            earlier = earlier_answer(s, by, key, request_hash)
            if earlier is not None:
                return OpOutcome.model_validate({**earlier, "replayed": True})
            try:
                ticket = TicketRepository(s).lock(ticket_id)
            except NotFoundError as exc:
                raise TicketNotFound(f"ticket {ticket_id} not found") from exc
            if by.role == "customer" and ticket.account_id != by.account_id:
                raise TicketNotFound(f"ticket {ticket_id} not found")
            outcome = self.apply(s, ticket, command, by)
            remember_answer(s, by, key, request_hash, 200, outcome.model_dump(mode="json"))
            return outcome

    def apply(self, s: Session, t: Ticket, command: TicketCommand, by: Principal) -> OpOutcome:
        """One command on a ticket locked in `s`, in the caller's unit of work, if `by` may
        (actors/policy.py says who may take which step; the clock's and GDCAS's commands are
        the system's own)."""
        step = STEP_OF.get(type(command))
        if isinstance(command, Reply) and command.visibility is Visibility.internal:
            step = Step.note
        if step is not None:
            authorize_ticket_step(by, step, ticket_tier=t.tier, number=t.number)
        elif by.role != "system" and not isinstance(command, ChangeRequested | MailReceived):
            raise NotAllowed(f"only the desk itself sends {command.kind}")
        match command:
            case Take():
                return self.take(s, t, by)
            case Handover(agent_id=agent_id):
                return self.handover(s, t, by, agent_id)
            case Escalate(reason=reason):
                return self.escalate(s, t, by, reason)
            case Resolve(note=note):
                return self.resolve(s, t, by, note)
            case Reply():
                return self.reply(s, t, by, command)
            case Reopen():
                return self.reopen(s, t, by)
            case Close():
                return self.close(s, t, by)
            case SlaFired(which=which, action=action, at=at):
                return self.sla_fired(s, t, by, which, action, at)
            case AutoClose(at=at):
                return self.auto_close(s, t, by, at)
            case ChangeRequested():
                return self.change_requested(s, t, by, command)
            case ChangeSettled():
                return self.change_settled(s, t, by, command)
            case MailReceived():
                return self.mail_received(s, t, by, command)
            case LogCall():
                return self.log_call(s, t, by, command)

    def _done(self, s: Session, t: Ticket, **effects: Any) -> OpOutcome:
        s.flush()
        return OpOutcome(ticket=self.projection.read(s, t), **effects)

    # -- the commands ---------------------------------------------------------------------
    def take(self, s: Session, t: Ticket, by: Principal) -> OpOutcome:
        if t.owner_agent_id == by.agent_id:
            return self._done(s, t)
        if t.owner_agent_id is not None:
            raise AlreadyOwned(
                f"{t.number} is owned by {self.projection.owner_name(s, t.owner_agent_id)}"
            )
        if not allows(Move.take, t.status):
            raise InvalidTransition(f"{t.number} is {t.status}; reopen it first")
        t.owner_agent_id = by.agent_id
        t.status = after(Move.take, t.status, owned=True)
        self._event(s, t, "assigned", f"{t.number} taken by {by.name}", by,
                    agent_id=by.agent_id, agent=by.name)  # fmt: skip
        return self._done(s, t, reclaimed_agent=by.agent_id)

    def handover(self, s: Session, t: Ticket, by: Principal, agent_id: int) -> OpOutcome:
        target = s.get(Agent, agent_id)
        if target is None or target.tier != t.tier:
            raise InvalidHandover(f"agent {agent_id} is not a level {t.tier} agent")
        if not allows(Move.handover, t.status):
            raise InvalidTransition(f"{t.number} is {t.status}; it can not be handed over")
        previous = t.owner_agent_id
        t.owner_agent_id = agent_id
        t.status = after(Move.handover, t.status, owned=True)
        name = self.projection.owner_name(s, agent_id)
        self._event(s, t, "assigned", f"{t.number} handed over to {name}", by,
                    agent_id=agent_id, agent=name, from_agent_id=previous,
                    also_agents=(previous,))  # fmt: skip
        return self._done(s, t, released_agent=previous, reclaimed_agent=agent_id)

    def reply(self, s: Session, t: Ticket, by: Principal, cmd: Reply) -> OpOutcome:
        customer = by.role == "customer"
        internal = cmd.visibility is Visibility.internal
        if customer and internal:
            raise NotAllowed("customers can only post public messages")
        if customer and cmd.channel is not None and cmd.channel not in CUSTOMER_CHANNELS:
            raise NotAllowed("customers write through the portal or the API")
        if not allows(Move.message, t.status):
            raise InvalidTransition(f"{t.number} is {t.status}; open a new ticket")
        now = self.now()
        direction = Direction.inbound if customer else Direction.outbound
        if internal:
            direction = Direction.internal
        # The channel it came by: a customer's is the one they wrote through (the portal when
        # the caller does not say); staff's is the one it goes out by, the ticket's own unless
        # they choose another.
        channel = cmd.channel or (Channel.portal if customer else Channel(t.channel))
        msg = MessageRepository(s).add_message(
            t, direction=direction, channel=channel, body=cmd.body, author_name=by.name,
            author_user_id=by.user_id, visibility=cmd.visibility,
            attachments=_files(cmd.attachments),
        )  # fmt: skip
        effects: dict[str, Any] = {}
        self._event(s, t, "message", f"{by.name} wrote on {t.number}", by,
                    visibility=cmd.visibility, direction=direction,
                    message_id=msg.id)  # fmt: skip
        if customer:
            if allows(Move.reopen, t.status):
                effects = self._reopen(s, t, by, "the customer replied")
            elif allows(Move.customer_replied, t.status):
                self.sla.resume(s, t, now)
                t.status = after(Move.customer_replied, t.status, owned=bool(t.owner_agent_id))
                self._event(s, t, "status", f"{t.number}: the customer replied", by)
        elif not internal:
            if t.first_responded_at is None:
                t.first_responded_at = now
            if cmd.pending_customer and allows(Move.await_customer, t.status):
                t.status = after(Move.await_customer, t.status, owned=bool(t.owner_agent_id))
                t.sla_paused_at = now
                self._event(s, t, "status", f"{t.number} is waiting for your reply", by)
        s.expire(t, ["message_count"])
        return self._done(s, t, **effects)

    def escalate(self, s: Session, t: Ticket, by: Principal, reason: str) -> OpOutcome:
        if not allows(Move.escalate, t.status):
            raise InvalidTransition(f"{t.number} is {t.status}; reopen it before escalating")
        if t.tier >= TOP_TIER:
            raise TopTierReached(
                f"{t.number} is already at level {TOP_TIER}, the highest support tier"
            )
        previous = t.owner_agent_id
        t.tier += 1
        t.owner_agent_id = None
        self.sla.resume(s, t, self.now())  # waiting on the customer ends here
        t.status = after(Move.escalate, t.status, owned=False)
        MessageRepository(s).add_message(
            t, direction=Direction.internal, channel=t.channel, visibility=Visibility.internal,
            body=f"Escalated to level {t.tier}: {reason}", author_name=by.name,
            author_user_id=by.user_id,
        )  # fmt: skip
        s.expire(t, ["message_count"])
        self._event(s, t, "escalated", f"{t.number} escalated to level {t.tier} support", by,
                    from_tier=t.tier - 1, previous_owner=previous,
                    also_tiers=(t.tier - 1,), also_agents=(previous,))  # fmt: skip
        s.flush()
        return self._done(s, t, released_agent=previous, enqueue=queued(t))

    def resolve(self, s: Session, t: Ticket, by: Principal, note: str | None) -> OpOutcome:
        if not allows(Move.resolve, t.status):
            raise InvalidTransition(f"{t.number} is already {t.status}")
        now = self.now()
        if note:
            MessageRepository(s).add_message(
                t, direction=Direction.outbound, channel=t.channel, body=note,
                author_name=by.name, author_user_id=by.user_id,
            )  # fmt: skip
            s.expire(t, ["message_count"])
            t.first_responded_at = t.first_responded_at or now  # the note answers the customer
        t.status = after(Move.resolve, t.status, owned=bool(t.owner_agent_id))
        t.resolved_at = now
        # The SLA clocks stop while the ticket is resolved (or since it began to wait on the
        # customer): a reopened ticket goes on with the time it had left.
        t.sla_paused_at = t.sla_paused_at or now
        self._event(s, t, "resolved", f"{t.number} resolved", by)
        return self._done(s, t, released_agent=t.owner_agent_id)

    def reopen(self, s: Session, t: Ticket, by: Principal) -> OpOutcome:
        if not allows(Move.reopen, t.status):
            raise InvalidTransition(f"{t.number} is {t.status}; only a resolved ticket reopens")
        return self._done(s, t, **self._reopen(s, t, by, "reopened"))

    def close(self, s: Session, t: Ticket, by: Principal) -> OpOutcome:
        if not allows(Move.close, t.status):
            raise InvalidTransition(f"{t.number} is already {t.status}")
        owned = t.owner_agent_id if t.status in OWNED_STATUSES else None
        t.status = after(Move.close, t.status, owned=bool(t.owner_agent_id))
        t.closed_at = self.now()
        self._event(s, t, "closed", f"{t.number} closed", by)
        return self._done(s, t, released_agent=owned)

    def sla_fired(
        self, s: Session, t: Ticket, by: Principal, which: str, action: str, now: datetime
    ) -> OpOutcome:
        """An SLA warning or breach seen by the SLA clock at `now`; a breach escalates one
        tier and tells the owner. Re-checked here, so a stale timer does nothing, nor one the
        clock set again (from a re-read) while the same one was on its way."""
        due = t.first_response_due if which == "first_response" else t.resolution_due
        if which == "first_response" and t.first_responded_at is not None:
            return self._done(s, t)
        if t.status not in OPEN_STATUSES or t.sla_paused_at is not None or due is None:
            return self._done(s, t)
        if (action, which) in TicketEventRepository(s).sla_fired([t.id]).get(t.id, set()):
            return self._done(s, t)
        owner = t.owner_agent_id
        if action == "warning":
            if now < t.created_at + (due - t.created_at) * 0.5:
                return self._done(s, t)
            t.sla_warned_at = now
            self._event(s, t, "sla_warning", f"{t.number}: {which} SLA is about to be missed",
                        by, visibility=Visibility.internal, which=which,
                        owner_agent_id=owner)  # fmt: skip
            return self._done(s, t)
        if now < due:
            return self._done(s, t)
        t.sla_breached_at = t.sla_breached_at or now
        self._event(s, t, "sla_breach", f"{t.number}: {which} SLA missed", by,
                    visibility=Visibility.internal, which=which, owner_agent_id=owner)  # fmt: skip
        if t.tier < TOP_TIER:
            return self.escalate(s, t, by, reason=f"{which} SLA missed")
        return self._done(s, t)

    def auto_close(self, s: Session, t: Ticket, by: Principal, now: datetime) -> OpOutcome:
        """Close a resolved ticket that stayed quiet for the configured period."""
        quiet = timedelta(hours=self.config.auto_close_after_hours)
        if not allows(Move.auto_close, t.status) or t.resolved_at is None:
            return self._done(s, t)
        if now < t.resolved_at + quiet:
            return self._done(s, t)
        t.status = after(Move.auto_close, t.status, owned=bool(t.owner_agent_id))
        t.closed_at = self.now()
        self._event(s, t, "closed", f"{t.number} closed after {quiet.days or quiet} without reply",
                    by, automatic=True)  # fmt: skip
        return self._done(s, t)

    def change_requested(
        self, s: Session, t: Ticket, by: Principal, cmd: ChangeRequested
    ) -> OpOutcome:
        """A change was requested for the ticket: an open one waits for it (pending_change)."""
        if t.status not in OPEN_STATUSES:
            raise InvalidTransition(f"{t.number} is {t.status}; reopen it first")
        moved = allows(Move.change_requested, t.status)
        if moved:
            t.status = after(Move.change_requested, t.status, owned=bool(t.owner_agent_id))
        self._event(s, t, "pending_change" if moved else "change_requested",
                    f"{t.number} waits for a change: {cmd.describe}", by,
                    change_id=cmd.change_id, change_kind=cmd.change_kind)  # fmt: skip
        return self._done(s, t)

    def change_settled(self, s: Session, t: Ticket, by: Principal, cmd: ChangeSettled) -> OpOutcome:
        """A change of the ticket settled; with no other pending, the ticket is back at work."""
        effects: dict[str, Any] = {}
        if allows(Move.change_settled, t.status) and not cmd.others_pending:
            t.status = after(Move.change_settled, t.status, owned=bool(t.owner_agent_id))
            if t.status == TicketStatus.new:
                s.flush()
                effects["enqueue"] = queued(t)
        word = "applied" if cmd.status is ChangeStatus.applied else "failed"
        self._event(s, t, f"change_{word}", f"{t.number}: change {word}: {cmd.describe}", by,
                    change_id=cmd.change_id, change_kind=cmd.change_kind,
                    change_status=cmd.status, error=cmd.error)  # fmt: skip
        return self._done(s, t, **effects)

    def mail_received(self, s: Session, t: Ticket, by: Principal, cmd: MailReceived) -> OpOutcome:
        """A received mail on the ticket, once (it claims its stored mail first). A person's
        mail is the customer writing: it reopens a resolved ticket and answers one waiting on
        them; an automatic one (out-of-office, delivery report) only stays on record."""
        settled = InboundStatus.bounce if cmd.bounce else InboundStatus.appended
        mails = InboundMailRepository(s)
        if not mails.claim(cmd.inbound_mail_id, settled, at=self.now(), ticket_id=t.id,
                           detail=cmd.detail):  # fmt: skip
            return self._done(s, t)  # this mail was put somewhere before: nothing again
        if not allows(Move.message, t.status):
            raise InvalidTransition(f"{t.number} is {t.status}; a mail to it opens a new ticket")
        internal = cmd.bounce
        visibility = Visibility.internal if internal else Visibility.public
        MessageRepository(s).add_message(
            t, direction=Direction.internal if internal else Direction.inbound,
            channel=Channel.email, body=cmd.body, author_name=cmd.author_name,
            author_user_id=cmd.author_user_id, visibility=visibility,
            headers={**cmd.email_headers, "detail": cmd.detail},
            email_message_id=cmd.email_message_id, inbound_mail_id=cmd.inbound_mail_id,
            attachments=_files(cmd.attachments),
        )  # fmt: skip
        s.expire(t, ["message_count"])
        what = "a delivery report" if cmd.bounce else "a mail"
        self._event(s, t, "message", f"{cmd.author_name}: {what} on {t.number}", by,
                    visibility=visibility, direction=Direction.inbound,
                    channel=Channel.email, automatic=cmd.auto_submitted)  # fmt: skip
        effects: dict[str, Any] = {}
        if cmd.bounce or cmd.auto_submitted:
            return self._done(s, t)
        if allows(Move.reopen, t.status):
            effects = self._reopen(s, t, by, "the customer wrote")
        elif allows(Move.customer_replied, t.status):
            self.sla.resume(s, t, self.now())
            t.status = after(Move.customer_replied, t.status, owned=bool(t.owner_agent_id))
            self._event(s, t, "status", f"{t.number}: the customer replied", by)
        return self._done(s, t, **effects)

    def log_call(self, s: Session, t: Ticket, by: Principal, cmd: LogCall) -> OpOutcome:
        """A phone call on the ticket: its `calls` row and a message on the `phone` channel.
        With a provider call id it happens once: a call the provider reported ringing is
        filled in, one logged before is left as it is. A public log speaks to the customer (a
        reply's rules, and the first response when none was given)."""
        public = cmd.visibility is Visibility.public
        if public:
            authorize_ticket_step(by, Step.reply, ticket_tier=t.tier, number=t.number)
        if not allows(Move.message, t.status):
            raise InvalidTransition(f"{t.number} is {t.status}; log the call on a new ticket")
        now = self.now()
        duration = timedelta(seconds=cmd.duration_seconds)
        started = cmd.started_at or now - duration
        calls = CallRepository(s)
        contact = next(
            (
                c
                for c in calls.contacts_by_phone(cmd.customer_number)
                if c.account_id == t.account_id
            ),
            None,
        )
        facts: dict[str, Any] = {
            "direction": cmd.direction.value, "caller_number": cmd.caller_number,
            "callee_number": cmd.callee_number, "started_at": started,
        }  # fmt: skip
        if cmd.provider_call_id is not None:
            call, _ = calls.record_once(
                {**facts, "provider_call_id": cmd.provider_call_id,
                 "status": CallStatus.ringing.value, "created_at": now}
            )  # fmt: skip
            if call.message_id is not None:
                return self._done(s, t)  # this call is on a ticket already: nothing again
        else:
            call = calls.add(**facts, status=CallStatus.ringing.value)
        way = "from" if cmd.direction is CallDirection.inbound else "to"
        summary = f"Phone call {way} {cmd.customer_number}, {_duration(duration)}"
        message = MessageRepository(s).add_message(
            t, direction=Direction.outbound if public else Direction.internal,
            channel=Channel.phone, body=f"{summary}.\n\n{cmd.notes}".rstrip(),
            author_name=by.name, author_user_id=by.user_id, visibility=cmd.visibility,
            headers={"call_id": call.id},
        )  # fmt: skip
        call.status = CallStatus.ended.value
        call.account_id = t.account_id
        call.contact_id = call.contact_id or (contact.id if contact else None)
        call.ticket_id, call.message_id = t.id, message.id
        call.agent_id = call.agent_id or by.agent_id
        call.started_at = call.started_at if cmd.started_at is None else cmd.started_at
        call.ended_at = call.started_at + duration
        call.duration_seconds = cmd.duration_seconds
        call.notes = cmd.notes
        if public and t.first_responded_at is None:
            t.first_responded_at = now  # the customer was answered on the phone
        s.expire(t, ["message_count"])
        self._event(s, t, "call_logged", f"{by.name} logged a call on {t.number}: {summary}",
                    by, visibility=cmd.visibility, call_id=call.id,
                    direction=cmd.direction.value, duration_seconds=cmd.duration_seconds,
                    channel=Channel.phone)  # fmt: skip
        return self._done(s, t)

    # -- helpers ------------------------------------------------------------------------
    def _reopen(self, s: Session, t: Ticket, by: Principal, why: str) -> dict[str, Any]:
        self.sla.resume(s, t, self.now())
        t.status = after(Move.reopen, t.status, owned=bool(t.owner_agent_id))
        t.resolved_at = None
        self._event(s, t, "reopened", f"{t.number} reopened: {why}", by)
        if t.owner_agent_id:
            return {"reclaimed_agent": t.owner_agent_id}
        s.flush()
        return {"enqueue": queued(t)}

    def _event(
        self,
        s: Session,
        t: Ticket,
        kind: str,
        summary: str,
        by: Principal,
        *,
        visibility: str = Visibility.public,
        also_tiers: tuple[int | None, ...] = (),
        also_agents: tuple[int | None, ...] = (),
        **data: Any,
    ) -> None:
        """The event, heard by the account (when public), the ticket's tier and owner, and
        `also_tiers`/`also_agents` (see TicketEventRepository.add_event); `data` decides nobody."""
        t.updated_at = self.now()
        s.flush()
        TicketEventRepository(s).add_event(
            t,
            kind,
            summary=summary,
            actor_user_id=by.user_id,
            actor_label=by.name,
            visibility=visibility,
            data={
                "owner_agent_id": t.owner_agent_id,
                "status": t.status,
                "by_user_id": by.user_id,  # who acted: mail out tells nobody what they did
                **data,
            },
            also_tiers=also_tiers,
            also_agents=also_agents,
        )


def _files(parts: list[FilePart]) -> list[NewAttachment]:
    return [NewAttachment(p.filename, p.content_type, p.data) for p in parts]


def _duration(span: timedelta) -> str:
    """A call's length as people say it: "45 s", "3 min 05 s"."""
    minutes, seconds = divmod(int(span.total_seconds()), 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"
