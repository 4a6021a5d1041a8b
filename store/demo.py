"""The demo company: accounts with services, agents in all three tiers, an admin, hosts.

Passwords are random per data directory and written to `demo-logins.json` beside the data,
so scripts can log in; loading twice does not duplicate anything.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from store.db import Database
from store.files import write_private
from store.models import Account, Contact, User
from store.models.base import utcnow
from store.repositories import (
    AccountRepository,
    AgentRepository,
    CallRepository,
    HostRepository,
    MessageRepository,
    SlaRepository,
    TicketEventRepository,
    TicketRepository,
    UserRepository,
)

DEMO_MARKER_CODE = "DEMO-0001"

SLA_TARGETS = {  # priority: (first response minutes, resolution minutes, business hours)
    "urgent": (30, 240, False),
    "high": (60, 480, True),
    "normal": (240, 1440, True),
    "low": (480, 4320, True),
}

AGENTS = [  # email, name, tier, skills
    ("alice@sitedesk.demo", "Alice Li (L1)", 1, ["general", "billing", "email", "dns"]),
    ("bob@sitedesk.demo", "Bob Okafor (L1)", 1, ["general", "web", "email"]),
    ("carol@sitedesk.demo", "Carol Jensen (L2)", 2, ["dns", "web", "email", "database"]),
    ("dan@sitedesk.demo", "Dan Moreau (L2)", 2, ["general", "ftp", "tls"]),
    ("erin@sitedesk.demo", "Erin Novak (L3)", 3, ["dns", "web", "database", "tls", "general"]),
]

CUSTOMERS = [  # code, company, unix user, contact name, email, phone, domain
    ("DEMO-0001", "Acme Bakery", "acme", "Ada Baker", "ada@acme-bakery.test",
     "+1 202 555 0101", "acme-bakery.test"),
    ("DEMO-0002", "Blue Fern Studio", "bluefern", "Ben Fern", "ben@bluefern.test",
     "+1 202 555 0102", "bluefern.test"),
    ("DEMO-0003", "Corvid Consulting", "corvid", "Cleo Crow", "cleo@corvid.test",
     "+1 202 555 0103", "corvid.test"),
]  # fmt: skip
LANGUAGES = {"DEMO-0003": "de"}  # Cleo reads the desk's mail in German


@dataclass(frozen=True)
class DemoHost:
    """A managed host to register: what `sitedesk up` started, or any real server."""

    name: str
    address: str
    ssh_port: int
    host_key: str
    credentials_ref: str
    role: str = "shared"
    root_dir: str = "/"
    services_meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class DemoLogin:
    role: str
    email: str
    password: str
    name: str
    tier: int | None = None
    account_code: str | None = None


@dataclass
class DemoLogins:
    logins: list[DemoLogin]

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_private(path, json.dumps([asdict(x) for x in self.logins], indent=2) + "\n")

    @classmethod
    def read(cls, path: Path) -> DemoLogins:
        return cls([DemoLogin(**x) for x in json.loads(path.read_text())])


def demo_domains_by_host(count: int) -> list[list[str]]:
    """The demo domains each of `count` hosts serves: accounts go to hosts in turn, as
    `load_demo` assigns them (the hosts in the order they are given)."""
    out: list[list[str]] = [[] for _ in range(count)]
    for i, customer in enumerate(CUSTOMERS):
        out[i % count].append(customer[6])
    return out


def _attach_services(session: Any, host_ids: list[int]) -> None:
    """Put the demo accounts' services that have no host yet on the demo hosts."""
    accounts = AccountRepository(session)
    for i, customer in enumerate(CUSTOMERS):
        acct = accounts.by_code(customer[0])
        if acct is None:
            continue
        for service in accounts.services(acct.id):
            if service.host_id is None:
                service.host_id = host_ids[i % len(host_ids)]


def _password() -> str:
    return secrets.token_urlsafe(12)


def load_demo(db: Database, logins_path: Path, hosts: list[DemoHost] | None = None) -> DemoLogins:
    """Load the demo company once; later calls only register new hosts and return the logins."""
    with db.write() as s:
        accounts = AccountRepository(s)
        host_repo = HostRepository(s)
        host_ids: list[int] = []
        for h in hosts or []:
            row = host_repo.by_name(h.name)
            if row is None:
                row = host_repo.create(
                    name=h.name,
                    address=h.address,
                    ssh_port=h.ssh_port,
                    host_key=h.host_key,
                    credentials_ref=h.credentials_ref,
                    role=h.role,
                    root_dir=h.root_dir,
                    services_meta=json.dumps(h.services_meta),
                )
            else:  # demo hosts are re-created on every start: follow their port and key
                row.address, row.ssh_port, row.host_key = h.address, h.ssh_port, h.host_key
                row.credentials_ref, row.root_dir = h.credentials_ref, h.root_dir
                row.services_meta = json.dumps(h.services_meta)
            host_ids.append(row.id)

        if host_ids and accounts.by_code(DEMO_MARKER_CODE) is not None:
            _attach_services(s, host_ids)
        if accounts.by_code(DEMO_MARKER_CODE) is not None and logins_path.exists():
            return DemoLogins.read(logins_path)
        if accounts.by_code(DEMO_MARKER_CODE) is not None:
            return _reset_passwords(s, logins_path)

        sla = SlaRepository(s)
        year = dt.date.today().year
        if not sla.policies():  # a desk's own SLA calendar stays as its operators set it
            for prio, (first, resolve, business) in SLA_TARGETS.items():
                sla.upsert_policy(
                    prio, first_response_minutes=first, resolution_minutes=resolve,
                    business_hours=business,
                )  # fmt: skip
            for day, name in [((1, 1), "New Year's Day"), ((12, 25), "Christmas Day")]:
                for y in (year, year + 1):
                    sla.add_holiday(dt.date(y, *day), name)

        users = UserRepository(s)
        agents = AgentRepository(s)
        out: list[DemoLogin] = []
        pw = _password()
        users.create(
            email="admin@sitedesk.demo", display_name="Sam Admin", role="admin", password=pw
        )
        out.append(DemoLogin("admin", "admin@sitedesk.demo", pw, "Sam Admin"))
        for email, name, tier, skills in AGENTS:
            pw = _password()
            u = users.create(email=email, display_name=name, role="agent", password=pw)
            agent = agents.create(user_id=u.id, tier=tier, skills=skills, capacity=5)
            agent.presence = "online"  # the demo desk is staffed from the start
            out.append(DemoLogin("agent", email, pw, name, tier=tier))

        for i, (code, company, unix, person, email, phone, domain) in enumerate(CUSTOMERS):
            acct = accounts.create(code=code, name=company, unix_user=unix)
            contact = accounts.add_contact(
                acct.id,
                name=person,
                email=email,
                phone=phone,
                is_primary=True,
                language=LANGUAGES.get(code),
            )
            host_id = host_ids[i % len(host_ids)] if host_ids else None
            services: list[tuple[str, str, dict[str, Any]]] = [
                ("domain", domain, {"registrar": "demo", "expires": f"{year + 1}-06-30"}),
                ("dns_zone", domain, {}),
                ("web_hosting", domain, {"docroot": f"/home/{unix}/www/{domain}"}),
                ("mailbox", f"info@{domain}", {"quota_mb": 1024}),
                ("ftp_account", f"{unix}_ftp", {}),
                ("database", f"{unix}_db", {"engine": "mysql"}),
            ]
            for kind, name, attrs in services:
                accounts.add_service(
                    acct.id, kind=kind, name=name, host_id=host_id, attributes=attrs
                )
            pw = _password()
            users.create(
                email=email,
                display_name=person,
                role="customer",
                password=pw,
                account_id=acct.id,
                contact_id=contact.id,
            )
            out.append(DemoLogin("customer", email, pw, person, account_code=code))
            if code == DEMO_MARKER_CODE:
                _demo_call(s, acct, contact, users.by_email(AGENTS[0][0]))

        logins = DemoLogins(out)
        logins.write(logins_path)
        return logins


def _demo_call(session: Any, account: Account, contact: Contact, agent: User | None) -> None:
    """A phone ticket with the call logged on it: Ada rang level 1 about a slow shop (the rows
    the LogCall step writes: the call, its internal phone message, the ticket's events)."""
    assert agent is not None
    now = utcnow()
    first, resolve, _ = SLA_TARGETS["normal"]
    ticket = TicketRepository(session).create(
        account_id=account.id, subject="Phone call from Ada Baker: the shop is slow",
        channel="phone", category="web", contact_id=contact.id, requester_user_id=agent.id,
        first_response_due=now + dt.timedelta(minutes=first),
        resolution_due=now + dt.timedelta(minutes=resolve),
    )  # fmt: skip
    messages, events = MessageRepository(session), TicketEventRepository(session)
    messages.add_message(
        ticket, direction="inbound", channel="phone", author_name=agent.display_name,
        author_user_id=agent.id,
        body="Ada called: the shop at acme-bakery.test takes ten seconds to load since Monday.",
    )  # fmt: skip
    events.add_event(ticket, "created", summary=f"{ticket.number} opened by phone: "
                     f"{ticket.subject}", actor_user_id=agent.id,
                     actor_label=agent.display_name,
                     data={"owner_agent_id": None, "channel": "phone"})  # fmt: skip
    started = now - dt.timedelta(minutes=7)
    calls = CallRepository(session)
    call = calls.add(
        direction="inbound", status="ended", caller_number=contact.phone,
        callee_number="+4930901820", account_id=account.id,
        contact_id=contact.id, ticket_id=ticket.id, started_at=started,
        ended_at=started + dt.timedelta(seconds=252), duration_seconds=252,
        notes="Slow since Monday's plugin update; asked her to send the plugin list by mail.",
    )  # fmt: skip
    note = messages.add_message(
        ticket, direction="internal", channel="phone", visibility="internal",
        author_name=agent.display_name, author_user_id=agent.id,
        body=f"Phone call from {contact.phone}, 4 min 12 s.\n\n{call.notes}",
        headers={"call_id": call.id},
    )  # fmt: skip
    call.message_id = note.id
    events.add_event(ticket, "call_logged", summary=f"{agent.display_name} logged a call on "
                     f"{ticket.number}", actor_user_id=agent.id, actor_label=agent.display_name,
                     visibility="internal", data={"call_id": call.id, "direction": "inbound",
                                                  "duration_seconds": 252})  # fmt: skip


def _reset_passwords(session: Any, logins_path: Path) -> DemoLogins:
    users = UserRepository(session)
    out: list[DemoLogin] = []
    emails: list[tuple[str, str, str, int | None, str | None]] = [
        ("admin", "admin@sitedesk.demo", "Sam Admin", None, None)
    ]
    emails += [("agent", e, n, t, None) for e, n, t, _ in AGENTS]
    emails += [("customer", c[4], c[3], None, c[0]) for c in CUSTOMERS]
    for role, email, name, tier, code in emails:
        user = users.by_email(email)
        if user is None:
            continue
        pw = _password()
        users.set_password(user, pw)
        out.append(DemoLogin(role, email, pw, name, tier=tier, account_code=code))
    logins = DemoLogins(out)
    logins.write(logins_path)
    return logins
