"""The schema itself refuses what must never be stored (on SQLite and PostgreSQL alike)."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from store.db import Database
from store.errors import IntegrityViolation
from store.models import Message
from store.repositories import (
    AccountRepository,
    MessageRepository,
    TicketRepository,
    UserRepository,
)
from tests.factories import make_account, make_agent, make_ticket


def test_ticket_for_missing_account_is_refused(db: Database) -> None:
    with pytest.raises(IntegrityViolation, match="referenced record does not exist"):
        with db.write() as s:
            TicketRepository(s).create(account_id=424242, subject="x", channel="portal")
    with db.read() as s:
        assert TicketRepository(s).find(1) is None


@pytest.mark.parametrize("tier", [0, 4, -1])
def test_agent_tier_outside_one_to_three_is_refused(db: Database, tier: int) -> None:
    with pytest.raises(IntegrityViolation, match="outside what is allowed"), db.write() as s:
        make_agent(s, tier=tier)


@pytest.mark.parametrize("tier", [0, 4])
def test_ticket_tier_outside_one_to_three_is_refused(db: Database, tier: int) -> None:
    with db.write() as s:
        account_id = make_account(s).id
    with pytest.raises(IntegrityViolation), db.write() as s:
        TicketRepository(s).create(account_id=account_id, subject="x", channel="portal", tier=tier)


def test_unknown_status_channel_and_priority_are_refused(db: Database) -> None:
    with db.write() as s:
        account = make_account(s)
    for bad in ({"channel": "fax"}, {"priority": "meh"}):
        with pytest.raises(IntegrityViolation), db.write() as s:
            make_ticket(s, account, **bad)


def test_open_ticket_must_have_an_owner(db: Database) -> None:
    with db.write() as s:
        ticket_id = make_ticket(s, make_account(s)).id
    with pytest.raises(IntegrityViolation), db.write() as s:
        TicketRepository(s).get(ticket_id).status = "open"


def test_customer_needs_an_account_and_staff_has_none(db: Database) -> None:
    with pytest.raises(IntegrityViolation), db.write() as s:
        UserRepository(s).create(email="c@x.test", display_name="C", role="customer")
    with db.write() as s:
        account = make_account(s)
    with pytest.raises(IntegrityViolation), db.write() as s:
        UserRepository(s).create(
            email="a@x.test", display_name="A", role="agent", account_id=account.id
        )


def test_one_service_name_per_kind(db: Database) -> None:
    with db.write() as s:
        a = make_account(s)
        AccountRepository(s).add_service(a.id, kind="domain", name="example.test")
    with pytest.raises(IntegrityViolation, match="already exists"), db.write() as s:
        AccountRepository(s).add_service(a.id, kind="domain", name="example.test")


def test_internal_message_can_not_be_public(db: Database) -> None:
    with db.write() as s:
        ticket = make_ticket(s, make_account(s))
    with pytest.raises(IntegrityViolation), db.write() as s:
        t = TicketRepository(s).get(ticket.id)
        MessageRepository(s).add_message(
            t, direction="internal", channel="portal", body="note", author_name="A",
            visibility="public",
        )  # fmt: skip


def test_failed_unit_of_work_leaves_nothing_behind(db: Database) -> None:
    with db.write() as s:
        account = make_account(s)
    with pytest.raises(RuntimeError), db.write() as s:
        t = make_ticket(s, account)
        MessageRepository(s).add_message(
            t, direction="inbound", channel="portal", body="hi", author_name="C"
        )
        raise RuntimeError("crash between writes")
    with db.read() as s:
        assert TicketRepository(s).for_account(account.id) == []
        assert s.query(Message).count() == 0


def _count(s: Session, model: type) -> int:
    return s.query(model).count()
