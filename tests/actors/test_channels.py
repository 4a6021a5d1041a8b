"""Who hears an event, live and on replay: every kind of event the desk writes, made by its own
write path, against every role; and the replay a reconnecting stream gets, or its reset."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, select

from actors.changes.dto import NewChange
from actors.changes.requests import ChangeService
from actors.changes.settle import ChangeSettler
from actors.config import ActorConfig
from actors.notify.audience import (
    STAFF_ALL,
    account,
    agent,
    channels_for,
    listener_of,
    replay,
    subscriptions,
    tier,
)
from actors.phone.webhook import CallStarted
from actors.principal import SYSTEM, Principal
from actors.tickets.calls import CallDesk
from actors.tickets.commands import (
    Close,
    Escalate,
    Handover,
    LogCall,
    Reopen,
    Reply,
    Resolve,
    SlaFired,
    Take,
    TicketCommand,
)
from actors.tickets.dto import NewTicket, TicketRead
from actors.tickets.service import TicketService
from automation.executor.outcome import ChangeOutcome, Status
from store.db import Database
from store.models import OutboxEvent
from store.models.base import utcnow
from store.models.enums import Channel
from store.models.outbox import Audience, Listener
from store.models.ticket import ticket_id_from_number, ticket_number
from store.repositories import (
    AccountRepository,
    AgentRepository,
    HostRepository,
    OutboxRepository,
    TicketEventRepository,
    TicketRepository,
    TimelineRepository,
    UserRepository,
)
from store.repositories.timeline import NewEntry
from tests.conftest import REDIS_URL
from tests.desk import seed_sla
from tests.factories import make_account, make_agent, make_customer

LATER = datetime(2100, 1, 1, tzinfo=UTC)  # past every SLA due time

# Who hears what. The roles are those of the event's ticket at the time: `owner` owns it after
# the event, `previous_owner` owned it before, `same_tier` is another agent of its tier,
# `left_tier` an agent of the tier an escalation left, `other_tier` an agent of a tier it is
# not in; `customer` is of its account, `other_customer` of another one.
PUBLIC = {"customer", "owner", "same_tier", "admin"}
INTERNAL = {"owner", "same_tier", "admin"}
CHANGE = {"customer", "owner", "admin"}  # a change's timeline entry: its ticket's owner


@dataclass
class World:
    db: Database
    tickets: TicketService
    changes: ChangeService
    settler: ChangeSettler
    account_id: int
    customer: Principal
    other_customer: Principal
    admin: Principal
    agents: dict[int, list[Principal]]
    zone_id: int
    host_name: str
    zone: str

    def file(self) -> int:
        item = NewTicket(account_id=self.account_id, subject="Site down", body="help",
                         channel=Channel.portal, requester=self.customer)  # fmt: skip
        [read] = self.tickets.create_many([item])
        assert isinstance(read, TicketRead)
        tid = ticket_id_from_number(read.number)
        assert tid is not None
        return tid

    def run(self, tid: int, by: Principal, command: TicketCommand) -> None:
        self.tickets.operate(tid, command, by)

    def owned(self, by: Principal) -> int:
        tid = self.file()
        self.run(tid, by, Take())
        return tid

    def change(self, by: Principal, tid: int | None = None) -> str:
        number = ticket_number(tid) if tid is not None else None
        params = {"record": {"name": f"t{secrets.token_hex(3)}", "type": "TXT", "value": "v"}}
        req = NewChange(
            service_id=self.zone_id, kind="dns_record_add", params=params, ticket=number
        )
        return self.changes.create(by, req).id

    def settle(self, change_id: str, status: Status) -> None:
        outcome = ChangeOutcome(change_id=change_id, host_id=self.host_name,
                                kind="dns_record_add", status=status, attempts=1)  # fmt: skip
        self.settler.record([outcome])


def agents_of(db: Database) -> dict[int, list[Principal]]:
    """Three agents of each tier (without passwords: hashing them would take most of the test)."""
    out: dict[int, list[Principal]] = {}
    with db.write() as s:
        for t in (1, 2, 3):
            for n in range(3):
                name = f"L{t}.{n}.{secrets.token_hex(3)}"
                user = UserRepository(s).create(
                    email=f"{name}@sitedesk.test", display_name=name, role="agent"
                )
                a = AgentRepository(s).create(user_id=user.id, tier=t)
                out.setdefault(t, []).append(
                    Principal(user_id=user.id, role="agent", name=name, agent_id=a.id, tier=t)
                )
    return out


@pytest.fixture
def world(db: Database) -> World:
    seed_sla(db)
    config = ActorConfig(database_url=db.url, redis_url=REDIS_URL)
    zone = f"c{secrets.token_hex(4)}.test"
    with db.write() as s:
        mine, theirs = make_account(s), make_account(s)
        me, them = make_customer(s, mine, password=None), make_customer(s, theirs, password=None)
        host = HostRepository(s).create(
            name=f"h-{secrets.token_hex(3)}",
            address="127.0.0.1",
            ssh_port=22,
            host_key="ssh-ed25519 AAAA",
            credentials_ref="/nonexistent/key",
            root_dir="/srv/h",
        )
        service = AccountRepository(s).add_service(
            mine.id, kind="dns_zone", name=zone, host_id=host.id
        )
        ids = (mine.id, me.id, them.id, theirs.id, host.name, service.id)
    mine_id, me_id, them_id, theirs_id, host_name, zone_id = ids
    return World(
        db=db,
        tickets=TicketService(db, config),
        changes=ChangeService(db, config),
        settler=ChangeSettler(db, config),
        account_id=mine_id,
        customer=Principal(user_id=me_id, role="customer", name="C", account_id=mine_id),
        other_customer=Principal(user_id=them_id, role="customer", name="O", account_id=theirs_id),
        admin=Principal(user_id=None, role="admin", name="Admin"),
        agents=agents_of(db),
        zone_id=zone_id,
        host_name=host_name,
        zone=zone,
    )


@dataclass
class Case:
    """One event: `make` runs the steps that write it and names the roles around it (the
    customers and the admin are added); `hears` says which of them hear it."""

    topic: str
    make: Callable[[World], tuple[int | None, dict[str, Principal]]]
    hears: set[str]
    name: str = ""

    def __str__(self) -> str:
        return self.name or self.topic


def created(w: World) -> tuple[int | None, dict[str, Principal]]:
    l1, l2 = w.agents[1], w.agents[2]
    return w.file(), dict(same_tier=l1[0], other_tier=l2[0])


def taken(w: World) -> tuple[int | None, dict[str, Principal]]:
    l1, l2 = w.agents[1], w.agents[2]
    return w.owned(l1[0]), dict(owner=l1[0], same_tier=l1[1], other_tier=l2[0])


def auto_assigned(w: World) -> tuple[int | None, dict[str, Principal]]:
    l1, l2 = w.agents[1], w.agents[2]
    tid = w.file()
    assert w.tickets.assign_many(1, [(tid, l1[0].agent_id or 0)])[0] is not None
    return tid, dict(owner=l1[0], same_tier=l1[1], other_tier=l2[0])


def handed_over(w: World) -> tuple[int | None, dict[str, Principal]]:
    l1, l2 = w.agents[1], w.agents[2]
    tid = w.owned(l1[0])
    w.run(tid, l1[0], Handover(agent_id=l1[1].agent_id or 0))
    return tid, dict(owner=l1[1], previous_owner=l1[0], same_tier=l1[2], other_tier=l2[0])


def on_owned(
    *steps: Callable[[World, int, Principal], None],
) -> Callable[[World], tuple[int | None, dict[str, Principal]]]:
    """A ticket taken by a level-1 agent, then `steps` by that owner (or whoever they say)."""

    def make(w: World) -> tuple[int | None, dict[str, Principal]]:
        l1, l2 = w.agents[1], w.agents[2]
        tid = w.owned(l1[0])
        for step in steps:
            step(w, tid, l1[0])
        return tid, dict(owner=l1[0], same_tier=l1[1], other_tier=l2[0])

    return make


def by_owner(command: TicketCommand) -> Callable[[World, int, Principal], None]:
    return lambda w, tid, owner: w.run(tid, owner, command)


def by_customer(command: TicketCommand) -> Callable[[World, int, Principal], None]:
    return lambda w, tid, owner: w.run(tid, w.customer, command)


def by_clock(command: TicketCommand) -> Callable[[World, int, Principal], None]:
    return lambda w, tid, owner: w.run(tid, SYSTEM, command)


def change_for_ticket(w: World, tid: int, owner: Principal) -> None:
    w.change(owner, tid)


def settled(status: Status) -> Callable[[World, int, Principal], None]:
    def step(w: World, tid: int, owner: Principal) -> None:
        w.settle(w.change(owner, tid), status)

    return step


def applying(w: World, tid: int, owner: Principal) -> None:
    w.settler.start([w.change(owner, tid)])  # handed to its host's executor: applying


def self_service_applying(w: World) -> tuple[int | None, dict[str, Principal]]:
    w.settler.start([w.change(w.customer)])
    return None, dict(other_tier=w.agents[1][0])


def asked_by_colleague(
    status: Status | None,
) -> Callable[[World], tuple[int | None, dict[str, Principal]]]:
    """A ticket owned by one level-1 agent, a change for it asked for by another: the asker
    hears how it goes too (the rest of the level does not)."""

    def make(w: World) -> tuple[int | None, dict[str, Principal]]:
        l1, l2 = w.agents[1], w.agents[2]
        tid = w.owned(l1[0])
        change_id = w.change(l1[1], tid)
        if status is not None:
            w.settle(change_id, status)
        return tid, dict(owner=l1[0], asker=l1[1], other_tier=l2[0])

    return make


def escalated(w: World) -> tuple[int | None, dict[str, Principal]]:
    l1, l2, l3 = w.agents[1], w.agents[2], w.agents[3]
    tid = w.owned(l1[0])
    w.run(tid, l1[0], Escalate(reason="needs level 2"))
    roles = dict(previous_owner=l1[0], left_tier=l1[1], same_tier=l2[0], other_tier=l3[0])
    return tid, roles


def call_ringing(w: World) -> tuple[int | None, dict[str, Principal]]:
    """A call rings for a contact of the account, the provider naming the agent who answers."""
    l1, l2 = w.agents[1], w.agents[2]
    number = f"+4930{secrets.randbelow(9 * 10**7) + 10**7}"
    with w.db.write() as s:
        AccountRepository(s).add_contact(w.account_id, name="Caller", email=f"{number}@x.test",
                                         phone=number)  # fmt: skip
        assert l1[0].user_id is not None
        email = UserRepository(s).get(l1[0].user_id).email
    event = CallStarted.model_validate({
        "type": "call.started", "call_id": secrets.token_hex(6), "from": number,
        "to": "+4930901820", "agent": email, "started_at": datetime.now(UTC),
    })  # fmt: skip
    CallDesk(w.db, utcnow).started(event)
    return None, dict(owner=l1[0], same_tier=l1[1], other_tier=l2[0])


def self_service(
    status: Status | None,
) -> Callable[[World], tuple[int | None, dict[str, Principal]]]:
    def make(w: World) -> tuple[int | None, dict[str, Principal]]:
        change_id = w.change(w.customer)
        if status is not None:
            w.settle(change_id, status)
        return None, dict(other_tier=w.agents[1][0])

    return make


# fmt: off
CASES = [
    Case("ticket.created", created, {"customer", "same_tier", "admin"}),
    Case("ticket.assigned", taken, PUBLIC, "assigned: taken"),
    Case("ticket.assigned", auto_assigned, PUBLIC, "assigned: by the pool"),
    Case("ticket.assigned", handed_over, PUBLIC | {"previous_owner"}, "assigned: handed over"),
    Case("ticket.message", on_owned(by_customer(Reply(body="hi"))), PUBLIC, "message: public"),
    Case("ticket.message", on_owned(by_owner(Reply(body="n", visibility="internal"))), INTERNAL,
         "message: internal"),
    Case("ticket.status", on_owned(by_owner(Reply(body="?", pending_customer=True))), PUBLIC),
    Case("ticket.escalated", escalated,
         {"customer", "previous_owner", "left_tier", "same_tier", "admin"}),
    Case("ticket.resolved", on_owned(by_owner(Resolve())), PUBLIC),
    Case("ticket.reopened", on_owned(by_owner(Resolve()), by_customer(Reopen())), PUBLIC),
    Case("ticket.closed", on_owned(by_owner(Close())), PUBLIC),
    Case("ticket.sla_warning",
         on_owned(by_clock(SlaFired(which="resolution", action="warning", at=LATER))), INTERNAL),
    Case("ticket.sla_breach",
         on_owned(by_clock(SlaFired(which="resolution", action="breach", at=LATER))), INTERNAL),
    Case("ticket.pending_change", on_owned(change_for_ticket), PUBLIC),
    Case("ticket.change_requested", on_owned(change_for_ticket, change_for_ticket), PUBLIC),
    Case("ticket.change_applied", on_owned(settled("applied")), PUBLIC),
    Case("ticket.change_failed", on_owned(settled("failed")), PUBLIC),
    Case("change.requested", on_owned(change_for_ticket), CHANGE, "change.requested: ticket"),
    Case("change.applied", on_owned(settled("applied")), CHANGE, "change.applied: ticket"),
    Case("change.failed", on_owned(settled("failed")), CHANGE, "change.failed: ticket"),
    Case("change.applying", on_owned(applying), CHANGE, "change.applying: ticket"),
    Case("change.applying", self_service_applying, {"customer", "admin"},
         "change.applying: self-service"),
    Case("change.requested", asked_by_colleague(None), CHANGE | {"asker"},
         "change.requested: asked by a colleague"),
    Case("change.applied", asked_by_colleague("applied"), CHANGE | {"asker"},
         "change.applied: asked by a colleague"),
    Case("ticket.call_logged", on_owned(by_owner(LogCall(caller_number="+4930901820"))),
         INTERNAL, "call_logged: internal"),
    Case("ticket.call_logged",
         on_owned(by_owner(LogCall(caller_number="+4930901820", visibility="public"))), PUBLIC,
         "call_logged: public"),
    Case("call.started", call_ringing, {"owner", "admin"}, "call.started: the answering agent"),
    Case("change.requested", self_service(None), {"customer", "admin"},
         "change.requested: self-service"),
    Case("change.applied", self_service("applied"), {"customer", "admin"},
         "change.applied: self-service"),
    Case("change.failed", self_service("failed"), {"customer", "admin"},
         "change.failed: self-service"),
]
# fmt: on


def heard(db: Database, row: OutboxEvent, who: Principal) -> tuple[bool, bool]:
    """Whether `who` hears `row` live (the channels it is published on and those `who`
    listens on meet) and on replay (the outbox filter returns it)."""
    listener = listener_of(who)
    live = bool(set(channels_for(row.audience)) & set(subscriptions(listener)))
    with db.read() as s:
        # A replay from just before the row; it also carries older rows not out yet (none is
        # published here: no notifier runs), so the row is looked for among them.
        again = OutboxRepository(s).heard_after(listener, row.id - 1, limit=10_000)
    return live, row.id in {r.id for r in again}


@pytest.mark.parametrize("case", CASES, ids=str)
def test_who_hears_each_kind_of_event(world: World, case: Case) -> None:
    ticket_id, roles = case.make(world)
    roles = {
        "customer": world.customer,
        "other_customer": world.other_customer,
        "admin": world.admin,
        **roles,
    }
    assert case.hears <= set(roles), "a role that hears the event is not in the case"
    with world.db.read() as s:
        q = select(OutboxEvent).where(OutboxEvent.topic == case.topic)
        q = q.where(OutboxEvent.account_id == world.account_id).order_by(OutboxEvent.id.desc())
        rows = [r for r in s.scalars(q) if ticket_id in (None, r.payload.get("ticket_id"))]
        assert rows, f"no {case.topic} event was written"
        row = rows[0]
        s.expunge(row)
    got = {role: heard(world.db, row, who) for role, who in roles.items()}
    want = {role: (role in case.hears, role in case.hears) for role in roles}
    assert got == want  # (live, replay) per role


def test_data_keys_decide_nothing(db: Database) -> None:
    """An event whose data happens to name an agent or a tier reaches neither."""
    with db.write() as s:
        acct = make_account(s)
        stranger = make_agent(s, tier=3)
        ticket = TicketRepository(s).create(account_id=acct.id, subject="x", channel="portal")
        TicketEventRepository(s).add_event(
            ticket,
            "note",
            summary="n",
            data={
                "agent_id": stranger.id,
                "owner_agent_id": stranger.id,
                "tier": 3,
                "from_tier": 3,
                "previous_owner": stranger.id,
                "from_agent_id": stranger.id,
            },
        )
        [row] = OutboxRepository(s).unpublished()
        audience = row.audience
    assert audience == Audience(acct.id, True, tiers=(1,), agents=())
    assert set(channels_for(audience)) == {STAFF_ALL, account(acct.id), tier(1)}
    assert agent(stranger.id) not in channels_for(audience)


def test_subscriptions_by_role() -> None:
    customer = Principal(user_id=1, role="customer", name="C", account_id=5)
    l2 = Principal(user_id=2, role="agent", name="A", agent_id=9, tier=2)
    admin = Principal(user_id=3, role="admin", name="Ad")
    assert subscriptions(listener_of(customer)) == [account(5)]
    assert subscriptions(listener_of(l2)) == [tier(2), agent(9)]
    assert subscriptions(listener_of(admin)) == [STAFF_ALL]
    assert subscriptions(listener_of(SYSTEM)) == []
    assert listener_of(SYSTEM) == Listener()


# -- replay ---------------------------------------------------------------------------------
def notes(db: Database, account_id: int, n: int, *, visibility: str = "public") -> list[int]:
    with db.write() as s:
        before = OutboxRepository(s).id_range()[1]
        TimelineRepository(s).append_many(
            [
                NewEntry(account_id=account_id, kind="note", summary=str(i), visibility=visibility)
                for i in range(n)
            ],
            at=datetime.now(UTC),
        )
        q = select(OutboxEvent.id).where(OutboxEvent.id > before).order_by(OutboxEvent.id)
        return list(s.scalars(q))


def test_replay_is_filtered_before_it_is_cut(db: Database) -> None:
    """A customer away while 1,500 events of other accounts happened gets its own after them."""
    with db.write() as s:
        mine, theirs = make_account(s).id, make_account(s).id
    [seen] = notes(db, mine, 1)
    [first] = notes(db, mine, 1)
    notes(db, theirs, 1500)
    notes(db, mine, 1, visibility="internal")  # not the customer's to hear
    [last] = notes(db, mine, 1)
    with db.read() as s:
        got = replay(s, Listener(account_id=mine), seen)
    assert got.reset is None
    assert [e["id"] for e in got.events] == [first, last]
    assert (
        got.events[1] == {"id": last, "topic": "note", "account_id": mine, **got.events[1]}
        and "tiers" not in got.events[1]
    )


def test_replay_beyond_the_limit_tells_the_client_to_reload(db: Database) -> None:
    with db.write() as s:
        mine = make_account(s).id
    [seen, *rest] = notes(db, mine, 6)
    with db.read() as s:
        assert len(replay(s, Listener(account_id=mine), seen, limit=5).events) == 5
        got = replay(s, Listener(account_id=mine), seen, limit=4)
    assert got.events == []
    assert got.reset is not None and got.reset["reason"] == "too_many"
    assert got.reset["id"] == rest[-1] and got.reset["topic"] == "reset"


def test_replay_of_what_the_outbox_no_longer_keeps_tells_the_client_to_reload(
    db: Database,
) -> None:
    with db.write() as s:
        mine = make_account(s).id
    ids = notes(db, mine, 5)
    with db.write() as s:  # pruned, as retention does: the oldest rows
        s.execute(delete(OutboxEvent).where(OutboxEvent.id <= ids[2]))
    with db.read() as s:
        listener = Listener(account_id=mine)
        assert [e["id"] for e in replay(s, listener, ids[2]).events] == ids[3:]  # all kept
        expired = replay(s, listener, ids[1])
        unknown = replay(s, listener, ids[-1] + 100)
    assert expired.reset is not None and expired.reset["reason"] == "expired"
    assert expired.reset["id"] == ids[-1] and expired.events == []
    assert unknown.reset is not None and unknown.reset["reason"] == "unknown"
