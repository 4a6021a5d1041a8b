"""Small factories for test data; every field can be overridden by keyword."""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy.orm import Session

from store.models import Account, Agent, Contact, Message, Service, Ticket, User
from store.repositories import (
    AccountRepository,
    AgentRepository,
    MessageRepository,
    TicketRepository,
    UserRepository,
)

_seq = itertools.count(1)


def make_account(s: Session, **kw: Any) -> Account:
    n = next(_seq)
    args: dict[str, Any] = {"code": f"T-{n:05d}", "name": f"Account {n}", "unix_user": f"u{n}"}
    args.update(kw)
    return AccountRepository(s).create(**args)


def make_customer(s: Session, account: Account, **kw: Any) -> User:
    n = next(_seq)
    args: dict[str, Any] = {
        "email": f"customer{n}@example.test",
        "display_name": f"Customer {n}",
        "role": "customer",
        "password": "correct horse battery staple",
        "account_id": account.id,
    }
    args.update(kw)
    return UserRepository(s).create(**args)


def make_agent(s: Session, tier: int = 1, **kw: Any) -> Agent:
    n = next(_seq)
    user = UserRepository(s).create(
        email=f"agent{n}@sitedesk.test", display_name=f"Agent {n}", role="agent", password="pw"
    )
    args: dict[str, Any] = {"user_id": user.id, "tier": tier, "skills": ["general"]}
    args.update(kw)
    return AgentRepository(s).create(**args)


def make_ticket(s: Session, account: Account, **kw: Any) -> Ticket:
    args: dict[str, Any] = {
        "account_id": account.id,
        "subject": "My site is down",
        "channel": "portal",
    }
    args.update(kw)
    return TicketRepository(s).create(**args)


def make_contact(s: Session, account: Account, **kw: Any) -> Contact:
    n = next(_seq)
    args: dict[str, Any] = {"name": f"Contact {n}", "email": f"contact{n}@example.test"}
    args.update(kw)
    return AccountRepository(s).add_contact(account.id, **args)


def make_service(s: Session, account: Account, **kw: Any) -> Service:
    n = next(_seq)
    args: dict[str, Any] = {"kind": "domain", "name": f"site{n}.example.test"}
    args.update(kw)
    return AccountRepository(s).add_service(account.id, **args)


def make_message(s: Session, ticket: Ticket, **kw: Any) -> Message:
    args: dict[str, Any] = {
        "direction": "inbound",
        "channel": "portal",
        "body": "Nothing loads since this morning.",
        "author_name": "A customer",
    }
    args.update(kw)
    return MessageRepository(s).add_message(ticket, **args)
