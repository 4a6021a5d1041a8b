"""Ticket operations as units of work, as plain objects on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from actors.config import ActorConfig
from actors.dto import SYSTEM, NewTicket, Principal
from actors.errors import (
    AlreadyOwned,
    IdempotencyMismatch,
    InvalidTransition,
    NotAllowed,
    TicketNotFound,
)
from actors.ticket_service import TicketService
from store.db import Database
from store.models.ticket import ticket_id_from_number
from store.repositories import OutboxRepository, TimelineRepository
from tests.desk import seed_sla
from tests.factories import make_account, make_agent, make_customer


@pytest.fixture
def service(db: Database) -> TicketService:
    seed_sla(db)
    return TicketService(db, ActorConfig(database_url=db.url, redis_url="redis://unused"))


def customer_of(db: Database) -> tuple[int, Principal]:
    with db.write() as s:
        account = make_account(s)
        user = make_customer(s, account)
    return account.id, Principal(user_id=user.id, role="customer", name="C", account_id=account.id)


def agent_of(db: Database, tier: int) -> Principal:
    with db.write() as s:
        a = make_agent(s, tier=tier)
    return Principal(user_id=a.user_id, role="agent", name=f"A{tier}", agent_id=a.id, tier=tier)


def new(account_id: int, by: Principal, key: str | None = None, body: str = "help") -> NewTicket:
    return NewTicket(account_id=account_id, subject="Site down", body=body, channel="portal",
                     requester=by, idempotency_key=key, request_hash=body)  # fmt: skip


def test_group_commit_files_all_and_isolates_a_bad_request(service: TicketService) -> None:
    account_id, customer = customer_of(service.db)
    results = service.create_many(
        [new(account_id, customer), new(424242, customer), new(account_id, customer)]
    )
    assert [type(r).__name__ for r in results] == ["TicketRead", "InvalidInput", "TicketRead"]
    with service.db.read() as s:
        kinds = [e.kind for e in TimelineRepository(s).page(account_id)]
        outbox = OutboxRepository(s).unpublished()
    assert kinds == ["ticket.created", "ticket.created"]
    assert [o.topic for o in outbox] == ["ticket.created", "ticket.created"]


def test_idempotency_key_replays_and_refuses_a_different_body(service: TicketService) -> None:
    account_id, customer = customer_of(service.db)
    [first] = service.create_many([new(account_id, customer, key="k1")])
    [again] = service.create_many([new(account_id, customer, key="k1")])
    [other] = service.create_many([new(account_id, customer, key="k1", body="different")])
    assert first == again
    assert isinstance(other, IdempotencyMismatch)


def test_assignment_happens_once_whatever_races(service: TicketService) -> None:
    account_id, customer = customer_of(service.db)
    a, b = agent_of(service.db, 1), agent_of(service.db, 1)
    [t] = service.create_many([new(account_id, customer)])
    tid = ticket_id_from_number(t.number)  # type: ignore[union-attr]
    assert tid is not None
    assert service.assign_many(1, [(tid, a.agent_id or 0)])[0] is not None
    assert service.assign_many(1, [(tid, b.agent_id or 0)]) == [None]
    with pytest.raises(AlreadyOwned):
        service.operate("take", tid, b)


def test_operation_rules(service: TicketService) -> None:
    account_id, customer = customer_of(service.db)
    _, stranger = customer_of(service.db)
    l1, l2, l3 = agent_of(service.db, 1), agent_of(service.db, 2), agent_of(service.db, 3)
    [t] = service.create_many([new(account_id, customer)])
    tid = ticket_id_from_number(t.number)  # type: ignore[union-attr]
    assert tid is not None
    with pytest.raises(TicketNotFound):
        service.operate("message", tid, stranger, body="hi")
    with pytest.raises(NotAllowed):
        service.operate("message", tid, customer, body="x", visibility="internal")
    with pytest.raises(NotAllowed):
        service.operate("escalate", tid, customer, reason="now")
    with pytest.raises(NotAllowed):
        service.operate("take", tid, l2)  # a level-1 ticket
    assert service.operate("take", tid, l1).ticket.owner is not None
    assert service.operate("escalate", tid, l1, reason="r").ticket.tier == 2
    service.operate("take", tid, l2)
    out = service.operate("escalate", tid, SYSTEM, reason="r")
    assert out.ticket.tier == 3 and out.released_agent == l2.agent_id and out.enqueue is not None
    service.operate("take", tid, l3)
    with pytest.raises(InvalidTransition):
        service.operate("reopen", tid, customer)
    assert service.operate("resolve", tid, l3).ticket.status == "resolved"
    reopened = service.operate("message", tid, customer, body="again")
    assert reopened.ticket.status == "open" and reopened.reclaimed_agent == l3.agent_id


def test_retried_operation_is_answered_from_its_record(service: TicketService) -> None:
    account_id, customer = customer_of(service.db)
    [t] = service.create_many([new(account_id, customer)])
    tid = ticket_id_from_number(t.number)  # type: ignore[union-attr]
    assert tid is not None
    first = service.operate("message", tid, customer, key="m1", request_hash="h", body="once")
    again = service.operate("message", tid, customer, key="m1", request_hash="h", body="once")
    assert again.replayed and again.ticket == first.ticket
    detail = service.detail(tid, include_internal=True)
    assert [m.body for m in detail.messages].count("once") == 1
    with pytest.raises(IdempotencyMismatch):
        service.operate("message", tid, customer, key="m1", request_hash="other", body="twice")
